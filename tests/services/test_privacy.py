"""Personal data has a lifetime (issue 10 item 3): anonymisation by retention and on request, the purges,
and a lend racing an anonymisation of the same patron. PostgreSQL where locks matter."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.apps import apps
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection, models
from django.utils import timezone
from rest_framework.test import APIClient

from lending import notices, privacy, services
from lending.blocks import PatronBlock
from lending.db import privacy as db_privacy
from lending.models import (
    ANONYMISED_SUFFIX,
    Event,
    EventKind,
    Hold,
    HoldStatus,
    IdempotencyRecord,
    Loan,
    LoanStatus,
    OutboxKind,
    OutboxMessage,
    OutboxStatus,
)
from lending.outbox import relay
from lending.outbox.messages import MessageType
from lending.patron_ref import patron_ref
from tests.conftest import post_json
from tests.factories import HoldFactory, LoanFactory, days

pytestmark = pytest.mark.django_db


def returned_loan(email: str, *, days_ago: float, book_id: int = 1) -> Loan:
    """Returned `days_ago` days ago, ten days after it was borrowed."""
    returned = timezone.now() - timedelta(days=days_ago)
    return LoanFactory(
        user_email=email, book_id=book_id, now=returned, borrowed_ago=timedelta(days=10), due_in=days(50), returned=True
    )


def open_loan(email: str, *, book_id: int = 2, overdue: bool = False) -> Loan:
    if overdue:
        return LoanFactory(user_email=email, book_id=book_id, due_in=days(-400), status=LoanStatus.OVERDUE)
    return LoanFactory(user_email=email, book_id=book_id, due_in=days(10))


def closed_hold(email: str, *, days_ago: float, status: str = HoldStatus.CANCELLED, book_id: int = 3) -> Hold:
    closed = timezone.now() - timedelta(days=days_ago)
    return HoldFactory(user_email=email, book_id=book_id, status=status, now=closed, date_closed=closed)


def notification(subject: Loan | Hold, status: str, message_type: str = "return_confirmation") -> OutboxMessage:
    key = "loan_id" if isinstance(subject, Loan) else "hold_id"
    return OutboxMessage.objects.create(
        kind=OutboxKind.NOTIFICATION,
        book_id=subject.book_id,
        payload={"user_email": subject.user_email, "message_type": message_type, key: subject.pk},
        status=status,
        next_attempt_at=timezone.now(),
    )


# --- By retention -----------------------------------------------------------------------------------


def test_a_loan_returned_longer_ago_than_the_retention_loses_its_patron_and_keeps_the_rest(settings):
    settings.LOAN_HISTORY_RETENTION_DAYS = 120
    old = returned_loan("alice@example.com", days_ago=121)
    recent = returned_loan("alice@example.com", days_ago=119, book_id=5)

    done = privacy.anonymize_returned_loans()

    old_after = Loan.objects.get(pk=old.pk)
    assert done.loans == 1
    assert old_after.user_email.endswith(ANONYMISED_SUFFIX)
    assert (old_after.book_id, old_after.book_title, old_after.status) == (
        old.book_id,
        old.book_title,
        LoanStatus.RETURNED,
    )
    assert (old_after.date_borrowed, old_after.date_due, old_after.date_returned) == (
        old.date_borrowed,
        old.date_due,
        old.date_returned,
    )
    assert Loan.objects.get(pk=recent.pk).user_email == "alice@example.com"


def test_the_token_is_random_per_loan_never_a_hash_of_the_email():
    email = "bob@example.com"
    loans = [returned_loan(email, days_ago=200, book_id=book_id) for book_id in (1, 2, 3)]

    privacy.anonymize_returned_loans(retention_days=120)

    tokens = [Loan.objects.get(pk=loan.pk).user_email for loan in loans]
    assert len(set(tokens)) == 3
    digests = {hashlib.new(name, email.encode()).hexdigest() for name in ("md5", "sha1", "sha256")}
    for token in tokens:
        assert not any(digest[:32] in token for digest in digests)


def test_open_overdue_and_unresolved_loans_are_never_anonymised():
    email = "carol@example.com"
    active = open_loan(email, book_id=1)
    overdue = open_loan(email, book_id=2, overdue=True)
    awaiting_notice = returned_loan(email, days_ago=300, book_id=3)
    notification(awaiting_notice, OutboxStatus.PENDING)
    waiting_hold = HoldFactory(user_email=email, book_id=4, now=timezone.now() - timedelta(days=400))

    done = privacy.anonymize_returned_loans(retention_days=0)

    assert (done.loans, done.holds) == (0, 0)
    assert set(Loan.objects.values_list("user_email", flat=True)) == {email}
    assert Hold.objects.get(pk=waiting_hold.pk).user_email == email
    assert {active.pk, overdue.pk, awaiting_notice.pk} == set(Loan.objects.values_list("pk", flat=True))


def test_once_its_notification_is_delivered_the_loan_is_anonymised_and_the_notification_forgotten():
    loan = returned_loan("dan@example.com", days_ago=300)
    message = notification(loan, OutboxStatus.PENDING)
    privacy.anonymize_returned_loans(retention_days=120)
    OutboxMessage.objects.filter(pk=message.pk).update(status=OutboxStatus.DELIVERED, delivered_at=timezone.now())

    done = privacy.anonymize_returned_loans(retention_days=120)

    assert done.loans == 1
    assert done.notifications == 1
    assert not OutboxMessage.objects.filter(pk=message.pk).exists()


def test_without_the_sweep_a_run_forgets_the_notifications_of_what_it_anonymised_and_the_sweep_the_rest():
    loan = returned_loan("dee@example.com", days_ago=300)
    delivered = notification(loan, OutboxStatus.DELIVERED)
    leftover_loan = returned_loan(f"anon-left{ANONYMISED_SUFFIX}", days_ago=300, book_id=2)
    leftover = notification(leftover_loan, OutboxStatus.DEAD)  # left by a run killed before its sweep

    done = privacy.anonymize_returned_loans(retention_days=120, sweep=False)

    assert (done.loans, done.notifications) == (1, 1)
    assert not OutboxMessage.objects.filter(pk=delivered.pk).exists()
    assert OutboxMessage.objects.filter(pk=leftover.pk).exists()
    assert privacy.anonymize_returned_loans(retention_days=120).notifications == 1
    assert not OutboxMessage.objects.filter(pk=leftover.pk).exists()


def test_closed_holds_are_anonymised_with_their_dead_letters(settings):
    hold = closed_hold("erin@example.com", days_ago=200, status=HoldStatus.EXPIRED)
    dead = notification(hold, OutboxStatus.DEAD, "hold_expired")
    recent = closed_hold("erin@example.com", days_ago=1, book_id=9)

    done = privacy.anonymize_returned_loans(retention_days=120)

    assert done.holds == 1
    assert Hold.objects.get(pk=hold.pk).user_email.endswith(ANONYMISED_SUFFIX)
    assert Hold.objects.get(pk=recent.pk).user_email == "erin@example.com"
    assert not OutboxMessage.objects.filter(pk=dead.pk).exists()


def test_history_events_keep_their_caller_and_gain_an_anonymised_event():
    loan = returned_loan("fay@example.com", days_ago=200)
    Event.objects.create(
        loan=loan,
        sequence=1,
        kind=EventKind.LENT,
        occurred_at=loan.date_borrowed,
        caller="desk",
        caller_key_prefix="p1",
    )

    privacy.anonymize_returned_loans(retention_days=120)

    events = list(Event.objects.filter(loan=loan).order_by("sequence").values_list("sequence", "kind", "caller"))
    assert events == [(1, EventKind.LENT, "desk"), (2, EventKind.ANONYMISED, privacy.SCHEDULED.name)]


def test_staff_reasons_on_an_anonymised_loans_history_go_with_its_patron():
    """An override's reason, a due-date change's, a lost item's note: staff's words, which may name
    the patron (issue 28)."""
    old, recent = (
        returned_loan("gil@example.com", days_ago=200),
        returned_loan("gil@example.com", days_ago=1, book_id=2),
    )
    for loan in (old, recent):
        Event.objects.create(
            loan=loan,
            sequence=1,
            kind=EventKind.LENT,
            occurred_at=loan.date_borrowed,
            caller="desk",
            reason="gil@example.com promised to bring it back",
        )

    privacy.anonymize_returned_loans(retention_days=120)

    assert Event.objects.get(loan=old, sequence=1).reason == ""
    assert Event.objects.get(loan=recent, sequence=1).reason == "gil@example.com promised to bring it back"


def test_a_block_expired_longer_ago_than_the_retention_loses_its_patron_and_reason():
    now = timezone.now()
    expired, in_force = (
        PatronBlock.objects.create(
            user_email="hal@example.com",
            reason="hal@example.com shouted",
            blocks=["borrow"],
            created_at=now - timedelta(days=300),
            expires_at=expires_at,
        )
        for expires_at in (now - timedelta(days=121), None)
    )

    privacy.anonymize_returned_loans(retention_days=120)

    expired.refresh_from_db()
    in_force.refresh_from_db()
    assert expired.user_email.endswith(ANONYMISED_SUFFIX) and expired.reason == ""
    assert (in_force.user_email, in_force.reason) == ("hal@example.com", "hal@example.com shouted")


def test_the_admin_log_of_a_block_deleted_before_the_retention_goes(admin_user):
    from django.contrib.admin.models import DELETION

    def logged(block_id: int, days_ago: int) -> LogEntry:
        entry = LogEntry.objects.create(
            content_type=ContentType.objects.get_for_model(PatronBlock),
            object_id=str(block_id),
            object_repr=f"block {block_id} on ivy@example.com: borrow",
            action_flag=DELETION,
            user=admin_user,
        )
        LogEntry.objects.filter(pk=entry.pk).update(action_time=timezone.now() - timedelta(days=days_ago))
        return entry

    kept_block = PatronBlock.objects.create(
        user_email="ivy@example.com", reason="x", blocks=["borrow"], created_at=timezone.now()
    )
    deleted_long_ago, deleted_lately, of_a_block_still_there = (
        logged(999, 121),
        logged(998, 3),
        logged(kept_block.pk, 200),
    )

    privacy.anonymize_returned_loans(retention_days=120)

    assert set(LogEntry.objects.values_list("pk", flat=True)) == {deleted_lately.pk, of_a_block_still_there.pk}
    assert not LogEntry.objects.filter(pk=deleted_long_ago.pk).exists()


def test_batches_cover_every_row_and_a_second_run_finds_nothing():
    for book_id in range(25):
        returned_loan(f"p{book_id}@example.com", days_ago=200, book_id=book_id)

    first = privacy.anonymize_returned_loans(retention_days=120, batch_size=4)
    second = privacy.anonymize_returned_loans(retention_days=120, batch_size=4)

    assert (first.loans, second.loans) == (25, 0)
    assert not Loan.objects.exclude(user_email__endswith=ANONYMISED_SUFFIX).exists()


def test_a_row_skipped_in_a_batch_does_not_stop_the_run():
    stuck = returned_loan("gus@example.com", days_ago=300, book_id=1)
    notification(stuck, OutboxStatus.PENDING)
    later = [returned_loan("gus@example.com", days_ago=200, book_id=n) for n in (2, 3, 4)]

    done = privacy.anonymize_returned_loans(retention_days=120, batch_size=1)

    assert done.loans == 3
    assert all(Loan.objects.get(pk=loan.pk).user_email.endswith(ANONYMISED_SUFFIX) for loan in later)


def test_the_admin_log_forgets_anonymised_loans(admin_user):
    loan = returned_loan("hal@example.com", days_ago=200)
    LogEntry.objects.create(
        user=admin_user,
        content_type=ContentType.objects.get_for_model(Loan),
        object_id=str(loan.pk),
        object_repr=str(loan),
        action_flag=CHANGE,
    )

    privacy.anonymize_returned_loans(retention_days=120)

    assert not LogEntry.objects.filter(object_repr__contains="hal@example.com").exists()


def test_the_command_reports_and_purges(settings):
    settings.OUTBOX_RETENTION_DAYS = 30
    returned_loan("ivy@example.com", days_ago=500)
    from io import StringIO

    out = StringIO()
    call_command("anonymize_loans", stdout=out)

    assert "anonymised 1 loan(s)" in out.getvalue()
    assert "purged 0 delivered outbox row(s)" in out.getvalue()


@pytest.mark.parametrize("argument", [["--retention-days", "-1"], ["--batch-size", "0"]])
def test_the_command_refuses_nonsense(argument):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("anonymize_loans", *argument)


def test_the_scheduler_pass_runs_the_privacy_jobs(settings):
    settings.LOAN_HISTORY_RETENTION_DAYS = 120
    loan = returned_loan("jo@example.com", days_ago=200)
    from io import StringIO

    out = StringIO()
    call_command("send_notices", stdout=out)

    assert Loan.objects.get(pk=loan.pk).user_email.endswith(ANONYMISED_SUFFIX)


# --- Purges -----------------------------------------------------------------------------------------


def test_delivered_outbox_rows_are_purged_after_the_retention_dead_and_pending_stay(settings):
    settings.OUTBOX_RETENTION_DAYS = 30
    loan = returned_loan("kim@example.com", days_ago=1)
    old, recent, dead, pending = (
        notification(loan, status) for status in ("DELIVERED", "DELIVERED", "DEAD", "PENDING")
    )
    long_ago = timezone.now() - timedelta(days=31)
    OutboxMessage.objects.filter(pk__in=[old.pk, dead.pk, pending.pk]).update(created_at=long_ago)
    OutboxMessage.objects.filter(pk=old.pk).update(delivered_at=long_ago)
    OutboxMessage.objects.filter(pk=recent.pk).update(delivered_at=timezone.now())

    assert privacy.purge_delivered_outbox(batch_size=1) == 1

    assert set(OutboxMessage.objects.values_list("pk", flat=True)) == {recent.pk, dead.pk, pending.pk}


# --- Retention 0: no table keeps a returned loan's patron ------------------------------------------


def text_columns(model) -> list[str]:
    return [
        field.name
        for field in model._meta.concrete_fields
        if isinstance(field, (models.CharField, models.TextField, models.JSONField))
    ]


def rows_naming(email: str) -> dict[str, int]:
    """Every table of every installed app, every text or JSON column: where the email still appears."""
    found = {}
    for model in apps.get_models():
        columns = text_columns(model)
        if not columns:
            continue
        query = models.Q()
        for column in columns:
            query |= models.Q(**{f"{column}__icontains": email})
        count = model._default_manager.filter(query).count()
        if count:
            found[model._meta.db_table] = count
    return found


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_after_anonymize_loans_with_retention_0_no_table_names_a_returned_loans_patron(peers, patron, book, settings):
    settings.LOAN_HISTORY_RETENTION_DAYS = 0
    api = APIClient()
    body = {"user_email": patron, "book_id": book["id"]}
    assert post_json(api, "/lendBook/", body, **{"Idempotency-Key": "lend-1"}).status_code == 201
    assert post_json(api, "/returnBook/", body, **{"Idempotency-Key": "return-1"}).status_code == 200
    assert post_json(api, "/returnBook/", body, **{"Idempotency-Key": "return-2"}).status_code == 404
    other = peers.book.add_book("Held", "A", 0)
    assert post_json(api, "/reserveBook/", {"user_email": patron, "book_id": other["id"]}).status_code == 201
    assert post_json(api, "/cancelReservation/", {"user_email": patron, "book_id": other["id"]}).status_code == 200
    relay.run_once()
    loan = Loan.objects.get(book_id=book["id"])
    LogEntry.objects.create(
        content_type=ContentType.objects.get_for_model(Loan),
        object_id=str(loan.pk),
        object_repr=str(loan),
        action_flag=CHANGE,
        user=_staff(),
    )
    assert rows_naming(patron)  # the check can fail: the patron is everywhere before

    call_command("anonymize_loans")

    assert rows_naming(patron) == {}


def test_after_anonymize_loans_no_table_keeps_the_patrons_ref_of_what_it_anonymised(peers, patron, book, settings):
    """The domain events carry the patron's pseudonym: gone with the anonymised loan and hold, from the
    events already published and from those still waiting for the broker."""
    settings.LOAN_HISTORY_RETENTION_DAYS = 0
    settings.EVENTS_BROKER_URL = "amqp://guest:guest@127.0.0.1:1/%2F"  # nothing listens: the events wait
    services.loan_lend(user_email=patron, book_id=book["id"])
    services.loan_return(user_email=patron, book_id=book["id"])
    other = peers.book.add_book("Held", "A", 0)
    services.hold_reserve(user_email=patron, book_id=other["id"])
    services.hold_cancel(user_email=patron, book_id=other["id"])
    relay.run_once()  # the notifications delivered, the events left pending
    OutboxMessage.objects.filter(kind=OutboxKind.EVENT, payload__sequence=1).update(status=OutboxStatus.DELIVERED)
    ref = patron_ref(patron)
    assert rows_naming(ref) == {OutboxMessage._meta.db_table: 4}  # the check can fail

    call_command("anonymize_loans", stdout=StringIO())

    assert rows_naming(ref) == {}
    assert rows_naming(patron) == {}


def _staff():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("clerk", password="a-long-enough-passphrase-91")


@pytest.mark.django_db(transaction=True)
def test_on_sqlite_the_database_file_forgets_what_the_retention_job_anonymised():
    """SQLite writes a commit to its WAL; the database file keeps the old rows until a checkpoint."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's files (make test's SQLite pass runs this)")
    from pathlib import Path

    returned_loan("jules.file@example.com", days_ago=200)
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # as after a while: the row is in the file
    database = Path(connection.settings_dict["NAME"])
    assert b"jules.file@example.com" in database.read_bytes()

    assert privacy.anonymize_returned_loans(retention_days=120).loans == 1

    assert b"jules.file@example.com" not in database.read_bytes()


