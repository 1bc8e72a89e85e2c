"""Lost and claimed-returned loans: declare lost, claim returned, resolve; and aging to lost.

A lost or claimed-returned loan stays open: its copy is not on the shelf, so it is lent to nobody
else, and the patron may not borrow the same book twice. Neither is overdue (no notices, no overdue
block, `getExpiredBooks` leaves them out) nor renewable. An unresolved lost item blocks its patron
(`lending.blocks`). The loan is closed when its copy is back: a return (`POST /returnBook/`)
resolves it as found; `resolve` with `found` or `returned` does the same from the desk.

Every change takes the book lock, then the loan's row (the order of every writer,
`lending.locks`), so a declare-lost racing a return is applied before or after it, never half way.
The scheduler's aging takes only the loan's row, with SKIP LOCKED; a return waiting for that row
re-checks its conditions once aging commits and resolves the lost loan as found.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from lending import errors, fines
from lending.events import history
from lending.locks import close_loan, lock_book, lock_book_bumping_version
from lending.models import CIRCULATING_STATUSES, UNRESOLVED_STATUSES, EventKind, Loan, LoanStatus
from lending.outbox.messages import MessageType, availability_message, enqueue, loan_notification
from lending.services.return_book import Resolution, finish_return
from lending.write_context import SCHEDULED, SYSTEM_WRITE, WriteContext


class Outcome:
    FOUND = "found"  # staff found the copy: it is back on the shelf
    RETURNED = "returned"  # the patron's claim holds (or they brought it back): back on the shelf
    LOST = "lost"  # the copy is lost: a claimed-returned loan becomes LOST

    ALL = (FOUND, RETURNED, LOST)


def declare_lost(loan_id: int, *, note: str = "", context: WriteContext = SYSTEM_WRITE) -> Loan:
    """A circulating or claimed-returned loan becomes LOST."""
    with transaction.atomic():
        loan, _ = _lock(
            loan_id, allowed=(*CIRCULATING_STATUSES, LoanStatus.CLAIMED_RETURNED), action="declaring it lost"
        )
        return _mark(loan, LoanStatus.LOST, EventKind.DECLARED_LOST, MessageType.LOAN_DECLARED_LOST, context, note=note)


def claim_returned(loan_id: int, *, note: str = "", context: WriteContext = SYSTEM_WRITE) -> Loan:
    """The patron says they returned a circulating loan: it becomes CLAIMED_RETURNED until resolved."""
    with transaction.atomic():
        loan, _ = _lock(loan_id, allowed=CIRCULATING_STATUSES, action="claiming it returned")
        kind, notice = EventKind.CLAIMED_RETURNED, MessageType.LOAN_CLAIMED_RETURNED
        return _mark(loan, LoanStatus.CLAIMED_RETURNED, kind, notice, context, note=note)


def resolve(loan_id: int, *, outcome: str, note: str = "", context: WriteContext = SYSTEM_WRITE) -> Loan:
    """Close a lost or claimed-returned loan whose copy is back (`found`, `returned`), or turn a
    claimed-returned one into LOST (`lost`)."""
    if outcome == Outcome.LOST:
        with transaction.atomic():
            loan, _ = _lock(loan_id, allowed=(LoanStatus.CLAIMED_RETURNED,), action="resolving it as lost")
            kind, notice = EventKind.RESOLVED, MessageType.LOAN_DECLARED_LOST
            return _mark(loan, LoanStatus.LOST, kind, notice, context, note=note, outcome=outcome)
    with transaction.atomic():
        loan, copies = _lock(loan_id, allowed=UNRESOLVED_STATUSES, action=f"resolving it as {outcome}", bump=True)
        now = timezone.now()
        closed = close_loan(loan, now=now)
        assert closed is not None, "the loan is locked open"
        resolution = Resolution(outcome, loan.status, note)
        return finish_return(closed, loan.book_id, copies, now=now, resolution=resolution, context=context)


def age_overdue_to_lost(
    *, now: datetime | None = None, batch_size: int | None = None, context: WriteContext = SCHEDULED
) -> int:
    """Loans overdue for LOST_AFTER_OVERDUE_DAYS or more become LOST (0: never). Returns how many."""
    if settings.LOST_AFTER_OVERDUE_DAYS <= 0:
        return 0
    now = now or timezone.now()
    batch_size = batch_size or settings.NOTICES_BATCH_SIZE
    aged = 0
    long_overdue = Loan.objects.overdue(now - timedelta(days=settings.LOST_AFTER_OVERDUE_DAYS))
    for batch in long_overdue.locked_batches(batch_size):
        for loan in batch:
            _mark(loan, LoanStatus.LOST, EventKind.DECLARED_LOST, MessageType.LOAN_DECLARED_LOST, context, aged=True)
        aged += len(batch)
    return aged


def _lock(loan_id: int, *, allowed: Iterable[str], action: str, bump: bool = False) -> tuple[Loan, int | None]:
    """The book lock (bumping its version when the copy comes back), then the loan's row. Returns
    the loan and the book's copies; 404, 409 `loan_not_open` or `loan_status_conflict`."""
    book_id = Loan.objects.filter(pk=loan_id).values_list("book_id", flat=True).first()
    if book_id is None:
        raise errors.LOAN_NOT_FOUND.error(f"Loan {loan_id} does not exist.")
    if bump:
        copies = lock_book_bumping_version(book_id)
    else:
        stock = lock_book(book_id)
        copies = stock.copies if stock else None
    loan = Loan.objects.select_for_update().get(pk=loan_id)
    if loan.date_returned is not None:
        raise errors.LOAN_NOT_OPEN.error(loan_id=loan_id)
    if loan.status not in allowed:
        raise errors.LOAN_STATUS_CONFLICT.error(loan_id=loan_id, status=loan.status, action=action)
    return loan, copies


def _mark(
    loan: Loan, status: str, kind: str, notice: str, context: WriteContext, *, note: str = "", **data: object
) -> Loan:
    """Set the loan's status, record the event (with the status it had), tell the patron, and
    republish the book's availability (its copy is still out)."""
    now = timezone.now()
    was, loan.status = loan.status, status
    loan.save(update_fields=["status"])
    event = context.loan_event(loan, kind, at=now, was=was, status=status, **data)
    event.reason = note
    # A loan becoming LOST owes its policy's lost item and processing fees.
    lost_fees = fines.lost_fees(fines.terms_of(loan)) if status == LoanStatus.LOST else []
    fees = fines.record(loan, lost_fees, at=now, judged_at=now, context=context)
    history.record(event, *fees.events)
    enqueue(availability_message(loan.book_id), loan_notification(loan, notice), *fees.messages)
    return loan
