"""Auto-renewal (`LOAN_AUTO_RENEW=true`): the scheduler renews each open loan due within
DUE_SOON_REMINDER_DAYS, through the very renewal a patron would ask for (`services.loan_renew`: its
rules, blocks, locks, history event and `renewal_confirmation`). When a rule refuses, the patron is
told why once per due date: an `auto_renew_refused` notice naming the refusal's code and message,
deduplicated like every notice by the `LoanNotice` unique constraint (period = the renewal count).

Each renewal is its own short transaction; the scan walks candidates in (date_due, id) batches.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from lending import services
from lending.errors import LendingError
from lending.events import history
from lending.models import EventKind, Loan, LoanNotice
from lending.outbox.messages import MessageType, enqueue, loan_notification
from lending.write_context import SCHEDULED, WriteContext

logger = logging.getLogger(__name__)


def auto_renew_loans(
    *, now: datetime | None = None, batch_size: int | None = None, context: WriteContext = SCHEDULED
) -> int:
    """Renew the loans due soon; returns how many were renewed (0 when LOAN_AUTO_RENEW is off)."""
    if not settings.LOAN_AUTO_RENEW:
        return 0
    now = now or timezone.now()
    batch_size = batch_size or settings.NOTICES_BATCH_SIZE
    window_end = now + timedelta(days=settings.DUE_SOON_REMINDER_DAYS)
    candidates = Loan.objects.due_within(now, window_end)
    renewed = 0
    for loans in candidates.in_due_order_batches(batch_size):
        for loan in loans:
            renewed += _renew_or_explain(loan, context)
    return renewed


def _renew_or_explain(loan: Loan, context: WriteContext) -> int:
    if _already_refused(loan):
        return 0
    try:
        services.loan_renew(user_email=loan.user_email, book_id=loan.book_id, context=context)
    except LendingError as refusal:
        if refusal.status >= 500:
            raise
        _tell_why(loan, refusal, context)
        return 0
    return 1


def _already_refused(loan: Loan) -> bool:
    return LoanNotice.objects.filter(
        loan=loan, notice_type=MessageType.AUTO_RENEW_REFUSED, period=loan.renewals
    ).exists()


def _tell_why(loan: Loan, refusal: LendingError, context: WriteContext) -> None:
    """One `auto_renew_refused` notice per due date, with the refusal, and its event in the history."""
    with transaction.atomic():
        _, created = LoanNotice.objects.get_or_create(
            loan=loan, notice_type=MessageType.AUTO_RENEW_REFUSED, period=loan.renewals
        )
        if not created:
            return
        message = loan_notification(loan, MessageType.AUTO_RENEW_REFUSED)
        message.payload = {**message.payload, "reason_code": refusal.code, "reason": refusal.message}
        enqueue(message)
        history.record(
            context.loan_event(
                loan,
                EventKind.NOTICE_QUEUED,
                at=timezone.now(),
                notice_type=MessageType.AUTO_RENEW_REFUSED,
                period=loan.renewals,
                reason_code=refusal.code,
            )
        )
    logger.info("auto-renewal of loan %s refused: %s", loan.pk, refusal.code)