# --- Erasure on request -----------------------------------------------------------------------------


def erase(email: str, client: APIClient | None = None):
    return (client or APIClient()).post(f"/patrons/{email}/anonymize/")


def test_erasure_anonymises_every_closed_loan_and_hold_now():
    email = "liz@example.com"
    loans = [returned_loan(email, days_ago=1, book_id=n) for n in (1, 2)]
    hold = closed_hold(email, days_ago=0)
    delivered = notification(loans[0], OutboxStatus.DELIVERED)
    IdempotencyRecord.objects.create(
        key="k1",
        fingerprint="f",
        response_status=200,
        response_body={"id": loans[0].pk, "user_email": email},
        expires_at=timezone.now() + timedelta(hours=1),
    )
    bystander = returned_loan("max@example.com", days_ago=1)

    response = erase(email)

    assert response.status_code == 200, response.content
    assert response.json() == {
        "loans": 2,
        "holds": 1,
        "notifications": 1,
        "idempotency_records": 1,
        "patron_ref": patron_ref(email),
    }
    assert not Loan.objects.filter(user_email=email).exists()
    assert Hold.objects.get(pk=hold.pk).user_email.endswith(ANONYMISED_SUFFIX)
    assert not OutboxMessage.objects.filter(pk=delivered.pk).exists()
    assert not IdempotencyRecord.objects.exists()
    assert Loan.objects.get(pk=bystander.pk).user_email == "max@example.com"
    assert Event.objects.filter(loan=loans[0], kind=EventKind.ANONYMISED, caller="anonymous").exists()


