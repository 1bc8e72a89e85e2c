"""lending/precompiled.py: a statement compiled once does what the ORM does, for every value (and every
length of a list of ids); an INSERT written once inserts what bulk_create inserts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Count, Q, Value
from django.utils import timezone

from lending.models import OPEN_LOAN, Hold, Loan, OutboxKind, OutboxMessage, overdue_loan
from lending.precompiled import Many, PrecompiledAggregate, PrecompiledUpdate, insert
from tests.factories import HoldFactory, LoanFactory

pytestmark = pytest.mark.django_db


def counts(book_id: int, patron: str, now: datetime) -> dict[str, int]:
    book, mine = Q(book_id=book_id), Q(user_email=patron)
    return Loan.objects.filter(OPEN_LOAN & (book | mine)).aggregate(
        book=Count("id", filter=book),
        open=Count("id", filter=mine),
        overdue=Count("id", filter=mine & overdue_loan(now)),
    )


SENTINELS = {"book_id": 2_147_480_011, "patron": "sentinel@example.invalid", "now": datetime(1901, 2, 3, tzinfo=UTC)}


def test_the_compiled_aggregate_answers_what_the_orm_answers():
    now = timezone.now()
    LoanFactory(user_email="a@example.com", book_id=1, date_due=now - timedelta(days=1))
    LoanFactory(user_email="a@example.com", book_id=2, date_due=now + timedelta(days=1))
    LoanFactory(user_email="b@example.com", book_id=1, date_due=now + timedelta(days=1))
    compiled = PrecompiledAggregate(counts, **SENTINELS)
    for book_id, patron, at in [
        (1, "a@example.com", now),
        (2, "b@example.com", now),
        (1, "b@example.com", now - timedelta(days=3)),
        (9, "nobody@example.com", now),
    ]:
        assert compiled(book_id=book_id, patron=patron, now=at) == counts(book_id, patron, at)


def test_each_call_is_one_statement_the_first_one_too(django_assert_num_queries):
    compiled = PrecompiledAggregate(counts, **SENTINELS)
    for _ in range(2):  # the first call also compiles: its run with the sentinels is not counted
        with django_assert_num_queries(1):
            compiled(book_id=1, patron="a@example.com", now=timezone.now())


def test_a_sentinel_the_orm_transforms_is_refused():
    def lowered(book_id: int, patron: str, now: datetime) -> dict[str, int]:
        return counts(book_id, patron.lower(), now)

    with pytest.raises(AssertionError, match="patron"):
        PrecompiledAggregate(lowered, **{**SENTINELS, "patron": "Sentinel@Example.invalid"})(
            book_id=1, patron="a@example.com", now=timezone.now()
        )


# --- Updates, with a list of ids -----------------------------------------------------------------------
def mark(ids: list[int], book_id: int, marker: str) -> int:
    return OutboxMessage.objects.filter(Q(pk__in=ids) | Q(book_id=book_id, kind=OutboxKind.AVAILABILITY)).update(
        last_error=marker
    )


def marked_by(run) -> tuple[int, set[int]]:
    """The rows `run` marks, from a clean slate."""
    OutboxMessage.objects.update(last_error="")
    count = run()
    return count, set(OutboxMessage.objects.exclude(last_error="").values_list("id", flat=True))


def messages(book_id: int, count: int, kind: str = OutboxKind.NOTIFICATION) -> list[int]:
    rows = [OutboxMessage(kind=kind, book_id=book_id, next_attempt_at=timezone.now()) for _ in range(count)]
    return [message.pk for message in OutboxMessage.objects.bulk_create(rows)]


def test_the_compiled_update_does_what_the_orm_does_for_every_length():
    compiled = PrecompiledUpdate(mark, ids=Many(2_000_000_000), book_id=2_147_480_011, marker="sentinel marker")
    notices = messages(1, 4)
    messages(2, 2, OutboxKind.AVAILABILITY)
    cases = [  # (ids, book_id), and how many rows the ORM marks
        ((notices[:1], 9), 1),
        ((notices[1:4], 2), 5),  # and the book's availability messages
        (([notices[0], notices[0], notices[2]], 9), 2),  # the ORM binds an id once
        ((notices[2:3], 2), 3),
        (([987_654], 9), 0),
    ]
    for (ids, book_id), count in cases:
        expected = marked_by(lambda ids=ids, book_id=book_id: mark(ids, book_id, "orm"))
        assert expected[0] == count
        assert marked_by(lambda ids=ids, book_id=book_id: compiled(ids=ids, book_id=book_id, marker="m")) == expected
    assert len(compiled._compiled) == 3, "compiled once per list length (1, 3, 2)"


def test_each_update_is_one_statement_whatever_the_length(django_assert_num_queries):
    compiled = PrecompiledUpdate(mark, ids=Many(2_000_000_000), book_id=2_147_480_011, marker="sentinel marker")
    ids = messages(1, 3)
    for length in (1, 3, 1):
        with django_assert_num_queries(1):
            assert compiled(ids=ids[:length], book_id=9, marker="m") == length


def test_a_list_the_orm_drops_is_refused():
    def ignoring_ids(ids: list[int], book_id: int, marker: str) -> int:
        return mark([], book_id, marker)

    compiled = PrecompiledUpdate(ignoring_ids, ids=Many(2_000_000_000), book_id=2_147_480_011, marker="sentinel")
    with pytest.raises(AssertionError, match="ids"):
        compiled(ids=[1], book_id=1, marker="m")


# --- Inserts -----------------------------------------------------------------------------------------
COLUMNS = ["kind", "book_id", "payload", "status", "attempts", "claims", "last_error", "traceparent"]


def test_insert_writes_what_bulk_create_writes_and_sets_the_ids():
    def rows() -> list[OutboxMessage]:
        return [
            OutboxMessage(kind=OutboxKind.NOTIFICATION, book_id=3, payload={"é": [1, None]}, next_attempt_at=now),
            OutboxMessage(kind=OutboxKind.AVAILABILITY, book_id=4, next_attempt_at=now),
        ]

    now = timezone.now()
    through_orm, inserted = OutboxMessage.objects.bulk_create(rows()), insert(rows())
    assert all(message.pk and not message._state.adding for message in inserted)
    stored = {row["id"]: row for row in OutboxMessage.objects.values("id", "created_at", "key", *COLUMNS)}
    for orm, ours in zip(through_orm, inserted, strict=True):
        assert {k: stored[orm.pk][k] for k in COLUMNS} == {k: stored[ours.pk][k] for k in COLUMNS}
        assert stored[ours.pk]["key"] == ours.key and stored[ours.pk]["created_at"] == ours.created_at
    assert insert([]) == []


def test_insert_hands_rows_it_does_not_write_plainly_to_bulk_create():
    [hold] = insert([HoldFactory.build(book_id=5)])  # a relation
    [message] = insert(
        [OutboxMessage(kind=OutboxKind.EVENT, book_id=6, next_attempt_at=timezone.now(), claims=Value(3))]
    )
    assert Hold.objects.get(pk=hold.pk).book_id == 5
    assert OutboxMessage.objects.get(pk=message.pk).claims == 3


def test_insert_is_one_statement(django_assert_num_queries):
    rows = [OutboxMessage(kind=OutboxKind.EVENT, book_id=n, next_attempt_at=timezone.now()) for n in range(3)]
    with django_assert_num_queries(1):
        insert(rows)
