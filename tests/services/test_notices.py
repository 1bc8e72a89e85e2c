"""Scheduled notices: OVERDUE persisted, due-soon reminders, repeated overdue notices, each at most
once per loan and period, also when runs overlap or one dies half way."""

from __future__ import annotations

import threading
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from lending import notices
from lending.models import Loan, LoanNotice, LoanStatus, OutboxKind, OutboxMessage
from lending.outbox import messages
from tests.factories import LoanFactory
from tests.processes import send_notices_killed_then_rerun

ROOT = Path(__file__).resolve().parents[2]
DUE_SOON, OVERDUE = messages.MessageType.DUE_SOON_REMINDER, messages.MessageType.OVERDUE_NOTICE


def sent(message_type: str | None = None) -> list[tuple[int, str]]:
    """(loan id, message type) of every queued notice notification, sorted."""
    rows = OutboxMessage.objects.filter(kind=OutboxKind.NOTIFICATION)
    found = [
        (m.payload["loan_id"], m.payload["message_type"])
        for m in rows
        if m.payload["message_type"] in (DUE_SOON, OVERDUE)
    ]
    return sorted(f for f in found if message_type is None or f[1] == message_type)


def run_pass() -> str:
    out = StringIO()
    call_command("send_notices", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
class TestSchedule:
    def test_overdue_status_is_persisted_for_open_loans_past_due_only(self):
        late = LoanFactory(due_in=-timedelta(hours=1))
        fine = LoanFactory(due_in=timedelta(days=10))
        back = LoanFactory(due_in=-timedelta(days=2), returned=True)

        assert notices.mark_overdue_loans() == 1

        statuses = dict(Loan.objects.values_list("id", "status"))
        assert statuses == {late.pk: "OVERDUE", fine.pk: "ACTIVE", back.pk: "RETURNED"}
        assert notices.mark_overdue_loans() == 0

    def test_due_soon_reminder_is_sent_once_when_the_due_date_is_near(self, settings):
        settings.DUE_SOON_REMINDER_DAYS = 3
        loan = LoanFactory(due_in=timedelta(days=10))

        run_pass()
        assert sent() == []
        with time_machine.travel(timedelta(days=7, hours=1)):
            run_pass()
            run_pass()
        with time_machine.travel(timedelta(days=9)):
            run_pass()

        assert sent() == [(loan.pk, DUE_SOON)]
        message = OutboxMessage.objects.get(payload__message_type=DUE_SOON)
        assert message.payload["due_date"] == loan.date_due.date().isoformat()
        assert message.payload["user_email"] == loan.user_email and message.payload["book_title"] == loan.book_title

    def test_a_renewed_loan_gets_a_reminder_for_its_new_due_date(self, settings):
        loan = LoanFactory(due_in=timedelta(days=2))
        run_pass()
        Loan.objects.filter(pk=loan.pk).update(date_due=loan.date_due + timedelta(days=60), renewals=1)
        run_pass()
        with time_machine.travel(timedelta(days=60)):
            run_pass()
        assert sent() == [(loan.pk, DUE_SOON), (loan.pk, DUE_SOON)]
        assert sorted(LoanNotice.objects.values_list("period", flat=True)) == [0, 1]

    def test_overdue_notice_when_overdue_and_again_every_repeat_period(self, settings):
        settings.OVERDUE_NOTICE_REPEAT_DAYS = 7
        loan = LoanFactory(due_in=timedelta(days=1))
        returned = LoanFactory(due_in=-timedelta(days=1), returned=True)

        history = []
        for day in (0, 1, 2, 5, 8, 8, 13, 15, 16, 30):
            with time_machine.travel(timedelta(days=day, hours=1)):
                run_pass()
            history.append(len(sent(OVERDUE)))

        # Overdue from day 1: notices on day 1 (period 0), day 8 (1), day 15 (2), day 30 (4).
        assert history == [0, 1, 1, 1, 2, 2, 2, 3, 3, 4]
        assert set(LoanNotice.objects.filter(notice_type=OVERDUE).values_list("period", flat=True)) == {0, 1, 2, 4}
        assert Loan.objects.get(pk=loan.pk).status == LoanStatus.OVERDUE
        assert not LoanNotice.objects.filter(loan=returned).exists()

    def test_a_returned_loan_gets_no_more_notices(self):
        loan = LoanFactory(due_in=-timedelta(days=1))
        run_pass()
        Loan.objects.filter(pk=loan.pk).update(date_returned=timezone.now(), status=LoanStatus.RETURNED)
        with time_machine.travel(timedelta(days=30)):
            run_pass()
        assert sent() == [(loan.pk, OVERDUE)]

    def test_batches_cover_every_loan(self, settings):
        settings.NOTICES_BATCH_SIZE = 3
        loans = [LoanFactory(due_in=-timedelta(hours=h + 1)) for h in range(10)]
        soon = [LoanFactory(due_in=timedelta(days=1), user_email=f"soon{i}@example.com") for i in range(4)]

        output = run_pass()

        assert "mark_overdue_loans: 10" in output and "send_overdue_notices: 10" in output
        assert "send_due_soon_reminders: 4" in output
        assert sent(OVERDUE) == sorted((loan.pk, OVERDUE) for loan in loans)
        assert sent(DUE_SOON) == sorted((loan.pk, DUE_SOON) for loan in soon)

    def test_every_notice_row_has_its_message_and_the_reverse(self):
        for h in range(5):
            LoanFactory(due_in=-timedelta(hours=h + 1))
        run_pass()
        notice_keys = sorted(LoanNotice.objects.values_list("loan_id", "notice_type"))
        assert notice_keys == sent()


def assert_each_notice_once(expected_loans: list[Loan]) -> None:
    queued = sent(OVERDUE)
    assert queued == sorted((loan.pk, OVERDUE) for loan in expected_loans), "each notice exactly once"
    assert LoanNotice.objects.filter(notice_type=OVERDUE).count() == len(expected_loans)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_send_each_notice_once(settings):
    settings.NOTICES_BATCH_SIZE = 7
    loans = [LoanFactory(due_in=-timedelta(minutes=i + 1)) for i in range(120)]
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait(30)
            for _ in range(3):
                notices.send_overdue_notices()
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
    assert_each_notice_once(loans)


class Crash(BaseException):
    """Stands in for the process dying: nothing in the job catches it."""


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_run_that_dies_half_way_then_reruns_sends_the_rest_without_duplicates(settings, monkeypatch):
    settings.NOTICES_BATCH_SIZE = 5
    loans = [LoanFactory(due_in=-timedelta(minutes=i + 1)) for i in range(23)]
    real_enqueue = notices.enqueue_notification
    calls = 0

    def dying_enqueue(loan, message_type):
        nonlocal calls
        calls += 1
        if calls == 13:  # in the middle of the third batch
            raise Crash()
        return real_enqueue(loan, message_type)

    monkeypatch.setattr(notices, "enqueue_notification", dying_enqueue)
    with pytest.raises(Crash):
        notices.send_overdue_notices()
    assert len(sent(OVERDUE)) == 10, "the two finished batches are committed, the third rolled back whole"
    assert LoanNotice.objects.count() == 10

    monkeypatch.setattr(notices, "enqueue_notification", real_enqueue)
    assert notices.send_overdue_notices() == 13
    assert notices.send_overdue_notices() == 0
    assert_each_notice_once(loans)


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_scheduler_killed_with_sigkill_then_rerun_sends_each_notice_once():
    loans = [LoanFactory(due_in=-timedelta(minutes=i + 1)) for i in range(400)]
    half = send_notices_killed_then_rerun(NOTICES_BATCH_SIZE="2")

    assert half <= len(loans)
    assert_each_notice_once(loans)
