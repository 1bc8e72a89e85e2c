"""lending/db/state.py: the lend's one read (counts, holds, blocks) against the three statements it
replaces and the ORM, on PostgreSQL and on SQLite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, transaction

from lending import calendar
from lending.calendar import CALENDAR_ID
from lending.db import blocks, holds, loans, run, state
from lending.db import calendar as calendar_statements
from lending.models import Hold, HoldStatus, Loan, LoanStatus, PatronBlock

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 5, 10, 12, 0, 0, 654321, tzinfo=UTC)
PATRON = "reader@example.com"


def _fields(rows, names):
    return [tuple(getattr(row, name) for name in names) for row in rows]


HOLD_FIELDS = (
    "pk",
    "user_email",
    "book_id",
    "book_title",
    "status",
    "date_reserved",
    "date_ready",
    "pickup_deadline",
    "date_closed",
    "loan_id",
    "item_barcode",
)
BLOCK_FIELDS = ("pk", "user_email", "reason", "blocks", "created_at", "expires_at", "created_by")


def test_an_empty_library_reads_as_nothing():
    read = state.read_book_and_patron(1, PATRON, NOW)
    assert (read.book_open_loans, read.patron_loans, read.holds, read.blocks) == (0, loans.PatronLoans(), [], [])
    assert read.calendar == calendar_statements.read_closed_days(CALENDAR_ID)


def test_the_one_read_is_the_three_it_replaces():
    loan = Loan.objects.create(
        user_email="other@example.com", book_id=1, date_borrowed=NOW, date_due=NOW + timedelta(days=1)
    )
    Loan.objects.create(
        user_email=PATRON, book_id=2, date_borrowed=NOW, date_due=NOW - timedelta(days=3), status=LoanStatus.OVERDUE
    )
    Hold.objects.create(
        user_email="é@example.com",
        book_id=1,
        book_title="L’Étranger",
        status=HoldStatus.READY,
        date_reserved=NOW - timedelta(days=2),
        date_ready=NOW,
        pickup_deadline=NOW + timedelta(days=3),
        item_barcode="39000101",
    )
    Hold.objects.create(user_email=PATRON, book_id=1, status=HoldStatus.WAITING, date_reserved=NOW)
    Hold.objects.create(
        user_email="gone@example.com",
        book_id=1,
        status=HoldStatus.FULFILLED,
        date_reserved=NOW,
        date_closed=NOW,
        loan=loan,
    )
    PatronBlock.objects.create(
        user_email=PATRON, reason='Said "no"', blocks=["borrow", "renew"], created_at=NOW, created_by="desk"
    )
    PatronBlock.objects.create(
        user_email=PATRON, reason="expired", blocks=["borrow"], created_at=NOW, expires_at=NOW - timedelta(days=1)
    )
    PatronBlock.objects.create(
        user_email=PATRON, reason="until", blocks=["reserve"], created_at=NOW, expires_at=NOW + timedelta(days=1)
    )
    read = state.read_book_and_patron(1, PATRON, NOW)
    book, patron_loans = loans.count_book_and_patron_loans(1, PATRON, NOW)
    assert (read.book_open_loans, read.patron_loans) == (book, patron_loans)
    assert _fields(read.holds, HOLD_FIELDS) == _fields(holds.open_holds_of_book(1), HOLD_FIELDS)
    assert _fields(read.blocks, BLOCK_FIELDS) == _fields(blocks.blocks_in_force(PATRON, NOW), BLOCK_FIELDS)
    assert [h.user_email for h in read.holds] == ["é@example.com", PATRON]
    assert [b.reason for b in read.blocks] == ['Said "no"', "until"]
    assert all(not row._state.adding for row in [*read.holds, *read.blocks])


def test_the_calendar_rides_in_the_one_read():
    calendar.set_calendar(["sunday"], ["2026-12-25"])
    read = state.read_book_and_patron(1, PATRON, NOW)
    assert read.calendar == calendar_statements.read_closed_days(CALENDAR_ID) == (["sunday"], ["2026-12-25"])


def test_a_lend_takes_its_loans_id_with_the_state_and_nothing_else_does():
    assert state.read_book_and_patron(1, PATRON, NOW).next_loan_id is None
    first = state.read_book_and_patron(1, PATRON, NOW, for_lend=True).next_loan_id
    assert isinstance(first, int) and first > 0
    loan = Loan(
        pk=first, user_email=PATRON, book_id=1, date_borrowed=NOW, date_due=NOW + timedelta(days=1), loan_policy=""
    )
    run.together([loans.loan_with_id_insert(loan)])
    assert Loan.objects.get(pk=first).user_email == PATRON
    # The next lend takes a later id, and a loan the ORM inserts afterwards does not collide with it.
    assert state.read_book_and_patron(1, PATRON, NOW, for_lend=True).next_loan_id > first
    assert Loan.objects.create(user_email="x@example.com", book_id=2, date_borrowed=NOW, date_due=NOW).pk > first


def test_a_reservation_takes_its_holds_id_with_the_state_and_its_insert_is_what_the_orm_reads_back():
    plain = state.read_book_and_patron(1, PATRON, NOW)
    assert plain.next_hold_id is None and plain.next_loan_id is None
    first = state.read_book_and_patron(1, PATRON, NOW, for_reserve=True).next_hold_id
    assert isinstance(first, int) and first > 0
    assert state.read_book_and_patron(1, PATRON, NOW, for_reserve=True).next_loan_id is None
    hold = Hold(pk=first, user_email=PATRON, book_id=1, book_title="Dune", date_reserved=NOW)
    run.together([holds.waiting_hold_with_id_insert(hold)])
    assert not hold._state.adding
    read = Hold.objects.get(pk=first)
    by_orm = Hold.objects.create(user_email="other@example.com", book_id=1, book_title="Dune", date_reserved=NOW)
    assert by_orm.pk > first  # the ORM's next hold does not collide with the id taken
    for field in Hold._meta.concrete_fields:
        if field.attname not in ("id", "user_email"):
            assert getattr(read, field.attname) == getattr(by_orm, field.attname), field.name
    # A second open hold of the patron for the book is refused by the constraint, as the ORM's would be.
    again = Hold(
        pk=state.read_book_and_patron(1, PATRON, NOW, for_reserve=True).next_hold_id,
        user_email=PATRON,
        book_id=1,
        book_title="Dune",
        date_reserved=NOW,
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        run.together([holds.waiting_hold_with_id_insert(again)])
