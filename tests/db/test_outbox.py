"""lending/db/outbox.py: each statement's answer or effect against what the ORM gives (or a hand-built
expectation), on PostgreSQL and on SQLite."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.db import connection, transaction
from django.db.models import Exists, F, Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from lending.db import outbox
from lending.db.outbox import RECHECK
from lending.models import BookStock, OutboxKind, OutboxMessage, OutboxStatus

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
# Every column but the id, the key and created_at (the ones each insert fills its own way).
COLUMNS = (
    "kind",
    "book_id",
    "payload",
    "status",
    "attempts",
    "claims",
    "next_attempt_at",
    "last_error",
    "delivered_at",
    "traceparent",
)


def new_message(**fields) -> OutboxMessage:
    return OutboxMessage(**({"kind": OutboxKind.AVAILABILITY, "book_id": 1, "next_attempt_at": NOW} | fields))


def stored(*ids: int) -> list[tuple]:
    """The rows' columns as the ORM reads them, in the order of `ids`."""
    rows = {row[0]: row[1:] for row in OutboxMessage.objects.filter(pk__in=ids).values_list("pk", *COLUMNS)}
    return [rows[pk] for pk in ids]


def several_messages() -> list[OutboxMessage]:
    """Defaults, and every column set to something else than its default."""
    return [
        new_message(),
        new_message(
            kind=OutboxKind.NOTIFICATION,
            book_id=7,
            payload={"user_email": "é@example.com", "nested": {"list": [1, 2.5, None, True]}},
            status=OutboxStatus.DEAD,
            attempts=3,
            claims=4,
            next_attempt_at=NOW + timedelta(minutes=5),
            last_error="boom",
            delivered_at=NOW - timedelta(seconds=1),
            traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
    ]


def test_insert_messages_writes_what_bulk_create_writes_and_sets_the_ids():
    before = timezone.now()
    inserted = outbox.insert_messages(several_messages())
    expected = OutboxMessage.objects.bulk_create(several_messages())
    assert stored(*(m.pk for m in inserted)) == stored(*(m.pk for m in expected))
    read = {m.pk: m for m in OutboxMessage.objects.filter(pk__in=[m.pk for m in inserted])}
    for message in inserted:
        assert read[message.pk].key == message.key
        assert read[message.pk].created_at == message.created_at and message.created_at >= before
        assert not message._state.adding


def test_insert_messages_writes_any_number_in_as_many_statements_as_the_backend_needs():
    messages = [new_message(book_id=n, payload={"n": n}) for n in range(1, 201)]  # past SQLite's 999 values
    inserted = outbox.insert_messages(messages)
    read = dict(OutboxMessage.objects.values_list("key", "book_id"))
    assert len({m.pk for m in inserted}) == 200
    assert all(read[m.key] == m.book_id for m in inserted)
    assert list(
        OutboxMessage.objects.filter(pk__in=[m.pk for m in inserted[:3]])
        .order_by("pk")
        .values_list("payload", flat=True)
    ) == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert outbox.insert_messages([]) == []


def test_a_new_message_is_written_with_the_models_defaults():
    new = [
        outbox.NewMessage(kind=OutboxKind.AVAILABILITY, book_id=1, next_attempt_at=NOW),
        outbox.NewMessage(kind=OutboxKind.NOTIFICATION, book_id=7, next_attempt_at=NOW, payload={"n": ["é", 2.5]}),
    ]
    before = timezone.now()
    inserted = outbox.insert_messages(new)
    expected = OutboxMessage.objects.bulk_create(
        [
            OutboxMessage(kind=OutboxKind.AVAILABILITY, book_id=1, next_attempt_at=NOW),
            OutboxMessage(kind=OutboxKind.NOTIFICATION, book_id=7, next_attempt_at=NOW, payload={"n": ["é", 2.5]}),
        ]
    )
    assert inserted == new and all(message.id and message.pk == message.id for message in new)
    assert stored(*(m.pk for m in inserted)) == stored(*(m.pk for m in expected))
    read = {m.pk: m for m in OutboxMessage.objects.filter(pk__in=[m.pk for m in inserted])}
    for message in inserted:
        assert read[message.pk].key == message.key and message.created_at is not None
        assert read[message.pk].created_at == message.created_at >= before
    assert new[0].key != new[1].key


def test_new_messages_and_model_instances_go_in_one_insert():
    inserted = outbox.insert_messages(
        [outbox.NewMessage(kind=OutboxKind.FEE, book_id=4, next_attempt_at=NOW), new_message(book_id=5)]
    )
    assert [m.book_id for m in OutboxMessage.objects.filter(pk__in=[m.pk for m in inserted]).order_by("pk")] == [4, 5]


def test_insert_messages_ignoring_conflicts_leaves_a_taken_key_alone():
    key = uuid.uuid4()
    [first] = outbox.insert_messages([new_message(key=key, payload={RECHECK: True})])
    outbox.insert_messages([new_message(key=key, book_id=2), new_message(book_id=3)], ignore_conflicts=True)
    assert OutboxMessage.objects.get(key=key).book_id == 1
    assert sorted(OutboxMessage.objects.values_list("book_id", flat=True)) == [1, 3]


def test_claimable_answers_what_the_orms_claim_answers():
    # Minutes overdue and status; two due at the same moment (the id breaks the tie), one not yet due.
    rows = [(3, "PENDING"), (1, "PENDING"), (2, "DELIVERED"), (1, "PENDING"), (0, "DEAD"), (-1, "PENDING")]
    for minutes, status in rows:
        OutboxMessage.objects.create(
            kind=OutboxKind.EVENT, book_id=1, status=status, next_attempt_at=NOW - timedelta(minutes=minutes)
        )
    for due_by, limit in [(NOW, 10), (NOW, 2), (NOW - timedelta(minutes=2), 10), (NOW + timedelta(hours=1), 3)]:
        with transaction.atomic():
            claimed = outbox.claimable(due_by, limit)
        expected = OutboxMessage.objects.filter(status=OutboxStatus.PENDING, next_attempt_at__lte=due_by).order_by(
            "next_attempt_at", "id"
        )[:limit]
        assert [m.pk for m in claimed] == [m.pk for m in expected]
        assert stored(*(m.pk for m in claimed)) == [tuple(getattr(m, c) for c in COLUMNS) for m in claimed]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_claimable_skips_the_rows_another_transaction_holds():
    oldest, *others = [
        OutboxMessage.objects.create(kind=OutboxKind.EVENT, book_id=1, next_attempt_at=NOW - timedelta(minutes=m))
        for m in (3, 2, 1)
    ]
    other_relay = psycopg.connect(**connection.get_connection_params())
    try:
        other_relay.execute("SELECT id FROM lending_outboxmessage WHERE id = %s FOR UPDATE", [oldest.pk])
        with transaction.atomic():
            assert [m.pk for m in outbox.claimable(NOW, 10)] == [m.pk for m in others]
    finally:
        other_relay.rollback()
        other_relay.close()


def test_take_lease_pushes_the_messages_one_lease_ahead_and_counts_the_claim():
    first, second, untouched = outbox.insert_messages([new_message(), new_message(claims=2), new_message()])
    lease_end = NOW + timedelta(seconds=30)
    assert outbox.take_lease([first.pk, second.pk], lease_end) == 2
    expected_lease = (lease_end, lease_end, NOW)
    rows = OutboxMessage.objects.filter(pk__in=[first.pk, second.pk, untouched.pk]).order_by("pk")
    assert tuple(rows.values_list("next_attempt_at", flat=True)) == expected_lease
    assert list(rows.values_list("claims", flat=True)) == [1, 3, 0]


def test_mark_delivered_delivers_exactly_the_messages_named():
    named = outbox.insert_messages([new_message(last_error="timeout"), new_message(status=OutboxStatus.DEAD)])
    [other] = outbox.insert_messages([new_message(last_error="timeout")])
    delivered_at = NOW + timedelta(minutes=1)
    assert outbox.mark_delivered([m.pk for m in named], delivered_at) == 2
    assert stored(*(m.pk for m in named), other.pk) == [
        *[(m.kind, m.book_id, m.payload, "DELIVERED", 0, 0, NOW, "", delivered_at, m.traceparent) for m in named],
        (other.kind, other.book_id, other.payload, "PENDING", 0, 0, NOW, "timeout", None, other.traceparent),
    ]


def settled_by_the_orm(book_id: int, claimed: list[int], version: int, now: datetime) -> set[int]:
    """The rows the relay's settle updated when it was written in the ORM."""
    book_changed = BookStock.objects.filter(book_id=book_id).exclude(version=version)
    waiting = Q(
        book_id=book_id,
        kind=OutboxKind.AVAILABILITY,
        status=OutboxStatus.PENDING,
        next_attempt_at__lte=now,
        claims__lte=F("attempts"),
    ) & ~Q(payload__has_key=RECHECK)
    messages = OutboxMessage.objects.filter(Q(pk__in=claimed) | waiting).filter(~Exists(book_changed))
    return set(messages.values_list("pk", flat=True))


def settle_scenario() -> tuple[list[int], set[int]]:
    """One book's messages in every state the settle tells apart: the claimed ones (in flight), and
    the ids it settles alongside them when the book has not changed."""
    later, earlier = NOW + timedelta(seconds=30), NOW - timedelta(seconds=30)
    claimed = outbox.insert_messages([new_message(next_attempt_at=later, claims=1), new_message(next_attempt_at=later)])
    waiting = outbox.insert_messages(
        [new_message(next_attempt_at=earlier), new_message(claims=1, attempts=1), new_message(payload={"other": 1})]
    )
    outbox.insert_messages(
        [
            new_message(next_attempt_at=later),  # not due (a backoff)
            new_message(payload={RECHECK: True}, next_attempt_at=earlier),  # a re-check
            new_message(claims=2, attempts=1),  # abandoned
            new_message(kind=OutboxKind.NOTIFICATION),
            new_message(book_id=2),
            new_message(status=OutboxStatus.DEAD),
            new_message(status=OutboxStatus.DELIVERED, delivered_at=earlier),
        ]
    )
    return [m.pk for m in claimed], {m.pk for m in claimed + waiting}


@pytest.mark.parametrize(
    ("stock_version", "published", "settles"),
    [(3, 3, True), (4, 3, False), (None, 3, True)],
    ids=["book unchanged", "book changed", "book never lent here"],
)
def test_settle_availability_delivers_what_the_orms_settle_delivered(stock_version, published, settles):
    if stock_version is not None:
        BookStock.objects.create(book_id=1, title="One", copies=1, version=stock_version)
    BookStock.objects.create(book_id=2, title="Two", copies=1, version=published + 1)  # another book's change
    claimed, unchanged_book_settles = settle_scenario()
    expected = settled_by_the_orm(1, claimed, published, NOW)
    assert expected == (unchanged_book_settles if settles else set())
    delivered_at = NOW + timedelta(milliseconds=1)
    settled = outbox.settle_availability([outbox.Published(1, published, claimed)], delivered_at)
    assert settled == ({1} if settles else set())
    assert set(OutboxMessage.objects.filter(delivered_at=delivered_at).values_list("pk", flat=True)) == expected
    assert set(OutboxMessage.objects.filter(pk__in=expected).values_list("status", "last_error")) <= {("DELIVERED", "")}


def test_settle_availability_settles_each_book_by_its_own_version_in_one_statement():
    """Three books published in one batch: two unchanged (one of them with a waiting message it settles
    too), one changed meanwhile (its claimed message stays as it was)."""
    for book_id, version in ((1, 3), (2, 7), (3, 5)):
        BookStock.objects.create(book_id=book_id, title=str(book_id), copies=1, version=version)
    later = NOW + timedelta(seconds=30)
    one, two, three = (
        outbox.insert_messages([new_message(book_id=b, next_attempt_at=later, claims=1)])[0] for b in (1, 2, 3)
    )
    [waiting_for_two] = outbox.insert_messages([new_message(book_id=2)])
    published = [outbox.Published(1, 3, [one.pk]), outbox.Published(2, 7, [two.pk]), outbox.Published(3, 4, [three.pk])]
    delivered_at = NOW + timedelta(milliseconds=1)
    with CaptureQueriesContext(connection) as statements:
        assert outbox.settle_availability(published, delivered_at) == {1, 2}
    assert len(statements) == 1
    delivered = set(OutboxMessage.objects.filter(status="DELIVERED").values_list("pk", flat=True))
    assert delivered == {one.pk, two.pk, waiting_for_two.pk}
    assert outbox.settle_availability([], delivered_at) == set()


def test_reopen_hands_the_claims_back_never_below_zero():
    delivered = {"status": OutboxStatus.DELIVERED, "delivered_at": NOW, "last_error": "kept"}
    reopened = outbox.insert_messages([new_message(claims=0, **delivered), new_message(claims=2, **delivered)])
    [other] = outbox.insert_messages([new_message(claims=2, **delivered)])
    due = NOW + timedelta(minutes=1)
    assert outbox.reopen([m.pk for m in reopened], due) == 2
    assert stored(*(m.pk for m in reopened), other.pk) == [
        (m.kind, m.book_id, m.payload, "PENDING", 0, claims, due, "kept", None, m.traceparent)
        for m, claims in zip(reopened, (0, 1), strict=True)
    ] + [(other.kind, other.book_id, other.payload, "DELIVERED", 0, 2, NOW, "kept", NOW, other.traceparent)]
