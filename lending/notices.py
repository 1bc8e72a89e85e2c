"""Scheduled notices: persist OVERDUE, remind patrons before the due date, chase overdue loans.

Run by `manage.py send_notices` (once, or `--loop`). Every job works in batches (one short
transaction each), so a million loans never sit in memory and a run killed half way keeps what it
committed. "At most once per loan, type and period" is the `LoanNotice` unique constraint: a batch
inserts its notices with `INSERT … ON CONFLICT DO NOTHING RETURNING` and queues an outbox message
only for the rows it actually inserted, in the same transaction. Two overlapping runs therefore send
each notice once, and a rerun after a crash sends only what is missing.

Periods (`LoanNotice.period`):
- `due_soon_reminder`: the loan's renewal count, so each due date (the first and every renewed one)
  gets its own reminder, DUE_SOON_REMINDER_DAYS before it.
- `overdue_notice`: `renewals * PERIOD_STRIDE + n`, where n counts OVERDUE_NOTICE_REPEAT_DAYS-long
  periods since the due date (0 the day it becomes overdue, 1 a repeat later, ...). Only the current
  period is sent: a scheduler that was down for weeks sends one notice, not a backlog.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from lending import history
from lending.models import EventKind, Loan, LoanNotice, LoanQuerySet, LoanStatus
from lending.outbox.messages import MessageType, enqueue_notification

logger = logging.getLogger(__name__)

# Overdue periods of one due date stay below this (10,000 repeats); the renewal count selects the block.
PERIOD_STRIDE = 10_000


@history.scheduled_job
def mark_overdue_loans(*, now: datetime | None = None, batch_size: int | None = None) -> int:
    """Persist status OVERDUE on open loans past due. Returns how many loans changed."""
    now = now or timezone.now()
    batch_size = batch_size or settings.NOTICES_BATCH_SIZE
    changed = 0
    while True:
        with transaction.atomic():
            # Rows a lend, return or renewal holds right now are skipped; the next run gets them.
            ids = list(
                Loan.objects.overdue(now)
                .filter(status=LoanStatus.ACTIVE)
                .select_for_update(skip_locked=True)
                .order_by("date_due", "id")
                .values_list("id", flat=True)[:batch_size]
            )
            if not ids:
                return changed
            changed += Loan.objects.filter(pk__in=ids).update(status=LoanStatus.OVERDUE)
            history.record(*(history.loan_event(Loan(pk=pk), EventKind.MARKED_OVERDUE, at=now) for pk in ids))


@history.scheduled_job
def send_due_soon_reminders(*, now: datetime | None = None, batch_size: int | None = None) -> int:
    """A `due_soon_reminder` for each open loan due within DUE_SOON_REMINDER_DAYS."""
    now = now or timezone.now()
    window_end = now + timedelta(days=settings.DUE_SOON_REMINDER_DAYS)
    candidates = Loan.objects.open().filter(date_due__gt=now, date_due__lte=window_end)
    return _send(candidates, MessageType.DUE_SOON_REMINDER, lambda loan: loan.renewals, batch_size)


@history.scheduled_job
def send_overdue_notices(*, now: datetime | None = None, batch_size: int | None = None) -> int:
    """An `overdue_notice` when a loan becomes overdue, then every OVERDUE_NOTICE_REPEAT_DAYS."""
    now = now or timezone.now()
    repeat = timedelta(days=settings.OVERDUE_NOTICE_REPEAT_DAYS)

    def period_of(loan: Loan) -> int:
        return loan.renewals * PERIOD_STRIDE + min(int((now - loan.date_due) / repeat), PERIOD_STRIDE - 1)

    candidates = Loan.objects.overdue(now)
    return _send(candidates, MessageType.OVERDUE_NOTICE, period_of, batch_size)


def _send(candidates: LoanQuerySet, notice_type: str, period_of: Callable[[Loan], int], batch_size: int | None) -> int:
    """Walk the candidates in (date_due, id) order, one batch per transaction; returns notices queued."""
    batch_size = batch_size or settings.NOTICES_BATCH_SIZE
    latest_sent = (
        LoanNotice.objects.filter(loan=OuterRef("pk"), notice_type=notice_type).order_by("-period").values("period")[:1]
    )
    scan = candidates.annotate(latest_sent=Subquery(latest_sent)).only("id", "date_due", "renewals")
    sent = 0
    for rows in scan.in_due_order_batches(batch_size):
        due = [row.pk for row in rows if row.latest_sent is None or period_of(row) > row.latest_sent]
        if due:
            sent += _send_batch(candidates, due, notice_type, period_of)
    return sent


def _send_batch(
    candidates: QuerySet[Loan], loan_ids: list[int], notice_type: str, period_of: Callable[[Loan], int]
) -> int:
    with transaction.atomic():
        # Re-read under the row locks: a loan returned or renewed since the scan is left alone (or
        # gets the notice of its new state); rows being changed right now wait for the next run.
        loans = list(candidates.select_for_update(skip_locked=True).filter(pk__in=loan_ids).order_by("id"))
        wanted = {(loan.pk, period_of(loan)): loan for loan in loans}
        inserted = _insert_notices(notice_type, list(wanted))
        for key in inserted:
            enqueue_notification(wanted[key], notice_type)
        now = timezone.now()
        history.record(
            *(
                history.loan_event(wanted[key], EventKind.NOTICE_QUEUED, at=now, notice_type=notice_type, period=key[1])
                for key in inserted
            )
        )
    if inserted:
        logger.info("queued %d %s notice(s)", len(inserted), notice_type)
    return len(inserted)


def _insert_notices(notice_type: str, keys: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Insert (loan, type, period) rows; returns the keys actually inserted (not already there)."""
    if not keys:
        return []
    table = connection.ops.quote_name(LoanNotice._meta.db_table)
    column_of = {field.name: field.column for field in LoanNotice._meta.concrete_fields}
    columns = ", ".join(
        connection.ops.quote_name(column_of[name]) for name in ("loan", "notice_type", "period", "created_at")
    )
    rows = ", ".join(["(%s, %s, %s, %s)"] * len(keys))
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    params: list = []
    for loan_id, period in keys:
        params += [loan_id, notice_type, period, now]
    loan_col = connection.ops.quote_name(LoanNotice._meta.get_field("loan").column)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({columns}) VALUES {rows} "  # noqa: S608 - identifiers from the model
            f"ON CONFLICT ({loan_col}, notice_type, period) DO NOTHING RETURNING {loan_col}, period",
            params,
        )
        return [(loan_id, period) for loan_id, period in cursor.fetchall()]
