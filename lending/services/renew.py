"""Renew a loan: extend the due date by the loan period, unless another patron waits for the book."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from lending import blocks, calendar, circulation_rules, fines, policy
from lending.book_state import read_state
from lending.db import loans as statements
from lending.db import outbox
from lending.errors import LOAN_NOT_FOUND, LOAN_STATUS_CONFLICT
from lending.events import history
from lending.locks import lock_book_and_row, lock_patron
from lending.models import CIRCULATING_STATUSES, EventKind, Loan, LoanStatus
from lending.outbox.messages import MessageType, loan_notification
from lending.write_context import SYSTEM_WRITE, WriteContext


def loan_renew(*, user_email: str, book_id: int, context: WriteContext = SYSTEM_WRITE) -> Loan:
    """Extends the due date by the renewal period of the loan's policy (its snapshot, taken when it
    was lent), from the current due date. Never calls a peer."""
    balance = blocks.fees_standing(user_email)  # a peer call: before the locks (none without FINES_BLOCK_LIMIT)
    with transaction.atomic():
        stock, loan = lock_book_and_row(
            book_id,
            Loan.objects.open_of(user_email, book_id),
            LOAN_NOT_FOUND.error(user_email=user_email, book_id=book_id),
        )
        if loan.status not in CIRCULATING_STATUSES:  # lost or claimed returned: resolve it first
            raise LOAN_STATUS_CONFLICT.error(loan_id=loan.pk, status=loan.status, action="renewing it")
        rulebook = circulation_rules.in_force(lock_patron(user_email))
        now = timezone.now()
        # After the patron lock, in one statement: the patron's loans and blocks (for the automated
        # blocks), the book's holds (who else waits) and the calendar (the new due date).
        state = read_state(book_id, stock.copies if stock else 0, patron=user_email, now=now)  # copies: unused here
        blocks.check_patron_in_state(
            state, user_email, blocks.Action.RENEW, now, rulebook=rulebook, fees=balance, context=context
        )
        terms = policy.loan_terms(loan, rulebook)
        others_waiting = any(hold.user_email != user_email for hold in state.waiting)
        policy.check_renewal(loan=loan, others_waiting=others_waiting, terms=terms, now=now, context=context)
        # A late loan renewed owes the fine of its lateness so far; the next counts from the new due date.
        fees = fines.record(loan, fines.overdue_at(loan, now), at=now, judged_at=now, context=context)
        loan.date_due = calendar.due_after(loan.date_due, timedelta(days=terms.renewal_days))
        loan.renewals += 1
        if not loan.is_overdue(now):
            loan.status = LoanStatus.ACTIVE
        renewed = context.overridden_event(
            context.loan_event(loan, EventKind.RENEWED, at=now, date_due=loan.date_due, renewals=loan.renewals)
        )
        # The loan's change, its notice and its events (with its fees'): one statement.
        messages = [loan_notification(loan, MessageType.RENEWAL_CONFIRMATION), *fees.messages]
        history.record_with([statements.renewal_update(loan), outbox.messages_insert(messages)], renewed, *fees.events)
        context.settle(loan)
    return loan
