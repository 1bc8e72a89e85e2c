"""lending/precompiled.py: a statement compiled once does what the ORM does, for every value (and every
length of a list of ids); an INSERT written once inserts what bulk_create inserts; a SELECT compiled once
reads the instances or tuples the ORM reads. Run on PostgreSQL and on SQLite (DATABASE_URL=sqlite:///…),
whose compilers and converters differ."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Value
from django.utils import timezone

from lending import blocks, book_state, selectors
from lending.blocks import PatronBlock
from lending.models import OPEN_LOAN, BookStock, Hold, HoldStatus, Loan, OutboxKind, OutboxMessage, overdue_loan
from lending.outbox import relay
from lending.precompiled import Many, PrecompiledAggregate, PrecompiledSelect, PrecompiledUpdate, insert
from tests.factories import HoldFactory, LoanFactory

pytestmark = pytest.mark.django_db


def counts(book_id: int, patron: str, now: datetime) -> dict[str, int]:
    book, mine = Q(book_id=book_id), Q(user_email=patron)
    return Loan.objects.filter(OPEN_LOAN & (book | mine)).aggregate(
        book=Count("id", filter=book),
        open=Count("id", filter=mine),
        overdue=Count("id", filter=mine & overdue_loan(now)),
    )


SENTINELS: dict[str, Any] = {
    "book_id": 2_147_480_011,
    "patron": "sentinel@example.invalid",
    "now": datetime(1901, 2, 3, tzinfo=UTC),
}


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


def test_a_loan_inserted_is_the_loan_create_writes():
    now = timezone.now()

    def loan(patron: str) -> Loan:
        return Loan(user_email=patron, book_id=8, book_title="T", date_borrowed=now, date_due=now + timedelta(days=14))

    through_orm = Loan.objects.create(
        user_email="a@example.com", book_id=8, book_title="T", date_borrowed=now, date_due=now + timedelta(days=14)
    )
    [ours] = insert([loan("b@example.com")])
    assert ours.pk and not ours._state.adding and ours.status == through_orm.status
    stored = {row["id"]: {k: v for k, v in row.items() if k != "id"} for row in Loan.objects.values()}
    assert stored[ours.pk] == {**stored[through_orm.pk], "user_email": "b@example.com"}
    with pytest.raises(IntegrityError), transaction.atomic():
        insert([loan("b@example.com")])  # the one open loan per patron and book, as create() meets it


# --- Selects -----------------------------------------------------------------------------------------
def fields_of(rows: list) -> list:
    """What a list of instances holds (each concrete field, as Python values), and how they were read."""
    return [
        (
            type(obj),
            obj._state.adding,
            obj._state.db,
            {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields},
        )
        for obj in rows
    ]


NOW_SENTINEL = datetime(1901, 2, 3, 4, 5, 6, 789, tzinfo=UTC)


def test_the_compiled_select_reads_the_instances_the_orm_reads():
    """JSON and date-times included: SQLite answers them as text, the fields' converters read them."""
    now = timezone.now()
    for patron, expires in [
        ("a@example.com", None),
        ("a@example.com", now + timedelta(hours=1)),
        ("a@example.com", now - timedelta(hours=1)),
        ("b@example.com", None),
    ]:
        PatronBlock.objects.create(
            user_email=patron, reason="r", blocks=["borrow", "renew"], created_at=now, expires_at=expires
        )
    compiled = PrecompiledSelect(blocks._blocks_in_force_query, user_email="s@example.invalid", now=NOW_SENTINEL)
    for patron, at in [
        ("a@example.com", now),
        ("a@example.com", now - timedelta(days=1)),
        ("b@example.com", now),
        ("nobody@example.com", now),
    ]:
        expected = list(blocks._blocks_in_force_query(patron, at))
        assert fields_of(compiled(user_email=patron, now=at)) == fields_of(expected)
    [block, *_] = compiled(user_email="a@example.com", now=now)
    assert block.blocks == ["borrow", "renew"] and block.created_at == now


def test_the_books_open_holds_are_read_as_the_orm_reads_them():
    loan = LoanFactory(book_id=3)
    HoldFactory(book_id=3)
    HoldFactory(book_id=3, ready=True)
    HoldFactory(book_id=3, status=HoldStatus.FULFILLED, loan=loan, date_closed=timezone.now())
    HoldFactory(book_id=4)
    for book_id in (3, 4, 5):
        expected = list(book_state._open_holds_query(book_id))
        assert fields_of(book_state._OPEN_HOLDS(book_id=book_id)) == fields_of(expected)
    assert len(book_state._OPEN_HOLDS(book_id=3)) == 2


def test_values_list_rows_are_the_orms_tuples_for_every_length():
    BookStock.objects.create(book_id=1, title="One", copies=1, version=3)
    BookStock.objects.create(book_id=2, title="Two", copies=2, version=5)
    LoanFactory(book_id=1)
    HoldFactory(book_id=2, status=HoldStatus.WAITING)
    for ids in ([1], [2, 1], [1, 2, 9], [9]):
        expected = sorted(selectors._books_availability_query(ids))
        assert sorted(selectors._BOOKS_AVAILABILITY(book_ids=ids)) == expected
    assert selectors.books_availability([1, 2, 9]) == {1: (False, 3), 2: (True, 5), 9: (True, 0)}
    assert selectors.books_availability([]) == {}


def test_a_limit_written_into_the_sql_is_compiled_once_per_value():
    due = timezone.now()
    for minutes in (3, 1, 2, 5, 4):
        OutboxMessage.objects.create(
            kind=OutboxKind.EVENT, book_id=minutes, next_attempt_at=due - timedelta(minutes=minutes)
        )
    compiled = PrecompiledSelect(relay._claimable_query, shaped=("limit",), due_by=NOW_SENTINEL)
    for limit, at in [(2, due), (4, due), (2, due - timedelta(minutes=2)), (10, due - timedelta(minutes=9))]:
        expected = list(relay._claimable_query(at, limit))
        assert fields_of(compiled(due_by=at, limit=limit)) == fields_of(expected)
    assert len(compiled._compiled) == 3, "one per limit met (2, 4, 10)"


def test_each_select_is_one_statement(django_assert_num_queries):
    for _ in range(2):
        with django_assert_num_queries(1):
            book_state._OPEN_HOLDS(book_id=1)


def test_a_select_it_cannot_read_as_the_orm_does_is_refused():
    def with_related(book_id: int):
        return Hold.objects.filter(book_id=book_id).select_related("loan")

    def annotated(book_id: int):
        return Hold.objects.filter(book_id=book_id).annotate(n=Value(1))

    HoldFactory(book_id=7)
    for build in (with_related, annotated):
        with pytest.raises(AssertionError, match="plain model rows"):
            PrecompiledSelect(build, book_id=2_147_480_011)(book_id=7)