def test_repeating_the_erasure_is_harmless():
    returned_loan("ned@example.com", days_ago=1)
    assert erase("ned@example.com").json()["loans"] == 1

    again = erase("ned@example.com")

    assert again.status_code == 200
    assert again.json() == {
        "loans": 0,
        "holds": 0,
        "notifications": 0,
        "idempotency_records": 0,
        "patron_ref": patron_ref("ned@example.com"),
    }


def test_erasure_is_refused_while_the_patron_has_open_loans_or_holds_and_writes_nothing():
    email = "ola@example.com"
    closed = returned_loan(email, days_ago=1)
    active = open_loan(email)
    hold = HoldFactory(user_email=email, book_id=7)

    response = erase(email)

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "patron_has_open_loans"
    assert [loan["id"] for loan in error["details"]["open_loans"]] == [active.pk]
    assert [h["id"] for h in error["details"]["open_holds"]] == [hold.pk]
    assert Loan.objects.get(pk=closed.pk).user_email == email
    assert not Event.objects.filter(kind=EventKind.ANONYMISED).exists()


def test_a_reservation_committed_during_an_erasure_keeps_its_patron(monkeypatch):
    """A reservation does not take the patron's lock: one landing between the erasure's check and its
    writes must stay the patron's."""
    email = "ray@example.com"
    returned_loan(email, days_ago=1)
    check = privacy._refuse_if_unresolved
    late = {}

    def check_then_a_reservation_lands(patron):
        check(patron)
        late["hold"] = HoldFactory(user_email=patron, book_id=8)

    monkeypatch.setattr(privacy, "_refuse_if_unresolved", check_then_a_reservation_lands)

    assert erase(email).json()["loans"] == 1

    assert Hold.objects.get(pk=late["hold"].pk).user_email == email


