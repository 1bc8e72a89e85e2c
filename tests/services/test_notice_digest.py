"""NOTICE_DIGEST: one `digest` per patron per scheduler pass, listing that pass's reminders and overdue
notices; each notice still at most once per loan, type and period, across reruns, crashes and
overlapping runs; with the setting off, one notification per loan as before."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from lending import notices
from lending.models import Event, EventKind, Loan, LoanNotice, LoanStatus, OutboxKind, OutboxMessage
from lending.outbox import messages, relay
from tests.factories import LoanFactory
from tests.processes import send_notices_killed_then_rerun

ROOT = Path(__file__).resolve().parents[2]
DUE_SOON, OVERDUE = messages.MessageType.DUE_SOON_REMINDER, messages.MessageType.OVERDUE_NOTICE
DIGEST = messages.MessageType.DIGEST
LOAN_FIELDS = {"loan_id", "book_id", "book_title", "due_date", "message_type"}


@pytest.fixture
def digests_on(settings):
    settings.NOTICE_DIGEST = True
    settings.DUE_SOON_REMINDER_DAYS = 3
    settings.OVERDUE_NOTICE_REPEAT_DAYS = 7


def digests() -> list[dict]:
    """The payloads of every queued digest, in the order queued."""
    rows = OutboxMessage.objects.filter(kind=OutboxKind.NOTIFICATION, payload__message_type=DIGEST).order_by("id")
    return [message.payload for message in rows]


def single_notices() -> list[OutboxMessage]:
    return list(OutboxMessage.objects.filter(payload__message_type__in=[DUE_SOON, OVERDUE]))


def notices_in_digests() -> Counter[tuple[int, str]]:
    """How many times each (loan, notice type) was listed, over every digest."""
    return Counter((loan["loan_id"], loan["message_type"]) for payload in digests() for loan in payload["loans"])


def run_pass() -> str:
    out = StringIO()
    call_command("send_notices", stdout=out)
    return out.getvalue()


def run_notice_jobs() -> None:
    """The pass's notice jobs, as `send_notices` runs them."""
    notices.send_due_soon_reminders()
    notices.send_overdue_notices()
    notices.send_notice_digests()


def patron_with_both_kinds(email: str) -> list[Loan]:
    """Two overdue loans and one due soon, plus one neither (not listed)."""
    loans = [
        LoanFactory(user_email=email, due_in=-timedelta(days=2)),
        LoanFactory(user_email=email, due_in=-timedelta(hours=1)),
        LoanFactory(user_email=email, due_in=timedelta(days=1)),
    ]
    LoanFactory(user_email=email, due_in=timedelta(days=20))
    return loans


