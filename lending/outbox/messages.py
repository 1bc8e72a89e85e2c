"""Writing side effects into the outbox. Call only inside the transaction that makes the change, so
the message commits (or rolls back) with it."""
from __future__ import annotations

from django.utils import timezone

from lending.models import Loan, OutboxKind, OutboxMessage


class MessageType:
    LENDING_CONFIRMATION = "lending_confirmation"
    RETURN_CONFIRMATION = "return_confirmation"
    DUE_SOON_REMINDER = "due_soon_reminder"
    OVERDUE_NOTICE = "overdue_notice"


def enqueue_availability(book_id: int) -> OutboxMessage:
    """The payload is empty on purpose: the relay publishes the book's state at delivery time."""
    return OutboxMessage.objects.create(
        kind=OutboxKind.AVAILABILITY, book_id=book_id, next_attempt_at=timezone.now()
    )


def notification_payload(loan: Loan, message_type: str) -> dict:
    return {
        "user_email": loan.user_email,
        "message_type": message_type,
        "book_title": loan.book_title,
        "due_date": loan.date_due.date().isoformat(),
        "loan_id": loan.pk,
        "book_id": loan.book_id,
    }


def enqueue_notification(loan: Loan, message_type: str) -> OutboxMessage:
    return OutboxMessage.objects.create(
        kind=OutboxKind.NOTIFICATION,
        book_id=loan.book_id,
        payload=notification_payload(loan, message_type),
        next_attempt_at=timezone.now(),
    )