def test_erasure_waits_for_a_pending_notification():
    loan = returned_loan("pam@example.com", days_ago=0)
    message = notification(loan, OutboxStatus.PENDING)

    response = erase("pam@example.com")

    assert response.status_code == 409
    assert response.json()["error"]["details"]["pending_notifications"] == [message.pk]


def test_erasure_matches_the_email_case_insensitively_like_the_rest_of_the_api():
    returned_loan("quinn@example.com", days_ago=1)

    assert erase("Quinn@Example.COM").json()["loans"] == 1


@pytest.mark.parametrize("bad", ["not-an-email", "a@b@c", "x" * 300 + "@example.com"])
def test_erasure_of_a_malformed_email_is_a_400_that_writes_nothing(bad):
    returned_loan("rae@example.com", days_ago=1)

    response = erase(bad)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert Loan.objects.get().user_email == "rae@example.com"


# --- Digests (NOTICE_DIGEST): one notification naming several loans --------------------------------


@pytest.fixture
def digests_on(settings):
    settings.NOTICE_DIGEST = True
    settings.DUE_SOON_REMINDER_DAYS = 3


def due_soon(email: str, *, book_id: int) -> Loan:
    return LoanFactory(user_email=email, book_id=book_id, due_in=days(1))


def queue_digests() -> dict[str, OutboxMessage]:
    """The scheduler's reminder and digest jobs, as `send_notices` runs them: the digest queued per patron."""
    notices.send_due_soon_reminders()
    notices.send_notice_digests()
    queued = OutboxMessage.objects.filter(kind=OutboxKind.NOTIFICATION, payload__message_type=MessageType.DIGEST)
    return {message.payload["user_email"]: message for message in queued}