@pytest.mark.django_db
@pytest.mark.usefixtures("digests_on")
class TestDigest:
    def test_one_digest_per_patron_lists_its_reminders_and_overdue_notices(self):
        alice = patron_with_both_kinds("alice@example.com")
        bob = LoanFactory(user_email="bob@example.com", due_in=timedelta(days=2))
        LoanFactory(user_email="carol@example.com", due_in=-timedelta(days=1), returned=True)

        output = run_pass()

        assert "send_overdue_notices: 2" in output and "send_due_soon_reminders: 2" in output
        assert "send_notice_digests: 2" in output
        assert single_notices() == [], "no notification per loan"
        by_patron = {payload["user_email"]: payload for payload in digests()}
        assert sorted(by_patron) == ["alice@example.com", "bob@example.com"]
        listed = by_patron["alice@example.com"]["loans"]
        assert [(loan["loan_id"], loan["message_type"]) for loan in listed] == [
            (alice[0].pk, OVERDUE),
            (alice[1].pk, OVERDUE),
            (alice[2].pk, DUE_SOON),
        ], "the most urgent first"
        assert all(set(loan) == LOAN_FIELDS for loan in listed)
        assert listed[2] == {
            "loan_id": alice[2].pk,
            "book_id": alice[2].book_id,
            "book_title": alice[2].book_title,
            "due_date": alice[2].date_due.date().isoformat(),
            "message_type": DUE_SOON,
        }
        assert by_patron["bob@example.com"]["loans"][0]["loan_id"] == bob.pk
        # The fields every notification carries: the titles listed and the earliest due date.
        assert by_patron["alice@example.com"]["book_title"] == "; ".join(loan.book_title for loan in alice)
        assert by_patron["alice@example.com"]["due_date"] == alice[0].date_due.date().isoformat()

    def test_the_due_dates_listed_are_the_librarys_days(self, settings):
        settings.LIBRARY_TIME_ZONE = "Pacific/Auckland"  # UTC+12 or +13: 20:00 UTC is the next day there
        now = timezone.now()
        due = datetime.combine(now.date() + timedelta(days=2), datetime.min.time(), tzinfo=UTC) + timedelta(hours=20)
        loan = LoanFactory(due_in=due - now)

        run_pass()

        (payload,) = digests()
        assert payload["loans"][0]["due_date"] == (due.date() + timedelta(days=1)).isoformat()
        assert payload["due_date"] == payload["loans"][0]["due_date"]
        assert payload["loans"][0]["loan_id"] == loan.pk

    def test_every_notice_is_recorded_once_and_each_loan_has_its_own_event(self):
        alice = patron_with_both_kinds("alice@example.com")

        run_pass()

        assert sorted(LoanNotice.objects.values_list("loan_id", "notice_type", "awaiting_digest")) == [
            (alice[0].pk, OVERDUE, False),
            (alice[1].pk, OVERDUE, False),
            (alice[2].pk, DUE_SOON, False),
        ]
        (digest,) = OutboxMessage.objects.filter(payload__message_type=DIGEST)
        events = Event.objects.filter(kind=EventKind.NOTICE_QUEUED).order_by("loan_id")
        assert [(e.loan_id, e.data["notice_type"], e.data["digest"]) for e in events] == [
            (alice[0].pk, OVERDUE, str(digest.key)),
            (alice[1].pk, OVERDUE, str(digest.key)),
            (alice[2].pk, DUE_SOON, str(digest.key)),
        ]

    def test_reruns_send_nothing_twice_and_a_new_period_gets_a_new_digest(self):
        alice = patron_with_both_kinds("alice@example.com")

        run_pass()
        run_pass()
        with time_machine.travel(timedelta(hours=2)):
            run_pass()
        assert len(digests()) == 1

        # A week later: the two overdue loans are in their next period; the reminded loan is overdue now.
        with time_machine.travel(timedelta(days=7, hours=1)):
            run_pass()
            run_pass()

        assert len(digests()) == 2
        assert [(loan["loan_id"], loan["message_type"]) for loan in digests()[1]["loans"]] == [
            (alice[0].pk, OVERDUE),
            (alice[1].pk, OVERDUE),
            (alice[2].pk, OVERDUE),
        ]
        assert sorted(LoanNotice.objects.values_list("loan_id", "notice_type", "period")) == [
            (alice[0].pk, OVERDUE, 0),
            (alice[0].pk, OVERDUE, 1),
            (alice[1].pk, OVERDUE, 0),
            (alice[1].pk, OVERDUE, 1),
            (alice[2].pk, DUE_SOON, 0),
            (alice[2].pk, OVERDUE, 0),
        ]

    def test_a_loan_returned_before_its_digest_is_not_listed(self):
        alice = patron_with_both_kinds("alice@example.com")
        notices.send_due_soon_reminders()
        notices.send_overdue_notices()
        Loan.objects.filter(pk=alice[1].pk).update(date_returned=timezone.now(), status=LoanStatus.RETURNED)

        assert notices.send_notice_digests() == 1

        assert notices_in_digests() == Counter({(alice[0].pk, OVERDUE): 1, (alice[2].pk, DUE_SOON): 1})
        assert not LoanNotice.objects.filter(loan=alice[1]).exists(), "LoanNotice records what was sent"

    def test_a_patron_whose_only_notice_went_stale_gets_no_digest(self):
        loan = LoanFactory(due_in=-timedelta(days=1))
        notices.send_overdue_notices()
        Loan.objects.filter(pk=loan.pk).update(date_returned=timezone.now(), status=LoanStatus.RETURNED)

        assert notices.send_notice_digests() == 0
        assert digests() == [] and not LoanNotice.objects.exists()

    def test_patrons_are_digested_in_batches_each_in_full(self):
        loans = [LoanFactory(user_email=f"p{i % 7}@example.com", due_in=-timedelta(hours=i + 1)) for i in range(30)]
        notices.send_overdue_notices(batch_size=4)

        assert notices.send_notice_digests(batch_size=2) == 7

        assert len({payload["user_email"] for payload in digests()}) == 7
        assert notices_in_digests() == Counter({(loan.pk, OVERDUE): 1 for loan in loans})

    def test_the_reference_notification_peer_takes_a_digest(self, peers):
        patron_with_both_kinds("digest-peer@example.com")
        run_pass()

        relay.run_once()

        (received,) = [n for n in peers.notification.notifications if n["user_email"] == "digest-peer@example.com"]
        assert received["message_type"] == DIGEST and len(received["loans"]) == 3
        assert OutboxMessage.objects.get(payload__message_type=DIGEST).status == "DELIVERED"


