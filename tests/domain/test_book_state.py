"""The book's state (lending/book_state.py) without a database: copies on the shelf, the copies free for a
patron, whom returned copies go to, and queue positions, over holds built in memory."""

from __future__ import annotations

import pytest

from lending.book_state import BookState, PatronLoans
from lending.models import Hold, HoldStatus
from tests.factories import HoldFactory


def hold(pk: int, email: str, status: str = HoldStatus.WAITING) -> Hold:
    return HoldFactory.build(pk=pk, user_email=email, book_id=7, status=status)


def state(copies: int, open_loans: int, *holds: Hold) -> BookState:
    return BookState(book_id=7, copies=copies, open_loans=open_loans, holds=list(holds))


def test_copies_on_the_shelf_are_the_copies_not_on_loan():
    assert state(3, 1).copies_on_shelf() == 2
    assert state(1, 1).copies_on_shelf() == 0


def test_without_holds_every_copy_on_the_shelf_is_free_for_anyone():
    assert state(3, 1).copies_free_for("anyone@example.com") == 2


def test_a_patron_outside_the_queue_finds_free_only_what_nobody_waits_or_is_kept_for():
    book = state(4, 1, hold(1, "ready@example.com", HoldStatus.READY), hold(2, "waiting@example.com"))
    assert book.copies_free_for("outsider@example.com") == 1


def test_a_waiting_patron_counts_only_those_ahead_in_the_queue():
    first, second = hold(1, "first@example.com"), hold(2, "second@example.com")
    book = state(1, 0, first, second)
    assert book.copies_free_for("first@example.com") == 1
    assert book.copies_free_for("second@example.com") == 0


def test_a_ready_hold_keeps_its_copy_for_its_own_patron_only():
    book = state(1, 0, hold(1, "ready@example.com", HoldStatus.READY), hold(2, "waiting@example.com"))
    assert book.copies_free_for("ready@example.com") == 1
    # None left for anyone else (the count may go below zero: the policy refuses at <= 0).
    assert book.copies_free_for("waiting@example.com") <= 0
    assert book.copies_free_for("outsider@example.com") <= 0


def test_copies_on_the_shelf_kept_for_no_ready_hold_go_to_the_first_waiting_patrons():
    first, second, third = hold(1, "a@example.com"), hold(2, "b@example.com"), hold(3, "c@example.com")
    ready = hold(4, "r@example.com", HoldStatus.READY)
    assert state(3, 0, ready, first, second, third).copies_to_promote() == [first, second]
    assert state(1, 0, ready, first).copies_to_promote() == []
    assert state(1, 3, first).copies_to_promote() == []  # more loans than copies: nothing to give


def test_queue_position_counts_the_waiting_holds_ahead_and_is_none_unless_waiting():
    ready, first, second = (
        hold(1, "r@example.com", HoldStatus.READY),
        hold(2, "a@example.com"),
        hold(5, "b@example.com"),
    )
    book = state(1, 1, ready, first, second)
    assert [book.position_of(first), book.position_of(second)] == [1, 2]
    assert book.position_of(ready) is None


def test_holds_are_found_by_patron_and_split_by_status():
    ready, waiting = hold(1, "r@example.com", HoldStatus.READY), hold(2, "w@example.com")
    book = state(2, 0, ready, waiting)
    assert book.hold_of("w@example.com") is waiting
    assert book.hold_of("nobody@example.com") is None
    assert (book.ready, book.waiting) == ([ready], [waiting])


@pytest.mark.parametrize("counts", [PatronLoans(), PatronLoans(open=2, overdue=1, of_this_book=1)])
def test_the_patrons_loans_travel_with_the_state_as_read(counts):
    book = BookState(book_id=7, copies=1, open_loans=0, patron_loans=counts)
    assert book.patron_loans == counts


@pytest.mark.django_db
def test_the_lends_patron_counts_are_the_patrons_own():
    """A lend reads the patron's loans with the book's (one query) and hands them to the blocks;
    `count_patron_loans` reads them alone (renewals, the status screen). Both say the same."""
    from django.utils import timezone

    from lending.book_state import read_state
    from lending.db.loans import count_patron_loans
    from lending.models import LoanStatus
    from tests.factories import LoanFactory, days

    now = timezone.now()
    patron = "counted@example.com"
    LoanFactory(user_email=patron, book_id=1, due_in=days(-5))
    longest = LoanFactory(user_email=patron, book_id=2, due_in=days(-9))
    LoanFactory(user_email=patron, book_id=3, due_in=days(-40), status=LoanStatus.LOST)
    LoanFactory(user_email=patron, book_id=4, due_in=days(-2), status=LoanStatus.CLAIMED_RETURNED)
    LoanFactory(user_email=patron, book_id=5, returned=True)
    LoanFactory(user_email="someone-else@example.com", book_id=1, due_in=days(-20))
    alone = count_patron_loans(patron, now)
    with_the_book = read_state(1, 3, patron=patron, now=now)
    assert with_the_book.open_loans == 2  # the book's, whoever holds them
    assert with_the_book.patron_loans == PatronLoans(
        open=4, overdue=2, of_this_book=1, lost=1, oldest_overdue_due=alone.oldest_overdue_due
    )
    assert alone == PatronLoans(open=4, overdue=2, lost=1, oldest_overdue_due=longest.date_due)