def listed_loans(message: OutboxMessage) -> set[int]:
    assert "loan_id" not in message.payload  # what makes a digest different: no loan of its own
    return {entry["loan_id"] for entry in message.payload["loans"]}


def return_now(*loans: Loan) -> None:
    Loan.objects.filter(pk__in=[loan.pk for loan in loans]).update(
        date_returned=timezone.now(), status=LoanStatus.RETURNED
    )


def settle(message: OutboxMessage, status: str) -> None:
    delivered_at = timezone.now() if status == OutboxStatus.DELIVERED else None
    OutboxMessage.objects.filter(pk=message.pk).update(status=status, delivered_at=delivered_at)


def test_a_pending_digest_keeps_every_loan_it_lists(digests_on):
    email = "uma@example.com"
    listed = [due_soon(email, book_id=n) for n in (1, 2)]
    digest = queue_digests()[email]
    assert listed_loans(digest) == {loan.pk for loan in listed}
    return_now(*listed)
    unlisted = returned_loan(email, days_ago=1, book_id=3)

    done = privacy.anonymize_returned_loans(retention_days=0)

    assert done.loans == 1
    assert Loan.objects.get(pk=unlisted.pk).user_email.endswith(ANONYMISED_SUFFIX)
    assert [Loan.objects.get(pk=loan.pk).user_email for loan in listed] == [email, email]
    assert OutboxMessage.objects.get(pk=digest.pk).status == OutboxStatus.PENDING


