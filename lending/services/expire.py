"""Expire holds not picked up in time; each copy passes to the next patron in the queue."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from lending.events import history
from lending.locks import lock_book
from lending.models import EventKind, Hold, HoldStatus
from lending.outbox.messages import MessageType, hold_notification
from lending.services.queue import book_changed, promote_after_copy_freed
from lending.write_context import SCHEDULED, WriteContext


def expire_ready_holds(*, now: datetime | None = None, context: WriteContext = SCHEDULED) -> int:
    """Expires READY holds whose pickup deadline has passed, tells their patrons (`hold_expired`) and
    passes each copy to the next patron in the queue (with a `hold_available` notification). One
    short transaction per book, under the book lock; safe to run from several schedulers at once.
    Returns how many holds expired."""
    now = now or timezone.now()
    book_ids = Hold.objects.pickup_expired(now).values_list("book_id", flat=True).distinct().order_by("book_id")
    return sum(_expire_book(book_id, now, context) for book_id in list(book_ids))


def _expire_book(book_id: int, now: datetime, context: WriteContext) -> int:
    with transaction.atomic():
        stock = lock_book(book_id)
        # Read under the lock: another scheduler that expired them first leaves nothing here.
        expiring = list(Hold.objects.pickup_expired(now).filter(book_id=book_id))
        if not expiring:
            return 0
        Hold.objects.filter(pk__in=[hold.pk for hold in expiring]).update(status=HoldStatus.EXPIRED, date_closed=now)
        history.record(*(context.hold_event(hold, EventKind.HOLD_EXPIRED, at=now) for hold in expiring))
        if stock is not None:
            # A copy trapped for an expired hold waits on the hold shelf: it passes to the next patron.
            trapped = [hold.item_barcode for hold in expiring]
            promote_after_copy_freed(book_id, stock.copies, now=now, context=context, traps=trapped)
        book_changed(book_id, *(hold_notification(hold, MessageType.HOLD_EXPIRED) for hold in expiring))
        return len(expiring)
