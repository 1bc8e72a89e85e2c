""" "A copy is free" is one rule evaluated two ways: `BookState.copies_free_for` over the rows read
under the book's lock (lend, reserve), and `selectors.books_availability` in one SQL query per relay
batch (the availability published to the Book service). For a patron who is not in the queue both
must say the same, whatever the book's loans (circulating, lost, claimed returned, returned) and
holds (waiting, ready, closed)."""

from __future__ import annotations

import itertools

import pytest

from lending import selectors
from lending.book_state import read_state
from lending.models import HoldStatus, LoanStatus
from tests.factories import BookStockFactory, HoldFactory, LoanFactory, days

pytestmark = pytest.mark.django_db

LOANS = [LoanStatus.ACTIVE, LoanStatus.LOST, LoanStatus.CLAIMED_RETURNED, LoanStatus.RETURNED]
HOLDS = [HoldStatus.WAITING, HoldStatus.READY, HoldStatus.CANCELLED]


def test_the_lock_and_the_relay_agree_on_a_free_copy():
    seen = set()
    cases = itertools.product(range(1, 4), itertools.combinations_with_replacement(LOANS, 2), HOLDS)
    for book_id, (copies, loans, hold) in enumerate(cases, start=1):
        BookStockFactory(book_id=book_id, copies=copies)
        for status in loans:
            returned = status == LoanStatus.RETURNED
            LoanFactory(book_id=book_id, status=status, returned=returned, due_in=days(-1))
        HoldFactory(book_id=book_id, status=hold, ready=hold == HoldStatus.READY)
        under_the_lock = read_state(book_id, copies).copies_free_for("not-queued@example.com") > 0
        published, _ = selectors.books_availability([book_id])[book_id]
        assert published == under_the_lock, (copies, loans, hold)
        seen.add(published)
    assert seen == {True, False}, "both answers were exercised"