@pytest.mark.parametrize("status", [OutboxStatus.DELIVERED, OutboxStatus.DEAD])
def test_a_settled_digest_goes_once_any_loan_it_lists_is_anonymised_and_not_before(digests_on, status):
    email = "vic@example.com"
    still_open, returned = due_soon(email, book_id=1), due_soon(email, book_id=2)
    due_soon("wes@example.com", book_id=3)
    digests = queue_digests()
    assert listed_loans(digests[email]) == {still_open.pk, returned.pk}
    for message in digests.values():
        settle(message, status)
    return_now(returned)

    before = privacy.anonymize_returned_loans(retention_days=120, sweep=False)  # returned just now: kept

    assert (before.loans, before.notifications) == (0, 0)
    assert OutboxMessage.objects.filter(pk=digests[email].pk).exists()

    done = privacy.anonymize_returned_loans(retention_days=0, sweep=False)

    assert (done.loans, done.notifications) == (1, 1)
    assert not OutboxMessage.objects.filter(pk=digests[email].pk).exists()  # it tied the patron to that book
    assert OutboxMessage.objects.filter(pk=digests["wes@example.com"].pk).exists()  # names no anonymised loan
    assert Loan.objects.get(pk=still_open.pk).user_email == email


def test_the_sweep_forgets_a_digest_naming_a_loan_an_earlier_run_anonymised(digests_on):
    email = "xan@example.com"
    loans = [due_soon(email, book_id=n) for n in (1, 2)]
    digest = queue_digests()[email]
    settle(digest, OutboxStatus.DEAD)
    return_now(*loans)
    # A run anonymised the second loan and was killed before it forgot the loan's notifications.
    Loan.objects.filter(pk=loans[1].pk).update(user_email=privacy.new_token())

    without_sweep = privacy.anonymize_returned_loans(retention_days=120, sweep=False)

    assert (without_sweep.loans, without_sweep.notifications) == (0, 0)
    assert OutboxMessage.objects.filter(pk=digest.pk).exists()

    swept = privacy.anonymize_returned_loans(retention_days=120)

    assert (swept.loans, swept.notifications) == (0, 1)
    assert not OutboxMessage.objects.filter(pk=digest.pk).exists()


