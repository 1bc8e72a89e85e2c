"""One book's state under its lock, read-only: its copies, open loans and holds queue, and (for a
lend) the patron's open loans.

`BookState` is read inside the transaction that holds the book's lock (`lending.locks`), or, for a
dry run, without any lock. Copies are promised in this order: open loans first, then READY holds (a
returned copy kept for its patron), then WAITING holds in queue (id) order; only what is left may be
lent to someone not in the queue. Nothing here writes: the services change holds and loans
(`lending.services`), then update the state they hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from lending import calendar
from lending.db import holds, loans, state
from lending.db.loans import PatronLoans
from lending.models import Hold, HoldStatus, PatronBlock

__all__ = ["BookState", "PatronLoans", "read_state"]


@dataclass
class BookState:
    book_id: int
    copies: int
    open_loans: int
    # Open holds (WAITING and READY) in queue order.
    holds: list[Hold] = field(default_factory=list)
    # Read with the book's state when a lend or a reservation asks for it (`read_state(patron=)`).
    patron_loans: PatronLoans | None = None
    patron_blocks: list[PatronBlock] | None = None  # the patron's blocks in force, oldest first
    next_loan_id: int | None = None  # a lend's: the id its loan takes (`read_state(for_lend=True)`)
    next_hold_id: int | None = None  # a reservation's: the id its hold takes (`read_state(for_reserve=True)`)

    @property
    def ready(self) -> list[Hold]:
        return [h for h in self.holds if h.status == HoldStatus.READY]

    @property
    def waiting(self) -> list[Hold]:
        """Who waits for this book, in queue order (`Hold.objects.waiting_for`, already read)."""
        return [h for h in self.holds if h.status == HoldStatus.WAITING]

    def hold_of(self, user_email: str) -> Hold | None:
        return next((h for h in self.holds if h.user_email == user_email), None)

    def copies_on_shelf(self) -> int:
        """Copies not on loan, whether or not a hold keeps them."""
        return self.copies - self.open_loans

    def copies_free_for(self, user_email: str) -> int:
        """Copies this patron could borrow now: those on the shelf, less the ones kept for other
        READY holds and for the WAITING patrons ahead of them (everyone waiting, if not queued).
        `lending.selectors.books_availability` is the same count for a patron not in the queue."""
        own = self.hold_of(user_email)
        ready_for_others = sum(1 for h in self.ready if h is not own)
        if own is not None and own.status == HoldStatus.READY:
            ahead = 0
        else:
            ahead = sum(1 for h in self.waiting if own is None or h.pk < own.pk)
        return self.copies_on_shelf() - ready_for_others - ahead

    def copies_to_promote(self) -> list[Hold]:
        """The WAITING holds that copies on the shelf, kept for no READY hold, should go to."""
        free = self.copies_on_shelf() - len(self.ready)
        return self.waiting[: max(free, 0)]

    def position_of(self, hold: Hold) -> int | None:
        """1 for the next patron to get a copy; None unless the hold is WAITING (the same count as
        `lending.models.queue_position`, over the holds already read)."""
        if hold.status != HoldStatus.WAITING:
            return None
        return 1 + sum(1 for h in self.waiting if h.pk < hold.pk)


def read_state(
    book_id: int,
    copies: int,
    *,
    patron: str | None = None,
    now: datetime | None = None,
    for_lend: bool = False,
    for_reserve: bool = False,
) -> BookState:
    """The book's open loans and open holds; given a `patron`, also their open loans (`PatronLoans`
    at `now`) and blocks in force, all in one statement (`lending.db.state`)."""
    if patron is None:
        return BookState(
            book_id=book_id,
            copies=copies,
            open_loans=loans.count_open_loans_of_book(book_id),
            holds=holds.open_holds_of_book(book_id),
        )
    read = state.read_book_and_patron(
        book_id, patron, now or timezone.now(), for_lend=for_lend, for_reserve=for_reserve
    )
    calendar.remember_for_this_transaction(read.calendar)  # read in the same statement, for the due date
    return BookState(
        book_id=book_id,
        copies=copies,
        open_loans=read.book_open_loans,
        holds=read.holds,
        patron_loans=read.patron_loans,
        patron_blocks=read.blocks,
        next_loan_id=read.next_loan_id,
        next_hold_id=read.next_hold_id,
    )
