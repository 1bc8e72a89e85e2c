"""Scheduled notices: persist OVERDUE, remind patrons before the due date, chase overdue loans.

Run by `manage.py send_notices` (once, or `--loop`). Every job works in batches (one short
transaction each), so a million loans never sit in memory and a run killed half way keeps what it
committed. "At most once per loan, type and period" is the `LoanNotice` unique constraint: a batch
inserts its notices with `INSERT … ON CONFLICT DO NOTHING RETURNING` and queues an outbox message
only for the rows it actually inserted, in the same transaction. Two overlapping runs therefore send
each notice once, and a rerun after a crash sends only what is missing.

Digests (NOTICE_DIGEST=true): a batch records its notices the same way but marks them
`awaiting_digest` instead of queueing a message. The pass's last notice job, `send_notice_digests`,
then takes the waiting notices patron by patron and, in one transaction per group of patrons, queues
one `digest` message per patron listing its notices, unmarks them and records each loan's
`notice_queued` event. The waiting rows are locked with SKIP LOCKED, so an overlapping run digests
the others (or nothing); a run killed between the two steps leaves its notices waiting, and the next
run's digest step sends them, while its batches see them as sent. The digest step runs in every pass,
so notices still waiting when the setting is turned off are sent too.

Periods (`LoanNotice.period`):
- `due_soon_reminder`: the loan's renewal count, so each due date (the first and every renewed one)
  gets its own reminder, DUE_SOON_REMINDER_DAYS before it.
- `overdue_notice`: `renewals * PERIOD_STRIDE + n`, where n counts OVERDUE_NOTICE_REPEAT_DAYS-long
  periods since the due date (0 the day it becomes overdue, 1 a repeat later, ...). Only the current
  period is sent: a scheduler that was down for weeks sends one notice, not a backlog.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from lending.db import notices as db_notices
from lending.db.outbox import NewMessage
from lending.events import history
from lending.models import EventKind, Loan, LoanNotice, LoanQuerySet, LoanStatus
from lending.outbox.messages import (
    MessageType,
    enqueue,
    enqueue_notification,
    loan_notification,
    notification_payload,
)
from lending.write_context import SCHEDULED, WriteContext

logger = logging.getLogger(__name__)

# Overdue periods of one due date stay below this (10,000 repeats); the renewal count selects the block.
PERIOD_STRIDE = 10_000


def mark_overdue_loans(
    *, now: datetime | None = None, batch_size: int | None = None, context: WriteContext = SCHEDULED
) -> int:
    """Persist status OVERDUE on open loans past due. Returns how many loans changed."""
    now = now or timezone.now()
    batch_size = batch_size or settings.NOTICES_BATCH_SIZE
    changed = 0
    for batch in Loan.objects.overdue(now).filter(status=LoanStatus.ACTIVE).locked_batches(batch_size):
        ids = [loan.pk for loan in batch]
        changed += Loan.objects.filter(pk__in=ids).update(status=LoanStatus.OVERDUE)
        history.record(*(context.loan_event(Loan(pk=pk), EventKind.MARKED_OVERDUE, at=now) for pk in ids))
    return changed


def send_due_soon_reminders(
    *, now: datetime | None = None, batch_size: int | None = None, context: WriteContext = SCHEDULED
) -> int:
    """A `due_soon_reminder` for each open loan due within DUE_SOON_REMINDER_DAYS."""
    now = now or timezone.now()
    window_end = now + timedelta(days=settings.DUE_SOON_REMINDER_DAYS)
    candidates = Loan.objects.due_within(now, window_end)
    return _send(candidates, MessageType.DUE_SOON_REMINDER, lambda loan: loan.renewals, batch_size, context)


def send_overdue_notices(
    *, now: datetime | None = None, batch_size: int | None = None, context: WriteContext = SCHEDULED
) -> int:
    """An `overdue_notice` when a loan becomes overdue, then every OVERDUE_NOTICE_REPEAT_DAYS."""
    now = now or timezone.now()
    repeat = timedelta(days=settings.OVERDUE_NOTICE_REPEAT_DAYS)

    def period_of(loan: Loan) -> int:
        return loan.renewals * PERIOD_STRIDE + min(int((now - loan.date_due) / repeat), PERIOD_STRIDE - 1)

    candidates = Loan.objects.overdue(now)
    return _send(candidates, MessageType.OVERDUE_NOTICE, period_of, batch_size, context)


def _send(
    candidates: LoanQuerySet,
    notice_type: str,
    period_of: Callable[[Loan], int],
    batch_size: int | None,
    context: WriteContext,
) -> int:
    """Walk the candidates in (date_due, id) order, one batch per transaction; returns notices queued
    (with NOTICE_DIGEST: recorded for the digest step)."""
    batch_size = batch_size or settings.NOTICES_BATCH_SIZE
    # Notices waiting for their digest count as sent: a rerun after a crash does not record them again.
    latest_sent = (
        LoanNotice.objects.filter(loan=OuterRef("pk"), notice_type=notice_type).order_by("-period").values("period")[:1]
    )
    scan = candidates.annotate(latest_sent=Subquery(latest_sent)).only("id", "date_due", "renewals")
    sent = 0
    for rows in scan.in_due_order_batches(batch_size):
        due = [row.pk for row in rows if row.latest_sent is None or period_of(row) > row.latest_sent]
        if due:
            sent += _send_batch(candidates, due, notice_type, period_of, context)
    return sent


def _send_batch(
    candidates: QuerySet[Loan],
    loan_ids: list[int],
    notice_type: str,
    period_of: Callable[[Loan], int],
    context: WriteContext,
) -> int:
    digest = settings.NOTICE_DIGEST
    with transaction.atomic():
        # Re-read under the row locks: a loan returned or renewed since the scan is left alone (or
        # gets the notice of its new state); rows being changed right now wait for the next run.
        loans = list(candidates.select_for_update(skip_locked=True).filter(pk__in=loan_ids).order_by("id"))
        wanted = {(loan.pk, period_of(loan)): loan for loan in loans}
        inserted = _insert_notices(notice_type, list(wanted), awaiting_digest=digest)
        if not digest:
            _queue_one_by_one([(wanted[key], key[1]) for key in inserted], notice_type, context)
    if inserted:
        logger.info("%s %d %s notice(s)", "recorded for digests" if digest else "queued", len(inserted), notice_type)
    return len(inserted)


def _queue_one_by_one(notices: list[tuple[Loan, int]], notice_type: str, context: WriteContext) -> None:
    """A notification per (loan, period), each with its loan's `notice_queued` event."""
    for loan, _ in notices:
        enqueue_notification(loan, notice_type)
    now = timezone.now()
    history.record(
        *(
            context.loan_event(loan, EventKind.NOTICE_QUEUED, at=now, notice_type=notice_type, period=period)
            for loan, period in notices
        )
    )


