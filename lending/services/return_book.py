"""Return a book: close the patron's open loan; the copy goes to the first patron waiting, if any."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from lending import calendar, errors, history
from lending.idempotency import Claim
from lending.locks import close_open_loan, lock_book_bumping_version
from lending.models import EventKind, Loan
from lending.outbox.messages import MessageType, availability_message, enqueue, loan_notification
from lending.services.queue import promote_after_copy_freed


def loan_return(
    *, user_email: str, book_id: int, claim: Claim | None = None, returned_at: datetime | None = None
) -> Loan:
    """Never calls a peer: returning works while every peer is down. Three statements in the
    transaction when nobody waits for the book: lock the book (bumping its version), close the loan,
    queue the outbox rows. `returned_at` back-dates the return (the book drop, emptied later): the
    loan is returned then, late or not by that date; the view bounds it (RETURN_BACKDATE_MAX_DAYS)."""
    with transaction.atomic():
        now = timezone.now()
        returned = returned_at or now
        copies = lock_book_bumping_version(book_id)
        loan, anyone_waiting = close_open_loan(user_email, book_id, now=returned)  # a 404 rolls the bump back
        if returned < loan.date_borrowed:
            raise errors.INVALID_REQUEST.error(
                details={"returned_at": [f"Must not be before the loan date ({loan.date_borrowed.isoformat()})."]}
            )
        history.record(history.loan_event(loan, EventKind.RETURNED, at=now, book_id=book_id, **_lateness(loan)))
        if copies is not None and anyone_waiting:
            promote_after_copy_freed(book_id, copies, now=now)
        enqueue(availability_message(book_id), loan_notification(loan, MessageType.RETURN_CONFIRMATION))
        if claim:
            claim.settle(loan)
    return loan


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