@pytest.mark.django_db
class TestSettingOff:
    def test_one_notification_per_loan_and_no_digest(self, settings):
        assert settings.NOTICE_DIGEST is False, "off by default"
        alice = patron_with_both_kinds("alice@example.com")

        output = run_pass()

        assert "send_notice_digests: 0" in output
        assert digests() == []
        assert sorted((m.payload["loan_id"], m.payload["message_type"]) for m in single_notices()) == [
            (alice[0].pk, OVERDUE),
            (alice[1].pk, OVERDUE),
            (alice[2].pk, DUE_SOON),
        ]
        assert not LoanNotice.objects.filter(awaiting_digest=True).exists()
        assert Event.objects.filter(kind=EventKind.NOTICE_QUEUED).count() == 3
        assert all("digest" not in event.data for event in Event.objects.filter(kind=EventKind.NOTICE_QUEUED))

    def test_notices_left_waiting_when_the_setting_is_turned_off_are_still_sent(self, settings):
        settings.NOTICE_DIGEST = True
        loan = LoanFactory(due_in=-timedelta(days=1))
        notices.send_overdue_notices()
        settings.NOTICE_DIGEST = False

        run_pass()

        assert notices_in_digests() == Counter({(loan.pk, OVERDUE): 1})
        assert single_notices() == []


