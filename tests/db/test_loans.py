"""lending/db/loans.py: each statement against the ORM's reading of the same words (`lending.models`:
open, circulating, overdue, unresolved lost), on PostgreSQL and on SQLite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Min

from lending.db import loans, run
from lending.models import OPEN_LOAN, UNRESOLVED_LOST_LOAN, BookStock, Hold, HoldStatus, Loan, LoanStatus, overdue_loan

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 5, 10, 12, 0, 0, 123456, tzinfo=UTC)
PATRON, OTHER = "reader@example.com", "other@example.com"


def _loan(user_email: str, book_id: int, *, due_in_days: float, status: str = LoanStatus.ACTIVE, **fields) -> Loan:
    return Loan.objects.create(
        user_email=user_email,
        book_id=book_id,
        date_borrowed=NOW - timedelta(days=30),
        date_due=NOW + timedelta(days=due_in_days),
        status=status,
        **fields,
    )


@pytest.fixture
def library():
    """Loans of every kind the counts tell apart: open and returned, due and overdue (by a microsecond
    too), lost and claimed returned, of the patron and of another, of book 1 and of others."""
    _loan(PATRON, 1, due_in_days=3)
    _loan(PATRON, 2, due_in_days=-2, item_type="dvd")
    _loan(PATRON, 3, due_in_days=-9, status=LoanStatus.OVERDUE, item_type="dvd")
    _loan(PATRON, 4, due_in_days=-40, status=LoanStatus.LOST)
    _loan(PATRON, 5, due_in_days=-50, status=LoanStatus.CLAIMED_RETURNED)
    _loan(PATRON, 6, due_in_days=-1, status=LoanStatus.RETURNED, date_returned=NOW - timedelta(hours=1))
    _loan(PATRON, 7, due_in_days=-1 / 86_400_000_000)  # overdue by a microsecond
    _loan(OTHER, 1, due_in_days=-5, item_type="dvd")
    _loan(OTHER, 8, due_in_days=2)


def _orm_patron_counts(user_email: str, *, book_id: int | None = None) -> loans.PatronLoans:
    mine = Loan.objects.filter(OPEN_LOAN, user_email=user_email)
    return loans.PatronLoans(
        open=mine.count(),
        overdue=mine.filter(overdue_loan(NOW)).count(),
        of_this_book=mine.filter(book_id=book_id).count() if book_id is not None else 0,
        lost=mine.filter(UNRESOLVED_LOST_LOAN).count(),
        oldest_overdue_due=mine.filter(overdue_loan(NOW)).aggregate(oldest=Min("date_due"))["oldest"],
    )


def test_count_patron_loans_is_the_orms_count(library):
    for patron in (PATRON, OTHER, "nobody@example.com"):
        assert loans.count_patron_loans(patron, NOW) == _orm_patron_counts(patron)


def test_count_book_and_patron_loans_is_the_orms_count(library):
    for book_id in (1, 2, 6, 99):
        for patron in (PATRON, OTHER, "nobody@example.com"):
            book, counted = loans.count_book_and_patron_loans(book_id, patron, NOW)
            assert book == Loan.objects.filter(OPEN_LOAN, book_id=book_id).count()
            assert counted == _orm_patron_counts(patron, book_id=book_id)
            assert loans.count_open_loans_of_book(book_id) == book


def test_count_patron_loans_of_type_is_the_orms_count(library):
    for patron in (PATRON, OTHER):
        for item_type in ("dvd", "book"):
            expected = Loan.objects.filter(OPEN_LOAN, user_email=patron, item_type=item_type).count()
            assert loans.count_patron_loans_of_type(patron, item_type) == expected


def test_insert_loan_writes_what_the_orm_would_read_back():
    loan = Loan(
        pk=777,
        user_email=PATRON,
        book_id=11,
        book_title="Dune",
        date_borrowed=NOW,
        date_due=NOW + timedelta(days=14),
        item_barcode="3900011",
        item_type="book",
        loan_policy="default",
        policy_terms={"loan_days": 14, "fine_per_day": "0.25"},
    )
    run.together([loans.loan_with_id_insert(loan)])
    inserted = loan
    read = Loan.objects.get(pk=777)
    assert not inserted._state.adding
    assert (read.status, read.renewals, read.date_returned, read.fine_amount, read.fine_days_charged) == (
        LoanStatus.ACTIVE,
        0,
        None,
        None,
        None,
    )
    for field in (
        "user_email",
        "book_id",
        "book_title",
        "date_borrowed",
        "date_due",
        "item_barcode",
        "item_type",
        "loan_policy",
        "policy_terms",
    ):
        assert getattr(read, field) == getattr(loan, field), field


def test_renewal_update_writes_what_saving_the_renewed_loan_would(library):
    """The renewal's UPDATE changes the due date, the renewals and the status of the one loan, as the
    ORM's `save(update_fields=...)` of the same instance does (the two loans end alike)."""
    by_statement, by_orm = (_loan(PATRON, book_id, due_in_days=-2, status=LoanStatus.OVERDUE) for book_id in (20, 21))
    for loan in (by_statement, by_orm):
        loan.date_due, loan.renewals, loan.status = NOW + timedelta(days=14, microseconds=7), 2, LoanStatus.ACTIVE
    run.together([loans.renewal_update(by_statement)])
    by_orm.save(update_fields=["date_due", "renewals", "status"])
    written = Loan.objects.filter(pk__in=[by_statement.pk, by_orm.pk]).values("date_due", "renewals", "status")
    assert (
        list(written) == [{"date_due": NOW + timedelta(days=14, microseconds=7), "renewals": 2, "status": "ACTIVE"}] * 2
    )
    untouched = Loan.objects.exclude(pk__in=[by_statement.pk, by_orm.pk])
    assert not untouched.filter(renewals=2).exists()


