"""The holds queue's writes, shared by the stories: promote the next patrons when copies free up,
close a hold, and tell the Book service that the book changed. Call them under the book lock, in
the transaction of the change."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from lending import policy
from lending.book_state import BookState, read_state
from lending.db.outbox import NewMessage
from lending.events import history
from lending.locks import bump_book_version
from lending.models import Event, EventKind, Hold, HoldStatus, Loan
from lending.outbox.messages import MessageType, availability_message, enqueue, enqueue_hold_notification
from lending.write_context import WriteContext

CLOSING_EVENTS: dict[str, EventKind] = {
    HoldStatus.FULFILLED: EventKind.HOLD_FULFILLED,
    HoldStatus.CANCELLED: EventKind.CANCELLED,
    HoldStatus.EXPIRED: EventKind.HOLD_EXPIRED,
}


def promote_waiting(
    state: BookState, *, now: datetime, context: WriteContext, traps: Sequence[str | None] = ()
) -> list[Hold]:
    """Keep each copy on the shelf that no READY hold keeps for the next WAITING patron, and tell
    them through the outbox. `traps`: the barcodes of the copies freed, when known (a barcoded loan
    returned, a trapped hold let go), given in order to the holds promoted (`Hold.item_barcode`):
    each of those copies goes to the hold shelf for its patron. Updates `state`; returns the holds
    promoted."""
    barcodes = [barcode for barcode in traps if barcode is not None]
    promoted = state.copies_to_promote()
    if not promoted:
        return []  # and the calendar (for the pickup deadline) is not read
    deadline = policy.pickup_deadline(now)
    for index, hold in enumerate(promoted):
        hold.status = HoldStatus.READY
        hold.date_ready = now
        hold.pickup_deadline = deadline
        changed = ["status", "date_ready", "pickup_deadline"]
        if index < len(barcodes):
            hold.item_barcode = barcodes[index]
            changed.append("item_barcode")
        hold.save(update_fields=changed)
        enqueue_hold_notification(hold, MessageType.HOLD_AVAILABLE)
    history.record(*(_ready_event(hold, now, deadline, context) for hold in promoted))
    return promoted


def _ready_event(hold: Hold, now: datetime, deadline: datetime, context: WriteContext) -> Event:
    trapped: dict[str, Any] = {"item_barcode": hold.item_barcode} if hold.item_barcode else {}
    return context.hold_event(hold, EventKind.HOLD_READY, at=now, pickup_deadline=deadline, **trapped)


def promote_after_copy_freed(
    book_id: int, copies: int, *, now: datetime, context: WriteContext, traps: Sequence[str | None] = ()
) -> None:
    """A copy came back or a READY hold let go of one: it goes to the first patron waiting (`traps`:
    the copies' barcodes, when known)."""
    promote_waiting(read_state(book_id, copies), now=now, context=context, traps=traps)


def close_hold(
    state: BookState, hold: Hold, status: str, *, now: datetime, context: WriteContext, loan: Loan | None = None
) -> Event:
    """Close an open hold (FULFILLED, CANCELLED or EXPIRED) and drop it from `state`'s queue.
    Returns the event to record with the rest of the change."""
    hold.status = status
    hold.date_closed = now
    hold.loan = loan
    hold.save(update_fields=["status", "date_closed", "loan"])
    state.holds = [h for h in state.holds if h.pk != hold.pk]
    details: dict[str, Any] = {"loan_id": loan.pk} if loan else {}
    return context.hold_event(hold, CLOSING_EVENTS[status], at=now, **details)


def book_changed(book_id: int, *also: NewMessage) -> None:
    """Bump the book's version and queue an availability update computed at delivery time, with any
    other messages of the change in the same INSERT."""
    bump_book_version(book_id)
    enqueue(availability_message(book_id), *also)
