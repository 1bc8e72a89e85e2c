"""Return a book: close the patron's open loan; the copy goes to the first patron waiting, if any.

A lost or claimed-returned loan that comes back is resolved as found by the same return
(`finish_return`, which `lending.services.lost` also uses for its "found" and "returned" outcomes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from lending import calendar, errors, fines
from lending.db.outbox import messages_insert
from lending.events import history
from lending.locks import close_patrons_loan, lock_book_bumping_version
from lending.models import Event, EventKind, Loan
from lending.outbox.messages import MessageType, availability_message, loan_notification
from lending.services.queue import promote_after_copy_freed
from lending.write_context import SYSTEM_WRITE, WriteContext


@dataclass(frozen=True)
class Resolution:
    """How a lost or claimed-returned loan ends when its copy is back: `found` or `returned`."""

    outcome: str
    was: str  # the loan's status before (LOST or CLAIMED_RETURNED)
    note: str = ""


def loan_return(
    *, user_email: str, book_id: int, context: WriteContext = SYSTEM_WRITE, returned_at: datetime | None = None
) -> Loan:
    """Never calls a peer: returning works while every peer is down. Three statements in the
    transaction when nobody waits for the book: lock the book (bumping its version), close the loan,
    write its events and outbox rows. `returned_at` back-dates the return (the book drop, emptied later): the
    loan is returned then, late or not by that date; the view bounds it (RETURN_BACKDATE_MAX_DAYS)."""
    with transaction.atomic():
        now = timezone.now()
        returned = returned_at or now
        copies = lock_book_bumping_version(book_id)
        closed = close_patrons_loan(user_email, book_id, now=returned, circulating_only=True)
        resolution = None
        if closed is None:  # lost or claimed returned (the return resolves it as found), or no loan
            # (The queryset is built here only: building it costs a return about 0.3 ms of CPU.)
            missing = Loan.objects.open_of(user_email, book_id).select_for_update().first()
            if missing is None:  # the 404 rolls the version bump back
                raise errors.LOAN_NOT_FOUND.error(user_email=user_email, book_id=book_id)
            resolution = Resolution("found", was=missing.status)
            closed = close_patrons_loan(user_email, book_id, now=returned, circulating_only=False)
        assert closed is not None, "the loan is locked open"
        loan = finish_return(closed, book_id, copies, now=now, resolution=resolution, context=context)
        context.settle(loan)
    return loan


def finish_return(
    closed: tuple[Loan, bool],
    book_id: int,
    copies: int | None,
    *,
    now: datetime,
    resolution: Resolution | None,
    context: WriteContext,
) -> Loan:
    """Under the book lock, once `lending.locks` closed the loan: record it, give the copy to the
    first patron waiting, and queue the availability update and the patron's notice."""
    loan, anyone_waiting = closed
    assert loan.date_returned is not None, "a returned loan"
    if loan.date_returned < loan.date_borrowed:
        raise errors.INVALID_REQUEST.error(
            details={"returned_at": [f"Must not be before the loan date ({loan.date_borrowed.isoformat()})."]}
        )
    # A late return owes its fine (judged at the return, back-dated or not); a lost item found, its refund.
    fees = fines.record(
        loan,
        fines.at_return(loan, resolution.was if resolution else None),
        at=now,
        judged_at=loan.date_returned,
        context=context,
    )
    # The return's outbox rows and its events (with its fees'): one statement.
    notice = MessageType.LOAN_RESOLVED if resolution else MessageType.RETURN_CONFIRMATION
    messages = [availability_message(book_id), loan_notification(loan, notice), *fees.messages]
    history.record_with(
        [messages_insert(messages)], *_return_events(loan, book_id, now, resolution, context), *fees.events
    )
    if copies is not None and anyone_waiting:
        # A barcoded loan's copy is the one the first patron waiting gets (on the hold shelf).
        promote_after_copy_freed(book_id, copies, now=now, context=context, traps=[loan.item_barcode])
    return loan


def _return_events(
    loan: Loan, book_id: int, now: datetime, resolution: Resolution | None, context: WriteContext
) -> list[Event]:
    copy: dict[str, Any] = {"item_barcode": loan.item_barcode} if loan.item_barcode is not None else {}
    # With staff's reason for a back-dated return, when they gave one (an override).
    returned = context.overridden_event(
        context.loan_event(loan, EventKind.RETURNED, at=now, book_id=book_id, **copy, **_lateness(loan))
    )
    events = [returned]
    if resolution:
        resolved = context.loan_event(loan, EventKind.RESOLVED, at=now, outcome=resolution.outcome, was=resolution.was)
        resolved.reason = resolution.note
        events.append(resolved)
    return events


def _lateness(loan: Loan) -> dict:
    """When the loan came back, and whether that was late (the history's record of a back-dated
    return that was overdue by its real date)."""
    returned = loan.date_returned
    assert returned is not None, "a returned loan"
    return {
        "returned_at": returned,
        "returned_late": returned > loan.date_due,
        "days_late": calendar.days_overdue(loan.date_due, returned),
    }
