"""Cancel a hold: the patron leaves the queue; a copy their hold kept goes to the next patron."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from lending.errors import HOLD_NOT_FOUND
from lending.events import history
from lending.locks import lock_book_and_row
from lending.models import EventKind, Hold, HoldStatus
from lending.services.queue import book_changed, promote_after_copy_freed
from lending.services.reserve import PlacedHold
from lending.write_context import SYSTEM_WRITE, WriteContext


def hold_cancel(*, user_email: str, book_id: int, context: WriteContext = SYSTEM_WRITE) -> PlacedHold:
    """Cancels the patron's open hold; a copy it kept goes to the next patron. Never calls a peer."""
    with transaction.atomic():
        stock, hold = lock_book_and_row(
            book_id,
            Hold.objects.open().filter(user_email=user_email, book_id=book_id),
            HOLD_NOT_FOUND.error(user_email=user_email, book_id=book_id),
        )
        now = timezone.now()
        was_ready = hold.status == HoldStatus.READY
        hold.status = HoldStatus.CANCELLED
        hold.date_closed = now
        hold.save(update_fields=["status", "date_closed"])
        history.record(context.hold_event(hold, EventKind.CANCELLED, at=now, was_ready=was_ready))
        if was_ready and stock is not None:
            promote_after_copy_freed(book_id, stock.copies, now=now, context=context, traps=[hold.item_barcode])
            book_changed(book_id)
        cancelled = PlacedHold(hold, None)
        context.settle(cancelled)
    return cancelled