def test_erasure_waits_for_a_pending_digest_and_forgets_it_once_delivered(digests_on):
    email = "yul@example.com"
    loans = [due_soon(email, book_id=n) for n in (1, 2)]
    digest = queue_digests()[email]
    return_now(*loans)

    refused = erase(email)

    assert refused.status_code == 409
    assert refused.json()["error"]["details"]["pending_notifications"] == [digest.pk]
    assert [Loan.objects.get(pk=loan.pk).user_email for loan in loans] == [email, email]

    settle(digest, OutboxStatus.DELIVERED)
    erased = erase(email)

    assert erased.status_code == 200
    assert erased.json() == {
        "loans": 2,
        "holds": 0,
        "notifications": 1,
        "idempotency_records": 0,
        "patron_ref": patron_ref(email),
    }
    assert not OutboxMessage.objects.filter(pk=digest.pk).exists()


def test_the_purge_deletes_old_delivered_digests_and_keeps_dead_ones(digests_on, settings):
    settings.OUTBOX_RETENTION_DAYS = 30
    for email in ("zed@example.com", "abe@example.com"):
        due_soon(email, book_id=1)
    delivered, dead = queue_digests().values()
    settle(delivered, OutboxStatus.DELIVERED)
    settle(dead, OutboxStatus.DEAD)
    long_ago = timezone.now() - timedelta(days=31)
    OutboxMessage.objects.filter(pk__in=[delivered.pk, dead.pk]).update(created_at=long_ago, delivered_at=long_ago)

    assert privacy.purge_delivered_outbox() == 1

    assert set(OutboxMessage.objects.values_list("pk", flat=True)) == {dead.pk}


NAMING = [  # (payload, the loans it names, the holds it names)
    ({"user_email": "a@example.com", "message_type": "return_confirmation", "loan_id": 7}, {7}, set()),
    (
        {"user_email": "a@example.com", "message_type": "digest", "loans": [{"loan_id": 8}, {"loan_id": 9}]},
        {8, 9},
        set(),
    ),
    ({"user_email": "a@example.com", "message_type": "hold_ready", "hold_id": 4}, set(), {4}),
    ({"book_id": 3, "available": True}, set(), set()),
    ({"message_type": "digest", "loans": ["garbled", 3, None, {"loan_id": 5}]}, {5}, set()),  # never an error
    ({"message_type": "digest", "loans": {"loan_id": 6}}, set(), set()),
]


def expected_pairs(ids: list[int], key: str) -> list[tuple[int, int]]:
    named = [loans if key == "loan_id" else holds for _, loans, holds in NAMING]
    return sorted(
        (message_id, subject) for message_id, subjects in zip(ids, named, strict=True) for subject in subjects
    )


@pytest.mark.parametrize("key", privacy.SUBJECT_KEYS)
def test_what_a_notification_names_on_this_database(key):
    ids = [
        OutboxMessage.objects.create(
            kind=OutboxKind.NOTIFICATION, book_id=1, payload=payload, next_attempt_at=timezone.now()
        ).pk
        for payload, _, _ in NAMING
    ]
    pairs = db_privacy.named_by_pending_notifications(key)  # created pending: every row is read

    assert sorted(pairs) == expected_pairs(ids, key)