def _insert_notices(notice_type: str, keys: list[tuple[int, int]], *, awaiting_digest: bool) -> list[tuple[int, int]]:
    """Insert (loan, type, period) rows; returns the keys actually inserted (not already there)."""
    return db_notices.insert_loan_notices(notice_type, keys, created_at=timezone.now(), awaiting_digest=awaiting_digest)


# --- Digests (NOTICE_DIGEST) ------------------------------------------------------------------------


def send_notice_digests(*, batch_size: int | None = None, context: WriteContext = SCHEDULED) -> int:
    """One `digest` per patron for the notices waiting for it; returns how many digests were queued.
    Patrons are taken in email order, `batch_size` of them per transaction."""
    batch_size = batch_size or settings.NOTICES_BATCH_SIZE
    queued = 0
    after = ""
    while True:
        # Keyset over the patrons: those whose notices another run holds are passed, not read again.
        patrons = list(
            LoanNotice.objects.filter(awaiting_digest=True, loan__user_email__gt=after)
            .order_by("loan__user_email")
            .values_list("loan__user_email", flat=True)
            .distinct()[:batch_size]
        )
        if not patrons:
            return queued
        queued += _send_digests(patrons, context)
        after = patrons[-1]


def _send_digests(patrons: list[str], context: WriteContext) -> int:
    with transaction.atomic():
        # Notices another run is digesting, or whose loan a return or renewal holds right now, are
        # skipped: that run sends them, or the next one does. Holding the loans keeps this run's
        # history events in order with theirs.
        waiting = list(
            LoanNotice.objects.filter(awaiting_digest=True, loan__user_email__in=patrons)
            .select_related("loan")
            .select_for_update(skip_locked=True, of=("self", "loan"))
            .order_by("id")
        )
        listed = _still_circulating(waiting)
        by_patron: dict[str, list[LoanNotice]] = defaultdict(list)
        for notice in listed:
            by_patron[notice.loan.user_email].append(notice)
        digests = enqueue(*(_digest_message(notices) for notices in by_patron.values()))
        LoanNotice.objects.filter(pk__in=[notice.pk for notice in listed]).update(awaiting_digest=False)
        _record_queued(by_patron.values(), digests, context)
    if digests:
        logger.info("queued %d digest(s) of %d notice(s)", len(digests), len(listed))
    return len(digests)


def _still_circulating(waiting: list[LoanNotice]) -> list[LoanNotice]:
    """The notices whose loan still circulates. The others (returned, lost or claimed returned since)
    are never sent, so their rows go: `LoanNotice` records what was sent."""
    loan_ids = {n.loan_id for n in waiting}
    open_ids = set(Loan.objects.circulating().filter(pk__in=loan_ids).values_list("pk", flat=True))
    closed = [notice.pk for notice in waiting if notice.loan_id not in open_ids]
    if closed:
        LoanNotice.objects.filter(pk__in=closed).delete()
    return [notice for notice in waiting if notice.loan_id in open_ids]


def _digest_message(notices: list[LoanNotice]) -> NewMessage:
    """One patron's digest: each notice as its own notification would say it (without the patron),
    the most urgent first. `book_title` and `due_date`, which the Notification contract names, are
    the titles listed and the earliest due date, for a consumer that reads those only."""
    ordered = sorted(notices, key=lambda notice: (notice.loan.date_due, notice.loan_id, notice.notice_type))
    loans = [_listed(notice) for notice in ordered]
    message = loan_notification(ordered[0].loan, MessageType.DIGEST)
    message.payload = {
        "user_email": ordered[0].loan.user_email,
        "message_type": MessageType.DIGEST,
        "book_title": "; ".join(dict.fromkeys(loan["book_title"] for loan in loans)),
        "due_date": loans[0]["due_date"],
        "loans": loans,
    }
    return message


def _listed(notice: LoanNotice) -> dict:
    entry = notification_payload(notice.loan, notice.notice_type)
    del entry["user_email"]  # said once, at the top
    return entry


def _record_queued(groups: Iterable[list[LoanNotice]], digests: list[NewMessage], context: WriteContext) -> None:
    """Each loan's `notice_queued` event, as without digests, naming the digest that carries it."""
    now = timezone.now()
    history.record(
        *(
            context.loan_event(
                notice.loan,
                EventKind.NOTICE_QUEUED,
                at=now,
                notice_type=notice.notice_type,
                period=notice.period,
                digest=str(digest.key),
            )
            for notices, digest in zip(groups, digests, strict=True)
            for notice in notices
        )
    )
