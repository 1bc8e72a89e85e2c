"""lending/db/privacy.py: the retention job's and the erasure's statements."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection, transaction
from django.utils import timezone

from lending import privacy
from lending.db import privacy as db_privacy
from lending.db import run
from lending.models import Event, Hold, Loan, OutboxKind, OutboxMessage, OutboxStatus
from tests.factories import HoldFactory, LoanFactory

AT = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def message(payload: dict, *, kind: str = OutboxKind.NOTIFICATION, status: str = OutboxStatus.PENDING) -> None:
    OutboxMessage.objects.create(kind=kind, status=status, book_id=1, payload=payload, next_attempt_at=timezone.now())


@pytest.mark.django_db
@pytest.mark.parametrize("key", db_privacy.SUBJECT_KEYS)
def test_subjects_of_pending_notifications_are_those_the_pending_notifications_name(key):
    message({"message_type": "return_confirmation", "loan_id": 7})
    message({"message_type": "digest", "loans": [{"loan_id": 8}, {"loan_id": 7}, "garbled"]})
    message({"message_type": "hold_ready", "hold_id": 4})
    message({"message_type": "hold_ready", "hold_id": 5}, status=OutboxStatus.DELIVERED)
    message({"message_type": "return_confirmation", "loan_id": 9}, status=OutboxStatus.DEAD)
    message({"type": "lending.loan.lent.v1", "loan_id": 10}, kind=OutboxKind.EVENT)
    pending = OutboxMessage.objects.filter(kind=OutboxKind.NOTIFICATION, status=OutboxStatus.PENDING)
    sql, params = privacy.named_subjects(pending, key)
    orm_defined = {subject_id for _, subject_id in run.fetch_all(sql, params)}

    answered = db_privacy.subjects_of_pending_notifications(key)

    assert answered == orm_defined == ({7, 8} if key == "loan_id" else {4})


@pytest.mark.postgres
@pytest.mark.django_db
def test_commit_without_waiting_for_the_disk_sets_this_transactions_synchronous_commit():
    assert run.fetch_one("SHOW synchronous_commit") == ("on",)
    with transaction.atomic():
        db_privacy.commit_without_waiting_for_the_disk()
        assert run.fetch_one("SHOW synchronous_commit") == ("off",)


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize(("subject", "model", "factory"), [("loan", Loan, LoanFactory), ("hold", Hold, HoldFactory)])
def test_replace_emails_gives_each_row_its_token(subject, model, factory):
    first, second, untouched = factory(), factory(), factory()

    changed = db_privacy.replace_emails(subject, [first.pk, second.pk], ["anon-1@x.invalid", "anon-2@x.invalid"])

    assert changed == 2
    assert dict(model.objects.values_list("pk", "user_email")) == {
        first.pk: "anon-1@x.invalid",
        second.pk: "anon-2@x.invalid",
        untouched.pk: untouched.user_email,
    }


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize("returning", [False, True])
def test_insert_anonymised_events_numbers_each_after_its_subjects_last(returning):
    with_history, without = LoanFactory(), LoanFactory()
    Event.objects.create(loan=with_history, sequence=1, kind="lent", occurred_at=AT, caller="x")

    answered = db_privacy.insert_anonymised_events(
        "loan",
        [with_history.pk, without.pk],
        kind="anonymised",
        occurred_at=AT,
        caller="system:anonymize_loans",
        caller_key_prefix="",
        request_id="req-2",
        returning=returning,
    )

    inserted = Event.objects.filter(kind="anonymised").order_by("loan_id")
    assert [
        (e.loan_id, e.hold_id, e.sequence, e.occurred_at, e.caller, e.caller_key_prefix, e.request_id, e.reason, e.data)
        for e in inserted
    ] == [
        (with_history.pk, None, 2, AT, "system:anonymize_loans", "", "req-2", "", {}),
        (without.pk, None, 1, AT, "system:anonymize_loans", "", "req-2", "", {}),
    ]
    expected = [(e.pk, e.loan_id, None, e.sequence, "anonymised", AT) for e in inserted] if returning else []
    assert sorted(answered) == expected


@pytest.mark.postgres
@pytest.mark.django_db
def test_insert_anonymised_events_of_holds():
    hold = HoldFactory()

    [row] = db_privacy.insert_anonymised_events(
        "hold",
        [hold.pk],
        kind="anonymised",
        occurred_at=AT,
        caller="c",
        caller_key_prefix="p",
        request_id="",
        returning=True,
    )

    event = Event.objects.get(hold=hold)
    assert row == (event.pk, None, hold.pk, 1, "anonymised", AT)


@pytest.mark.django_db(transaction=True)
def test_checkpoint_wal_on_sqlite_is_not_busy_when_nobody_reads():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's statement")
    assert db_privacy.checkpoint_wal() is False
