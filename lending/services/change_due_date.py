"""Staff change a loan's due date: `POST /loans/{id}/change-due-date/` `{date_due, reason}`.

The new due date is the end of the chosen day in the library's time zone, moved past closed days
(`lending.calendar.end_of_open_day`, the one rule). It may not be over already, and a returned loan's
due date does not change. The loan's row is locked for the change, so two staff changing one due date
at once are applied one after the other, each event naming the date it replaced.
"""

from __future__ import annotations

from datetime import date, datetime

from django.db import transaction
from django.utils import timezone

from lending import calendar, errors
from lending.events import history
from lending.models import CIRCULATING_STATUSES, EventKind, Loan, LoanStatus
from lending.outbox.messages import MessageType, enqueue_notification
from lending.write_context import SYSTEM_WRITE, WriteContext


def change_due_date(loan_id: int, *, day: date, reason: str, context: WriteContext = SYSTEM_WRITE) -> Loan:
    with transaction.atomic():
        loan = Loan.objects.select_for_update().filter(pk=loan_id).first()
        if loan is None:
            raise errors.LOAN_NOT_FOUND.error(f"Loan {loan_id} does not exist.")
        if loan.date_returned is not None:
            raise errors.LOAN_NOT_OPEN.error(loan_id=loan_id)
        if loan.status not in CIRCULATING_STATUSES:  # a lost or claimed-returned loan has no due date running
            raise errors.LOAN_STATUS_CONFLICT.error(loan_id=loan_id, status=loan.status, action="changing its due date")
        now = timezone.now()
        date_due = calendar.end_of_open_day(datetime.combine(day, datetime.min.time(), tzinfo=calendar.library_zone()))
        if date_due <= now:
            # Only at midnight's edge: the view already refuses a day before today.
            raise errors.INVALID_REQUEST.error(details={"date_due": ["Must not be in the past."]})
        previous = loan.date_due
        loan.date_due = date_due
        loan.status = LoanStatus.ACTIVE  # the new due date is still to come
        loan.save(update_fields=["date_due", "status"])
        event = context.loan_event(loan, EventKind.DUE_DATE_CHANGED, at=now, date_due=date_due, previous=previous)
        event.reason = reason
        history.record(event)
        enqueue_notification(loan, MessageType.DUE_DATE_CHANGED)
    return loan
