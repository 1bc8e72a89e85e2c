"""The holds queue of one book, as seen under the book's lock.

`BookState` is read inside the transaction that holds the book's `BookStock` row lock (or, for a
dry run, without writing anything). Copies are promised in this order: open loans first, then READY
holds (a returned copy kept for its patron), then WAITING holds in queue (id) order; only what is
left may be lent to someone not in the queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Q

from lending import history
from lending.models import OPEN_HOLD_STATUSES, Event, EventKind, Hold, HoldStatus, Loan
from lending.outbox.messages import MessageType, enqueue_hold_notification


@dataclass(frozen=True)
class PatronLoans:
    """One patron's open loans, as the lending rules need them."""

    open: int = 0
    overdue: int = 0
    of_this_book: int = 0


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
        return [h for h in self.holds if h.status == HoldStatus.WAITING]

    def hold_of(self, user_email: str) -> Hold | None:
        return next((h for h in self.holds if h.user_email == user_email), None)

    def copies_on_shelf(self) -> int:
        """Copies not on loan, whether or not a hold keeps them."""
        return self.copies - self.open_loans

    def copies_free_for(self, user_email: str) -> int:
        """Copies this patron could borrow now: those on the shelf, less the ones kept for other
        READY holds and for the WAITING patrons ahead of them (everyone waiting, if not queued)."""
        own = self.hold_of(user_email)
        ready_for_others = sum(1 for h in self.ready if h is not own)
        if own is not None and own.status == HoldStatus.READY:
            ahead = 0
        else:
            ahead = sum(1 for h in self.waiting if own is None or h.pk < own.pk)
        return self.copies_on_shelf() - ready_for_others - ahead

    def position_of(self, hold: Hold) -> int | None:
        """1 for the next patron to get a copy; None unless the hold is WAITING."""
        if hold.status != HoldStatus.WAITING:
            return None
        return 1 + sum(1 for h in self.waiting if h.pk < hold.pk)


def read_state(book_id: int, copies: int, *, patron: str | None = None, now: datetime | None = None) -> BookState:
    """Two queries: the open loans, then the open holds, of the book. Given a `patron`, the first
    query also counts that patron's open loans (all, overdue at `now`, of this book)."""
    book_loans = Q(book_id=book_id)
    if patron is None:
        counts = {"book": Loan.objects.filter(book_loans, date_returned__isnull=True).count()}
    else:
        patron_loans = Q(user_email=patron)
        counts = Loan.objects.filter(book_loans | patron_loans, date_returned__isnull=True).aggregate(
            book=Count("id", filter=book_loans),
            patron=Count("id", filter=patron_loans),
            overdue=Count("id", filter=patron_loans & Q(date_due__lt=now)),
            of_this_book=Count("id", filter=patron_loans & book_loans),
        )
    holds = list(Hold.objects.filter(book_id=book_id, status__in=OPEN_HOLD_STATUSES).order_by("id"))
    return BookState(
        book_id=book_id,
        copies=copies,
        open_loans=counts["book"],
        holds=holds,
        patron_loans=None
        if patron is None
        else PatronLoans(open=counts["patron"], overdue=counts["overdue"], of_this_book=counts["of_this_book"]),
    )


def promote_waiting(state: BookState, *, now: datetime, pickup_window: timedelta) -> list[Hold]:
    """Keep each copy on the shelf that no READY hold keeps for the next WAITING patron, and tell
    them through the outbox. Call under the book lock, in the transaction of the change that freed
    the copy."""
    free = state.copies_on_shelf() - len(state.ready)
    promoted = state.waiting[: max(free, 0)]
    for hold in promoted:
        hold.status = HoldStatus.READY
        hold.date_ready = now
        hold.pickup_deadline = now + pickup_window
        hold.save(update_fields=["status", "date_ready", "pickup_deadline"])
        enqueue_hold_notification(hold, MessageType.HOLD_AVAILABLE)
    history.record(
        *(
            history.hold_event(hold, EventKind.HOLD_READY, at=now, pickup_deadline=hold.pickup_deadline)
            for hold in promoted
        )
    )
    return promoted


def close(state: BookState, hold: Hold, status: str, *, now: datetime, loan: Loan | None = None) -> Event:
    """Close an open hold (FULFILLED, CANCELLED or EXPIRED) and drop it from the queue. Returns the
    event to record with the rest of the change."""
    hold.status = status
    hold.date_closed = now
    hold.loan = loan
    hold.save(update_fields=["status", "date_closed", "loan"])
    state.holds = [h for h in state.holds if h.pk != hold.pk]
    return history.hold_event(hold, CLOSING_EVENTS[status], at=now, **({"loan_id": loan.pk} if loan else {}))


CLOSING_EVENTS = {
    HoldStatus.FULFILLED: EventKind.HOLD_FULFILLED,
    HoldStatus.CANCELLED: EventKind.CANCELLED,
    HoldStatus.EXPIRED: EventKind.HOLD_EXPIRED,
}
