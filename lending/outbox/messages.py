"""Writing side effects into the outbox. Call only inside the transaction that makes the change, so
the message commits (or rolls back) with it.

The messages are `NewMessage`s, not model instances: every write enqueues some (a lend two), and
none of their writers reads them back as rows."""

from __future__ import annotations

from typing import TypeVar

from django.utils import timezone

from lending.calendar import library_day
from lending.db import outbox as db_outbox
from lending.db.outbox import Message, NewMessage
from lending.models import Hold, Loan, OutboxKind
from lending.patron_ref import patron_ref

# What enqueue writes: its messages (a `NewMessage`, or a model instance a caller built itself).
_Message = TypeVar("_Message", bound=Message)


class MessageType:
    LENDING_CONFIRMATION = "lending_confirmation"
    RETURN_CONFIRMATION = "return_confirmation"
    DUE_SOON_REMINDER = "due_soon_reminder"
    OVERDUE_NOTICE = "overdue_notice"
    DIGEST = "digest"  # NOTICE_DIGEST: a patron's reminders and overdue notices of one pass (lending.notices)
    RENEWAL_CONFIRMATION = "renewal_confirmation"
    HOLD_AVAILABLE = "hold_available"
    HOLD_EXPIRED = "hold_expired"
    DUE_DATE_CHANGED = "due_date_changed"  # staff moved the due date (lending.services.change_due_date)
    AUTO_RENEW_REFUSED = "auto_renew_refused"  # LOAN_AUTO_RENEW could not renew: the reason (lending.auto_renew)
    LOAN_DECLARED_LOST = "loan_declared_lost"  # by staff, or aged to lost (lending.services.lost)
    LOAN_CLAIMED_RETURNED = "loan_claimed_returned"
    LOAN_RESOLVED = "loan_resolved"  # a lost or claimed-returned loan is closed: found or returned


def enqueue(*messages: _Message) -> list[_Message]:
    """Writes the messages in one INSERT (one round trip, whatever their number: every lend and
    return enqueues two); their ids are set."""
    return db_outbox.insert_messages(messages)


def availability_message(book_id: int) -> NewMessage:
    """The payload is empty on purpose: the relay publishes the book's state at delivery time."""
    return NewMessage(kind=OutboxKind.AVAILABILITY, book_id=book_id, next_attempt_at=timezone.now())


def notification_payload(loan: Loan, message_type: str) -> dict:
    return {
        "user_email": loan.user_email,
        "message_type": message_type,
        "book_title": loan.book_title,
        "due_date": library_day(loan.date_due).isoformat(),  # the library's day, not UTC's
        "loan_id": loan.pk,
        "book_id": loan.book_id,
    }


def _notification(book_id: int, payload: dict) -> NewMessage:
    return NewMessage(kind=OutboxKind.NOTIFICATION, book_id=book_id, payload=payload, next_attempt_at=timezone.now())


def loan_notification(loan: Loan, message_type: str) -> NewMessage:
    return _notification(loan.book_id, notification_payload(loan, message_type))


def enqueue_notification(loan: Loan, message_type: str) -> NewMessage:
    return enqueue(loan_notification(loan, message_type))[0]


def hold_notification_payload(hold: Hold, message_type: str) -> dict:
    """`due_date` is the pickup deadline: the date by which the patron must borrow the held copy."""
    deadline = hold.pickup_deadline
    return {
        "user_email": hold.user_email,
        "message_type": message_type,
        "book_title": hold.book_title,
        "due_date": library_day(deadline).isoformat() if deadline else None,
        "hold_id": hold.pk,
        "book_id": hold.book_id,
        "pickup_deadline": deadline.isoformat() if deadline else None,
    }


def hold_notification(hold: Hold, message_type: str) -> NewMessage:
    return _notification(hold.book_id, hold_notification_payload(hold, message_type))


def enqueue_hold_notification(hold: Hold, message_type: str) -> NewMessage:
    return enqueue(hold_notification(hold, message_type))[0]


def fee_payload(*, assessment_id: str, loan: Loan, kind: str, amount: str, currency: str) -> dict:
    """The Fees service's `POST /fees` body: idempotent by `id` (the assessment's), the patron named
    by their pseudonym only (`patron_ref`), never their email."""
    return {
        "id": assessment_id,
        "patron_ref": patron_ref(loan.user_email),
        "loan_id": loan.pk,
        "kind": kind,
        "amount": amount,
        "currency": currency,
    }


def fee_message(payload: dict, *, book_id: int) -> NewMessage:
    return NewMessage(kind=OutboxKind.FEE, book_id=book_id, payload=payload, next_attempt_at=timezone.now())
