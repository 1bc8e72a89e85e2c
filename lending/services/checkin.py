"""Check in a copy by its barcode: the desk, a book drop or a sorting machine scans the item alone.

- The copy is on loan: its open loan is returned exactly as `returnBook` returns it (a lost or
  claimed-returned loan is resolved as found; `returned_at` back-dates it), under the book lock.
- The copy is not on loan (a book drop scans everything, a second scan of the same copy): nothing is
  returned, `loan` is None, and nothing is recorded twice.
Either way the answer routes the copy: to the shelf, or to the hold shelf for a READY hold it is
trapped for (`Hold.item_barcode`): the first patron waiting when the return promoted them, or a READY
hold a copy was kept for by the count alone (a title-level return), or, for a copy not on loan, the
first patron waiting when the book has a copy free for them. Only that patron may check the copy out
until the hold is fulfilled or expires.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from lending.book_state import read_state
from lending.clients import books
from lending.db import holds, loans
from lending.locks import close_loan_of_copy, lock_book_bumping_version, lock_book_refreshing_stock
from lending.models import Hold, Loan
from lending.services.queue import book_changed, promote_waiting
from lending.services.return_book import Resolution, finish_return
from lending.write_context import SYSTEM_WRITE, WriteContext

SHELF = {"to": "shelf"}


@dataclass(frozen=True)
class CheckIn:
    """The loan the check-in returned (None when the copy was not on loan), and where the copy goes:
    `{"to": "shelf"}` or `{"to": "hold_shelf", "hold_id": n}`."""

    loan: Loan | None
    route: dict = field(default_factory=lambda: dict(SHELF))


def hold_shelf(hold: Hold) -> dict:
    return {"to": "hold_shelf", "hold_id": hold.pk}


def check_in(
    *, item_barcode: str, returned_at: datetime | None = None, context: WriteContext = SYSTEM_WRITE
) -> CheckIn:
    """A copy on loan is returned without asking any peer (as `returnBook`: it works while every peer
    is down). A copy not on loan is looked up at the Book service (its book, to route it), unless it
    already waits on the hold shelf (a repeated scan)."""
    return _check_in(item_barcode, returned_at, context, may_respell=True)


def _check_in(item_barcode: str, returned_at: datetime | None, context: WriteContext, *, may_respell: bool) -> CheckIn:
    book_id = loans.book_of_copy_on_loan(item_barcode)
    if book_id is not None:
        return _return_copy(item_barcode, book_id, returned_at, context)
    trapped = holds.trapped_hold(item_barcode)
    if trapped is not None:  # scanned again: still for the same hold
        return _settled(CheckIn(None, hold_shelf(trapped)), context)
    item = books.get_item(item_barcode)
    if item.barcode != item_barcode and may_respell:
        # The catalogue spells it otherwise (case): the loans use its spelling. Once only, so that a
        # catalogue answering each spelling with the other cannot send the check-in round forever.
        return _check_in(item.barcode, returned_at, context, may_respell=False)
    return _route_copy_not_on_loan(item.barcode, books.get_book(item.book_id), context)


def _return_copy(item_barcode: str, book_id: int, returned_at: datetime | None, context: WriteContext) -> CheckIn:
    """As `loan_return`, finding the loan by its copy: the book lock, then the loan closed under it."""
    with transaction.atomic():
        now = timezone.now()
        copies = lock_book_bumping_version(book_id)
        closed = close_loan_of_copy(item_barcode, book_id, now=returned_at or now, circulating_only=True)
        resolution = None
        if closed is None:  # lost or claimed returned (resolved as found), or returned meanwhile
            on_loan = Loan.objects.open().filter(item_barcode=item_barcode, book_id=book_id)
            missing = on_loan.select_for_update().first()
            if missing is not None:
                resolution = Resolution("found", was=missing.status)
                closed = close_loan_of_copy(item_barcode, book_id, now=returned_at or now, circulating_only=False)
        if closed is None:  # a concurrent check-in returned it first: this one has nothing to return
            return _settled(CheckIn(None, _route(item_barcode, book_id)), context)
        loan = finish_return(closed, book_id, copies, now=now, resolution=resolution, context=context)
        return _settled(CheckIn(loan, _route(item_barcode, book_id)), context)


def _route_copy_not_on_loan(item_barcode: str, book: books.BookInfo, context: WriteContext) -> CheckIn:
    """Under the book lock, refreshed with the copies the Book service just reported (as a lend
    does; no version bump: usually nothing changes): a copy not on loan goes to a READY hold kept a
    copy without one, or to the first patron waiting if the count has a copy free for them (the
    library added copies); else to the shelf."""
    with transaction.atomic():
        lock_book_refreshing_stock(book)
        if loans.book_of_copy_on_loan(item_barcode) is not None:
            # Checked out meanwhile (after this scan's first look): the check-in came first and found
            # nothing to return; the copy is out again.
            return _settled(CheckIn(None), context)
        route = _route(item_barcode, book.id)
        if route == SHELF:
            promoted = promote_waiting(
                read_state(book.id, book.copies), now=timezone.now(), context=context, traps=[item_barcode]
            )
            if promoted:
                book_changed(book.id)
                route = hold_shelf(promoted[0])
        return _settled(CheckIn(None, route), context)


def _route(item_barcode: str, book_id: int) -> dict:
    """Under the book lock: the READY hold the copy is trapped for, or the first READY hold of the
    book kept a copy by the count alone (it gets this one, trapped); else the shelf. One read."""
    hold = holds.hold_for_copy(item_barcode, book_id)
    if hold is None:
        return dict(SHELF)
    if hold.item_barcode is None:
        hold.item_barcode = item_barcode
        hold.save(update_fields=["item_barcode"])
    return hold_shelf(hold)


def _settled(result: CheckIn, context: WriteContext) -> CheckIn:
    """The claim's answer is stored in the check-in's transaction (a repeated scan opens one)."""
    if context.claim is not None:
        with transaction.atomic():
            context.settle(result)
    return result