@pytest.mark.parametrize("key", privacy.SUBJECT_KEYS)
def test_what_a_notification_names_in_sqlites_spelling(key):
    """The suite runs on PostgreSQL when one answers (tests/conftest.py); SQLite's spelling of the same
    definition (`make run`'s database) is checked here on every run, with the sqlite3 library Django uses."""
    database = sqlite3.connect(":memory:")
    database.execute("CREATE TABLE message (id INTEGER PRIMARY KEY, payload TEXT)")
    ids = list(range(1, len(NAMING) + 1))
    database.executemany(
        "INSERT INTO message VALUES (?, ?)", [(n, json.dumps(row[0])) for n, row in zip(ids, NAMING, strict=True)]
    )
    sql = privacy.NAMED_SUBJECTS_SQL["sqlite"].format(messages="SELECT id, payload FROM message", key=key)

    pairs = database.execute(sql).fetchall()

    assert sorted(pairs) == expected_pairs(ids, key)


# --- Races (threads, real PostgreSQL) ---------------------------------------------------------------


def _in_threads(*calls) -> list:
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait()
            results[index] = call()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_lend_racing_an_erasure_of_the_same_patron(peers, patron):
    for round_number in range(8):
        previous = returned_loan(patron, days_ago=1, book_id=10_000 + round_number)
        new_book = peers.book.add_book(f"race {round_number}", "A", 1)

        body = {"user_email": patron, "book_id": new_book["id"]}
        lend, erasure = _in_threads(
            lambda body=body: post_json(APIClient(), "/lendBook/", body),
            lambda: erase(patron),
        )

        assert lend.status_code == 201, lend.content
        new_loan = Loan.objects.get(book_id=new_book["id"])
        assert new_loan.user_email == patron and new_loan.date_returned is None  # an open loan is never touched
        if erasure.status_code == 200:  # the erasure ran first: the lend came after it
            assert Loan.objects.get(pk=previous.pk).user_email.endswith(ANONYMISED_SUFFIX)
        else:  # the lend ran first: the erasure saw its open loan and wrote nothing
            assert erasure.status_code == 409
            assert new_loan.pk in [loan["id"] for loan in erasure.json()["error"]["details"]["open_loans"]]
            assert Loan.objects.get(pk=previous.pk).user_email == patron
        # Close the round: return the book, deliver its notices, erase what is left.
        post_json(APIClient(), "/returnBook/", {"user_email": patron, "book_id": new_book["id"]})
        relay.run_once()
        assert erase(patron).status_code == 200
        assert not Loan.objects.filter(user_email=patron).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_lends_racing_the_retention_job_keep_their_loans_and_never_wait_on_it(peers, patron):
    for n in range(300):
        returned_loan(patron, days_ago=200, book_id=20_000 + n)
    new_books = [peers.book.add_book(f"during {n}", "A", 1) for n in range(3)]

    results = _in_threads(
        lambda: privacy.anonymize_returned_loans(retention_days=120, batch_size=10),
        *(
            (lambda book_id=b["id"]: post_json(APIClient(), "/lendBook/", {"user_email": patron, "book_id": book_id}))
            for b in new_books
        ),
    )

    assert results[0].loans == 300
    assert [response.status_code for response in results[1:]] == [201, 201, 201]
    assert Loan.objects.filter(user_email=patron, date_returned__isnull=True).count() == 3
    assert not Loan.objects.filter(user_email=patron, date_returned__isnull=False).exists()


# --- Metrics ----------------------------------------------------------------------------------------


def test_metrics_never_carry_a_patron(peers, patron, book):
    api = APIClient()
    body = {"user_email": patron, "book_id": book["id"]}
    assert post_json(api, "/lendBook/", body).status_code == 201
    assert post_json(api, "/lendBook/", body).status_code == 409  # a refusal names the patron in its message
    assert api.post(f"/patrons/{patron}/anonymize/").status_code == 409

    exposition = api.get("/metrics").content.decode()

    assert "lending_" in exposition  # the domain's metrics are there, and moved
    assert patron not in exposition
    assert patron.split("@")[0] not in exposition