class Crash(BaseException):
    """Stands in for the process dying: nothing in the job catches it."""


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("digests_on")
class TestCrashes:
    def test_a_run_killed_between_its_batches_and_its_digests_sends_them_on_the_next_run(self, settings):
        settings.NOTICES_BATCH_SIZE = 3
        loans = patron_with_both_kinds("alice@example.com") + patron_with_both_kinds("bob@example.com")
        notices.send_due_soon_reminders()
        notices.send_overdue_notices()
        # ...and the process dies here.
        assert digests() == [] and LoanNotice.objects.filter(awaiting_digest=True).count() == 6

        output = run_pass()

        assert "send_overdue_notices: 0" in output and "send_due_soon_reminders: 0" in output
        assert "send_notice_digests: 2" in output
        expected = {(loan.pk, OVERDUE if loan.date_due < timezone.now() else DUE_SOON): 1 for loan in loans}
        assert notices_in_digests() == Counter(expected)
        run_pass()
        assert len(digests()) == 2

    def test_a_run_killed_half_way_through_its_digests_loses_and_repeats_none(self, monkeypatch):
        loans = [LoanFactory(user_email=f"p{i % 5}@example.com", due_in=-timedelta(hours=i + 1)) for i in range(15)]
        notices.send_overdue_notices()
        real_enqueue = notices.enqueue
        calls = 0

        def dying_enqueue(*queued):
            nonlocal calls
            calls += 1
            if calls == 3:  # the third group of patrons
                raise Crash()
            return real_enqueue(*queued)

        monkeypatch.setattr(notices, "enqueue", dying_enqueue)
        with pytest.raises(Crash):
            notices.send_notice_digests(batch_size=2)
        assert len(digests()) == 4, "two groups of two patrons committed, the third rolled back whole"
        assert LoanNotice.objects.filter(awaiting_digest=True).count() == 3

        monkeypatch.setattr(notices, "enqueue", real_enqueue)
        assert notices.send_notice_digests(batch_size=2) == 1
        assert notices.send_notice_digests(batch_size=2) == 0
        assert notices_in_digests() == Counter({(loan.pk, OVERDUE): 1 for loan in loans})


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("digests_on")
def test_overlapping_runs_send_each_notice_once(settings):
    settings.NOTICES_BATCH_SIZE = 7
    # Half overdue by minutes, half due within hours: each gets the notice of its kind, whatever the run's length.
    expected: Counter[tuple[int, str]] = Counter()
    for i in range(120):
        late = i % 2 == 0
        due_in = -timedelta(minutes=i + 1) if late else timedelta(hours=i + 1) / 4
        loan = LoanFactory(user_email=f"p{i % 30}@example.com", due_in=due_in)
        expected[(loan.pk, OVERDUE if late else DUE_SOON)] = 1
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait(30)
            for _ in range(3):
                run_notice_jobs()
        except BaseException as exc:  # asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert errors == []
    assert notices_in_digests() == expected, "each notice exactly once"
    assert LoanNotice.objects.count() == 120 and not LoanNotice.objects.filter(awaiting_digest=True).exists()
    assert single_notices() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("digests_on")
def test_a_run_skips_the_patrons_another_run_is_digesting_and_never_waits_for_it(monkeypatch):
    held = LoanFactory(user_email="a@example.com", due_in=-timedelta(days=1))
    free = LoanFactory(user_email="b@example.com", due_in=-timedelta(days=1))
    notices.send_overdue_notices()
    real_enqueue = notices.enqueue
    first_run_holds_a, release_first_run = threading.Event(), threading.Event()
    results: dict[str, int] = {}

    def enqueue_pausing_the_first_run(*queued):
        if threading.current_thread().name == "first":
            first_run_holds_a.set()  # a@'s notices are locked, its digest is being written
            release_first_run.wait(60)
        return real_enqueue(*queued)

    def digest(name: str) -> None:
        try:
            results[name] = notices.send_notice_digests(batch_size=1)
        finally:
            connection.close()

    monkeypatch.setattr(notices, "enqueue", enqueue_pausing_the_first_run)
    first = threading.Thread(target=digest, args=("first",), name="first")
    second = threading.Thread(target=digest, args=("second",), name="second")
    first.start()
    try:
        assert first_run_holds_a.wait(30)
        second.start()
        second.join(30)
        assert not second.is_alive(), "the second run waited for the first run's locks"
    finally:
        release_first_run.set()
        first.join(30)
        second.join(30)

    assert results == {"first": 1, "second": 1}
    assert [payload["user_email"] for payload in digests()] == ["b@example.com", "a@example.com"]
    assert notices_in_digests() == Counter({(free.pk, OVERDUE): 1, (held.pk, OVERDUE): 1})


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_scheduler_killed_with_sigkill_then_rerun_sends_each_notice_once_in_digests():
    loans = [LoanFactory(user_email=f"p{i % 100}@example.com", due_in=-timedelta(minutes=i + 1)) for i in range(400)]
    send_notices_killed_then_rerun(NOTICES_BATCH_SIZE="2", NOTICE_DIGEST="true")

    assert notices_in_digests() == Counter({(loan.pk, OVERDUE): 1 for loan in loans})
    assert not LoanNotice.objects.filter(awaiting_digest=True).exists()
