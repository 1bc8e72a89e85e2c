"""Return a book: close the patron's open loan; the copy goes to the first patron waiting, if any."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from lending import history
from lending.idempotency import Claim
from lending.locks import close_open_loan, lock_book_bumping_version
from lending.models import EventKind, Loan
from lending.outbox.messages import MessageType, availability_message, enqueue, loan_notification
from lending.services.queue import promote_after_copy_freed


def loan_return(*, user_email: str, book_id: int, claim: Claim | None = None) -> Loan:
    """Never calls a peer: returning works while every peer is down. Three statements in the
    transaction when nobody waits for the book: lock the book (bumping its version), close the loan,
    queue the outbox rows."""
    with transaction.atomic():
        now = timezone.now()
        copies = lock_book_bumping_version(book_id)
        loan, anyone_waiting = close_open_loan(user_email, book_id, now=now)  # a 404 rolls the bump back
        history.record(history.loan_event(loan, EventKind.RETURNED, at=now, book_id=book_id))
        if copies is not None and anyone_waiting:
            promote_after_copy_freed(book_id, copies, now=now)
        enqueue(availability_message(book_id), loan_notification(loan, MessageType.RETURN_CONFIRMATION))
        if claim:
            claim.settle(loan)
    return loan
