"""lending/db/privacy.py: the retention job's and the erasure's statements."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection, transaction
from django.utils import timezone

from lending.db import privacy as db_privacy
from lending.db import run
from lending.models import ANONYMISED_SUFFIX, Event, Hold, Loan, OutboxKind, OutboxMessage, OutboxStatus
from tests.factories import HoldFactory, LoanFactory

AT = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def message(payload: dict, *, kind: str = OutboxKind.NOTIFICATION, status: str = OutboxStatus.PENDING) -> OutboxMessage:
    return OutboxMessage.objects.create(
        kind=kind, status=status, book_id=1, payload=payload, next_attempt_at=timezone.now()
    )


def outbox_of_every_kind_and_status() -> dict[str, OutboxMessage]:
    """Pending, delivered and dead notifications (per-loan, per-hold, a digest with a garbled entry),
    and domain events naming a loan: never a notification, whatever their status."""
    return {
        "pending loan 7": message({"message_type": "return_confirmation", "loan_id": 7}),
        "pending digest 8, 7": message(
            {"message_type": "digest", "loans": [{"loan_id": 8}, {"loan_id": 7}, "garbled"]}
        ),
        "pending hold 4": message({"message_type": "hold_ready", "hold_id": 4}),
        "delivered hold 5": message({"message_type": "hold_ready", "hold_id": 5}, status=OutboxStatus.DELIVERED),
        "dead loan 9": message({"message_type": "return_confirmation", "loan_id": 9}, status=OutboxStatus.DEAD),
        "delivered digest 8, 10": message(
            {"message_type": "digest", "loans": [{"loan_id": 8}, 3, {"loan_id": 10}]}, status=OutboxStatus.DELIVERED
        ),
        "dead digest of nothing": message(
            {"message_type": "digest", "loans": {"loan_id": 9}}, status=OutboxStatus.DEAD
        ),
        "pending event loan 11": message({"type": "lending.loan.lent.v1", "loan_id": 11}, kind=OutboxKind.EVENT),
        "delivered event loan 9": message(
            {"type": "lending.loan.lent.v1", "loan_id": 9}, kind=OutboxKind.EVENT, status=OutboxStatus.DELIVERED
        ),
    }


@pytest.mark.django_db
@pytest.mark.parametrize("key", db_privacy.SUBJECT_KEYS)
def test_named_by_pending_notifications_pairs_each_pending_notification_with_what_it_names(key):
    outbox = outbox_of_every_kind_and_status()
    pk = {name: row.pk for name, row in outbox.items()}

    answered = db_privacy.named_by_pending_notifications(key)

    expected = (
        [(pk["pending loan 7"], 7), (pk["pending digest 8, 7"], 8), (pk["pending digest 8, 7"], 7)]
        if key == "loan_id"
        else [(pk["pending hold 4"], 4)]
    )
    assert sorted(answered) == sorted(expected)


@pytest.mark.django_db
@pytest.mark.parametrize("key", db_privacy.SUBJECT_KEYS)
def test_subjects_of_pending_notifications_are_those_the_pending_notifications_name(key):
    outbox_of_every_kind_and_status()

    answered = db_privacy.subjects_of_pending_notifications(key)

    assert answered == {subject for _, subject in db_privacy.named_by_pending_notifications(key)}
    assert answered == ({7, 8} if key == "loan_id" else {4})


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("key", "ids", "deleted"),
    [
        ("loan_id", [8], {"delivered digest 8, 10"}),
        ("loan_id", [7, 9, 10], {"dead loan 9", "delivered digest 8, 10"}),
        ("loan_id", [3, 4, 5], set()),  # 3: not an object in the digest's list; 4, 5: holds
        ("hold_id", [4, 5], {"delivered hold 5"}),
        ("hold_id", [7, 9], set()),
    ],
)
def test_delete_settled_notifications_naming_these_ids_spares_pending_ones_and_events(key, ids, deleted):
    outbox = outbox_of_every_kind_and_status()

    answered = db_privacy.delete_settled_notifications_naming(key, ids)

    kept = set(OutboxMessage.objects.values_list("pk", flat=True))
    assert {name for name, row in outbox.items() if row.pk not in kept} == deleted
    assert answered == len(deleted)


@pytest.mark.django_db
@pytest.mark.parametrize(("key", "factory"), [("loan_id", LoanFactory), ("hold_id", HoldFactory)])
def test_delete_settled_notifications_naming_anonymised_ones_reads_which_are(key, factory):
    """Against the ORM's `endswith`: the subjects whose email ends with the anonymised suffix."""
    anonymised = factory(user_email=f"anon-1{ANONYMISED_SUFFIX}")
    kept = factory(user_email="ann@example.com")
    model = Loan if key == "loan_id" else Hold
    assert list(model.objects.filter(user_email__endswith=ANONYMISED_SUFFIX)) == [anonymised]
    delivered = {
        subject.pk: message({"message_type": "notice", key: subject.pk}, status=OutboxStatus.DELIVERED)
        for subject in (anonymised, kept)
    }
    digest_of_both = message(
        {"message_type": "digest", "loans": [{key: kept.pk}, {key: anonymised.pk}]}, status=OutboxStatus.DEAD
    )
    pending = message({"message_type": "notice", key: anonymised.pk})

    answered = db_privacy.delete_settled_notifications_naming(key, None)

    assert answered == 2
    assert set(OutboxMessage.objects.values_list("pk", flat=True)) == {delivered[kept.pk].pk, pending.pk}
    assert not OutboxMessage.objects.filter(pk=digest_of_both.pk).exists()


@pytest.mark.postgres
@pytest.mark.django_db
def test_commit_without_waiting_for_the_disk_sets_this_transactions_synchronous_commit():
    # From `on`, whatever the server's default (the throwaway test server of `make test` runs with it off).
    run.execute("SET synchronous_commit TO on")
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