def test_borrower_of_copy_names_the_open_loans_patron_only(library):
    _loan(OTHER, 9, due_in_days=1, item_barcode="39000901")
    _loan(PATRON, 9, due_in_days=1, item_barcode="39000902", status=LoanStatus.RETURNED, date_returned=NOW)
    assert loans.borrower_of_copy("39000901") == OTHER
    assert loans.borrower_of_copy("39000902") is None
    assert loans.borrower_of_copy("unknown") is None
    for barcode in ("39000901", "39000902", "unknown"):
        on_loan = Loan.objects.filter(OPEN_LOAN, item_barcode=barcode).values_list("book_id", flat=True).first()
        assert loans.book_of_copy_on_loan(barcode) == on_loan
    assert loans.book_of_copy_on_loan("39000901") == 9


@pytest.mark.parametrize("circulating_only", [True, False])
def test_close_open_loan_closes_the_one_loan_named_and_says_who_waits(library, circulating_only):
    Hold.objects.create(user_email=OTHER, book_id=4, status=HoldStatus.WAITING, date_reserved=NOW)
    Hold.objects.create(
        user_email=OTHER, book_id=1, status=HoldStatus.READY, date_reserved=NOW, date_ready=NOW, pickup_deadline=NOW
    )
    lost = Loan.objects.get(user_email=PATRON, book_id=4)
    closed = loans.close_open_loan(
        "patron_and_book", [PATRON, 4], book_id=4, now=NOW, circulating_only=circulating_only
    )
    if circulating_only:  # a lost loan is not circulating: nothing closed
        assert closed is None
        assert Loan.objects.get(pk=lost.pk).date_returned is None
        return
    assert closed is not None
    loan, someone_waits = closed
    assert (loan.pk, loan.status, loan.date_returned, someone_waits) == (lost.pk, LoanStatus.RETURNED, NOW, True)
    assert Loan.objects.get(pk=lost.pk).status == LoanStatus.RETURNED
    # Only READY holds on book 1: nobody waits.
    loan_1, waits = loans.close_open_loan("patron_and_book", [PATRON, 1], book_id=1, now=NOW, circulating_only=True)
    assert (loan_1.book_id, waits) == (1, False)
    assert Loan.objects.filter(OPEN_LOAN, book_id=1).count() == 1  # the other patron's loan stays open


def test_close_open_loan_by_copy_and_by_id(library):
    copy = _loan(OTHER, 9, due_in_days=1, item_barcode="39000901")
    assert loans.close_open_loan("copy_of_book", ["39000901", 8], book_id=8, now=NOW, circulating_only=True) is None
    closed, _ = loans.close_open_loan("copy_of_book", ["39000901", 9], book_id=9, now=NOW, circulating_only=True)
    assert closed.pk == copy.pk
    again = loans.close_open_loan("copy_of_book", ["39000901", 9], book_id=9, now=NOW, circulating_only=False)
    assert again is None  # already returned
    claimed = Loan.objects.get(user_email=PATRON, book_id=5)
    closed, _ = loans.close_open_loan("loan", [claimed.pk], book_id=5, now=NOW, circulating_only=False)
    assert (closed.pk, closed.status) == (claimed.pk, LoanStatus.RETURNED)


def test_books_availability_counts_open_loans_and_open_holds(library):
    BookStock.objects.create(book_id=1, copies=3, version=4)
    BookStock.objects.create(book_id=6, copies=1, version=2)
    BookStock.objects.create(book_id=8, copies=1, version=0)
    Hold.objects.create(user_email="h@example.com", book_id=1, status=HoldStatus.WAITING, date_reserved=NOW)
    Hold.objects.create(user_email="i@example.com", book_id=1, status=HoldStatus.CANCELLED, date_reserved=NOW)
    rows = sorted(loans.books_availability([1, 6, 8, 404]))
    # book 1: two open loans (the patron's, the other's) and one open hold; book 6: its loan returned.
    assert rows == [(1, 3, 4, 2, 1), (6, 1, 2, 0, 0), (8, 1, 0, 1, 0)]
    assert loans.books_availability([]) == []
