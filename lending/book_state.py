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
from datetime import UTC, datetime
from typing import Any

from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from lending.models import OPEN_LOAN, UNRESOLVED_LOST_LOAN, Hold, HoldStatus, Loan, overdue_loan
from lending.precompiled import SENTINEL_EMAIL, SENTINEL_ID, SENTINEL_NOW, PrecompiledAggregate, PrecompiledSelect


@dataclass(frozen=True)
class PatronLoans:
    """One patron's open loans, as the lending rules and the automated blocks need them."""

    open: int = 0
    overdue: int = 0
    of_this_book: int = 0
    lost: int = 0  # unresolved lost items
    oldest_overdue_due: datetime | None = None  # the due date of the loan overdue longest


@dataclass
class BookState:
    book_id: int
    copies: int
    open_loans: int
    # Open holds (WAITING and READY) in queue order.
    holds: list[Hold] = field(default_factory=list)
    # Read with the book's state when a lend asks for it.
    patron_loans: PatronLoans | None = None

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


def read_state(book_id: int, copies: int, *, patron: str | None = None, now: datetime | None = None) -> BookState:
    """Two queries: the open loans, then the open holds, of the book. Given a `patron`, the first
    query also counts that patron's open loans (`PatronLoans` at `now`)."""
    if patron is None:
        open_loans, patron_loans = Loan.objects.open().filter(book_id=book_id).count(), None
    else:
        counts = _count_loans(book_id, patron, now or timezone.now())
        open_loans, patron_loans = counts.pop("book"), _patron_loans(counts)
    holds = _OPEN_HOLDS(book_id=book_id)
    return BookState(book_id=book_id, copies=copies, open_loans=open_loans, holds=holds, patron_loans=patron_loans)


def _open_holds_query(book_id: int) -> QuerySet[Hold]:
    """The book's open holds in queue order (compiled once: `_OPEN_HOLDS`)."""
    return Hold.objects.open().filter(book_id=book_id).order_by("id")


def count_patron_loans(patron: str, now: datetime) -> PatronLoans:
    """The patron's open loans at `now`, in one query (compiled once: lending/precompiled.py)."""
    return _patron_loans(_COUNT_PATRON_LOANS(patron=patron, now=now))


def count_open_loans_of_type(patron: str, item_type: str) -> int:
    """The patron's open loans of copies of `item_type` (a circulation rule's limit for one type)."""
    return Loan.objects.open().filter(user_email=patron, item_type=item_type).count()


def _count_loans(book_id: int, patron: str, now: datetime) -> dict[str, Any]:
    """The book's open loans and the patron's (`PatronLoans`), in one query. Every lend runs it: its
    SQL is compiled once (lending/precompiled.py), 2.3 ms of CPU per call through the ORM against
    0.2 ms."""
    return _COUNT_LOANS(book_id=book_id, patron=patron, now=now)


def _patron_aggregates(patron_loans: Q, now: datetime) -> dict[str, Any]:
    """What `PatronLoans` counts, over the open loans `patron_loans` selects: one definition for the
    lend's query and the patron's own."""
    overdue = patron_loans & overdue_loan(now)
    return {
        "open": Count("id", filter=patron_loans),
        "overdue": Count("id", filter=overdue),
        "lost": Count("id", filter=patron_loans & UNRESOLVED_LOST_LOAN),
        "oldest_overdue_due": Min("date_due", filter=overdue),
    }


def _count_loans_query(book_id: int, patron: str, now: datetime) -> dict[str, Any]:
    book_loans, patron_loans = Q(book_id=book_id), Q(user_email=patron)
    return Loan.objects.filter(OPEN_LOAN & (book_loans | patron_loans)).aggregate(
        book=Count("id", filter=book_loans),
        of_this_book=Count("id", filter=patron_loans & book_loans),
        **_patron_aggregates(patron_loans, now),
    )


def _patron_counts_query(patron: str, now: datetime) -> dict[str, Any]:
    patron_loans = Q(user_email=patron)
    return Loan.objects.filter(OPEN_LOAN & patron_loans).aggregate(**_patron_aggregates(patron_loans, now))


def _patron_loans(row: dict[str, Any]) -> PatronLoans:
    oldest = row.pop("oldest_overdue_due")
    if isinstance(oldest, str):  # SQLite answers a precompiled MIN of a date-time as its stored text, in UTC
        parsed = parse_datetime(oldest)
        oldest = parsed if parsed is None or parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return PatronLoans(**row, oldest_overdue_due=oldest)


_COUNT_LOANS = PrecompiledAggregate(_count_loans_query, book_id=SENTINEL_ID, patron=SENTINEL_EMAIL, now=SENTINEL_NOW)
_COUNT_PATRON_LOANS = PrecompiledAggregate(_patron_counts_query, patron=SENTINEL_EMAIL, now=SENTINEL_NOW)
_OPEN_HOLDS = PrecompiledSelect(_open_holds_query, book_id=SENTINEL_ID)
