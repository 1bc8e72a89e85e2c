"""The reads (lending/selectors.py) against PostgreSQL: overdue loans, a patron's loans with the status a
client sees, a book's availability as the relay publishes it, and holds with their queue position."""

from __future__ import annotations

import pytest

from lending import selectors
from lending.models import HoldStatus, LoanStatus
from tests.factories import BookStockFactory, HoldFactory, LoanFactory, days

pytestmark = pytest.mark.django_db


def test_overdue_loans_are_the_open_loans_past_due_oldest_due_first():
    later = LoanFactory(due_in=days(-1))
    earlier = LoanFactory(due_in=days(-5))
    LoanFactory(due_in=days(3))
    LoanFactory(due_in=days(-9), returned=True)
    assert list(selectors.overdue_loans()) == [earlier, later]


def test_a_loan_past_due_shows_overdue_before_the_job_persists_it():
    late = LoanFactory(user_email="a@example.com", due_in=days(-1))
    assert late.status == LoanStatus.ACTIVE
    assert [loan.pk for loan in selectors.loans(status=LoanStatus.OVERDUE)] == [late.pk]
    assert list(selectors.loans(status=LoanStatus.ACTIVE)) == []


def test_loans_are_filtered_by_patron_and_book_newest_first():
    old = LoanFactory(user_email="a@example.com", book_id=1, borrowed_ago=days(9))
    new = LoanFactory(user_email="a@example.com", book_id=2, borrowed_ago=days(1))
    LoanFactory(user_email="b@example.com", book_id=1)
    assert list(selectors.loans(user_email="a@example.com")) == [new, old]
    assert list(selectors.loans(user_email="a@example.com", book_id=1)) == [old]


def test_a_book_never_lent_here_is_available_at_version_zero():
    assert selectors.book_is_available(424242) == (True, 0)


def test_a_copy_on_loan_or_kept_for_a_hold_is_not_available():
    stock = BookStockFactory(copies=2, version=4)
    assert selectors.book_is_available(stock.book_id) == (True, 4)
    LoanFactory(book_id=stock.book_id)
    assert selectors.book_is_available(stock.book_id) == (True, 4)
    HoldFactory(book_id=stock.book_id, ready=True)
    assert selectors.book_is_available(stock.book_id) == (False, 4)


def test_holds_come_in_queue_order_with_their_position():
    ready = HoldFactory(book_id=7, ready=True)
    first, second = HoldFactory(book_id=7), HoldFactory(book_id=7)
    HoldFactory(book_id=7, status=HoldStatus.CANCELLED)
    listed = list(selectors.holds(book_id=7))
    assert [(h.pk, h.queue_position) for h in listed] == [(ready.pk, None), (first.pk, 1), (second.pk, 2)]
