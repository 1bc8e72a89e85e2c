"""Writes: lend, return, renew, reserve, cancel a hold, expire holds. Each is one short transaction;
peers are asked before it opens.

The per-book lock is the `BookStock` row: a lend or a reservation upserts it (which locks it); a
return updates it (bumping its version); a renewal, cancellation or expiry selects it FOR UPDATE.
Every decision about a book's copies and its holds queue is taken while holding that lock, and the
partial unique constraints on open loans and open holds back the one-per-patron rules in the
database itself. The rules themselves live in `lending.policy`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from lending import history, holds, policy
from lending.clients import books, users
from lending.errors import NotFound
from lending.idempotency import Claim
from lending.models import (
    OPEN_HOLD_STATUSES,
    BookStock,
    EventKind,
    Hold,
    HoldStatus,
    Loan,
    LoanStatus,
    OutboxMessage,
)
from lending.outbox.messages import (
    MessageType,
    availability_message,
    enqueue,
    enqueue_notification,
    hold_notification,
    loan_notification,
)


def loan_lend(*, user_email: str, book_id: int, claim: Claim | None = None) -> Loan:
    users.ensure_active_user(user_email)
    book = books.get_book(book_id)
    rules = policy.current()
    try:
        with transaction.atomic():
            _lock_book(book, bump_version=True)  # a refusal rolls the bump back
            _lock_patron(user_email)
            now = timezone.now()
            state = holds.read_state(book.id, book.copies, patron=user_email, now=now)
            hold = policy.check_lend(user_email=user_email, state=state, policy=rules)
            loan = Loan.objects.create(
                user_email=user_email,
                book_id=book_id,
                book_title=book.title,
                date_borrowed=now,
                date_due=now + rules.loan_period,
            )
            state.open_loans += 1
            events = [_lent_event(loan, hold)]
            if hold is not None:
                events.append(holds.close(state, hold, HoldStatus.FULFILLED, now=now, loan=loan))
            history.record(*events)
            # Only does something when the Book service now reports more copies than before.
            holds.promote_waiting(state, now=now, pickup_window=rules.pickup_window)
            enqueue(availability_message(book_id), loan_notification(loan, MessageType.LENDING_CONFIRMATION))
            if claim:
                claim.settle(loan)
    except IntegrityError:
        # The partial unique constraint caught a second open loan that slipped past the check.
        raise policy.already_borrowed(user_email, book_id) from None
    return loan


def loan_lend_check(*, user_email: str, book_id: int) -> None:
    """A dry run of `loan_lend`: the same peer checks and rules, no lock and no write. Raises the
    refusal the lend would get; returns when it would succeed (at this instant)."""
    users.ensure_active_user(user_email)
    book = books.get_book(book_id)
    state = holds.read_state(book.id, book.copies, patron=user_email, now=timezone.now())
    policy.check_lend(user_email=user_email, state=state, policy=policy.current())


def loan_return(*, user_email: str, book_id: int, claim: Claim | None = None) -> Loan:
    """Never calls a peer: returning works while every peer is down. Three statements in the
    transaction when nobody waits for the book: lock the book (bumping its version), close the loan,
    queue the outbox rows."""
    with transaction.atomic():
        now = timezone.now()
        copies = _lock_stock_bumping_version(book_id)
        loan = _close_open_loan(user_email, book_id, now=now)  # a 404 rolls the bump back
        history.record(history.loan_event(loan, EventKind.RETURNED, at=now, book_id=book_id))
        if copies is not None and loan.book_has_waiting_holds:
            # The copy goes to the first patron in the holds queue.
            _promote(book_id, copies, now=now)
        enqueue(availability_message(book_id), loan_notification(loan, MessageType.RETURN_CONFIRMATION))
        if claim:
            claim.settle(loan)
    return loan


def loan_renew(*, user_email: str, book_id: int, claim: Claim | None = None) -> Loan:
    """Extends the due date by the loan period from the current due date. Never calls a peer."""
    rules = policy.current()
    with transaction.atomic():
        _, loan = _lock_open_loan(user_email, book_id)
        now = timezone.now()
        others_waiting = (
            Hold.objects.filter(book_id=book_id, status=HoldStatus.WAITING).exclude(user_email=user_email).exists()
        )
        policy.check_renewal(loan=loan, others_waiting=others_waiting, policy=rules, now=now)
        loan.date_due += rules.loan_period
        loan.renewals += 1
        if loan.date_due >= now:
            loan.status = LoanStatus.ACTIVE
        loan.save(update_fields=["date_due", "renewals", "status"])
        history.record(
            history.loan_event(loan, EventKind.RENEWED, at=now, date_due=loan.date_due, renewals=loan.renewals)
        )
        enqueue_notification(loan, MessageType.RENEWAL_CONFIRMATION)
        if claim:
            claim.settle(loan)
    return loan


def hold_reserve(*, user_email: str, book_id: int, claim: Claim | None = None) -> Hold:
    """Queues the patron for a book none of whose copies is free for them."""
    users.ensure_active_user(user_email)
    book = books.get_book(book_id)
    rules = policy.current()
    try:
        with transaction.atomic():
            _lock_book(book)
            now = timezone.now()
            state = holds.read_state(book.id, book.copies)
            on_loan = Loan.objects.filter(user_email=user_email, book_id=book_id, date_returned__isnull=True).exists()
            policy.check_reservable(user_email=user_email, state=state, on_loan=on_loan)
            hold = Hold.objects.create(user_email=user_email, book_id=book_id, book_title=book.title, date_reserved=now)
            state.holds.append(hold)
            history.record(history.hold_event(hold, EventKind.RESERVED, at=now, book_id=book_id))
            # Only does something when the Book service now reports more copies than before.
            if holds.promote_waiting(state, now=now, pickup_window=rules.pickup_window):
                _book_changed(book_id)
            hold.queue_position = state.position_of(hold)
            if claim:
                claim.settle(hold)
    except IntegrityError:
        raise policy.already_reserved(user_email, book_id) from None
    return hold


def hold_cancel(*, user_email: str, book_id: int, claim: Claim | None = None) -> Hold:
    """Cancels the patron's open hold; a copy it kept goes to the next patron. Never calls a peer."""
    with transaction.atomic():
        stock, hold = _lock_book_then(
            book_id,
            Hold.objects.filter(user_email=user_email, book_id=book_id, status__in=OPEN_HOLD_STATUSES),
            NotFound(f"{user_email} has no open hold on book {book_id}.", code="hold_not_found"),
        )
        now = timezone.now()
        was_ready = hold.status == HoldStatus.READY
        hold.status = HoldStatus.CANCELLED
        hold.date_closed = now
        hold.save(update_fields=["status", "date_closed"])
        history.record(history.hold_event(hold, EventKind.CANCELLED, at=now, was_ready=was_ready))
        if was_ready and stock is not None:
            _promote(book_id, stock.copies, now=now)
            _book_changed(book_id)
        hold.queue_position = None
        if claim:
            claim.settle(hold)
    return hold


@history.scheduled_job
def expire_ready_holds(*, now: datetime | None = None) -> int:
    """Expires READY holds whose pickup deadline has passed, tells their patrons (`hold_expired`) and
    passes each copy to the next patron in the queue (with a `hold_available` notification). One
    short transaction per book, under the book lock; safe to run from several schedulers at once.
    Returns how many holds expired."""
    now = now or timezone.now()
    book_ids = (
        Hold.objects.filter(status=HoldStatus.READY, pickup_deadline__lt=now)
        .values_list("book_id", flat=True)
        .distinct()
        .order_by("book_id")
    )
    expired = 0
    for book_id in list(book_ids):
        with transaction.atomic():
            stock = _lock_stock(book_id)
            # Read under the lock: another scheduler that expired them first leaves nothing here.
            expiring = list(Hold.objects.filter(book_id=book_id, status=HoldStatus.READY, pickup_deadline__lt=now))
            if not expiring:
                continue
            Hold.objects.filter(pk__in=[hold.pk for hold in expiring]).update(
                status=HoldStatus.EXPIRED, date_closed=now
            )
            history.record(*(history.hold_event(hold, EventKind.HOLD_EXPIRED, at=now) for hold in expiring))
            if stock is not None:
                _promote(book_id, stock.copies, now=now)
            _book_changed(book_id, *(hold_notification(hold, MessageType.HOLD_EXPIRED) for hold in expiring))
            expired += len(expiring)
    return expired


def _lent_event(loan: Loan, hold: Hold | None):
    details = {"book_id": loan.book_id, "date_due": loan.date_due}
    if hold is not None:
        details["hold_id"] = hold.pk
    return history.loan_event(loan, EventKind.LENT, at=loan.date_borrowed, **details)


def _promote(book_id: int, copies: int, *, now: datetime) -> None:
    state = holds.read_state(book_id, copies)
    holds.promote_waiting(state, now=now, pickup_window=policy.current().pickup_window)


def _lock_stock(book_id: int) -> BookStock | None:
    """The book lock, for writes that do not ask the Book service (renew, cancel, expire; a return
    takes it with `_lock_stock_bumping_version`)."""
    return BookStock.objects.select_for_update().filter(book_id=book_id).first()


def _lock_patron(user_email: str) -> None:
    """Serialises one patron's lends on PostgreSQL (a transaction-scoped advisory lock), so two
    lends of different books cannot both pass the open-loan limit. Taken after the book lock, and
    nothing is locked after it, so it cannot deadlock. SQLite runs one writer at a time anyway."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [_PATRON_LOCK_SPACE, user_email])


_PATRON_LOCK_SPACE = 0x4C4E  # first key of the two-key advisory lock: "patron lends"


def _lock_open_loan(user_email: str, book_id: int) -> tuple[BookStock | None, Loan]:
    """The book lock, then the patron's open loan of the book (404 when there is none)."""
    return _lock_book_then(
        book_id,
        Loan.objects.filter(user_email=user_email, book_id=book_id, date_returned__isnull=True),
        NotFound(f"{user_email} has no open loan of book {book_id}.", code="loan_not_found"),
    )


def _lock_book_then(book_id: int, rows: QuerySet, not_found: NotFound) -> tuple[BookStock | None, Any]:
    """The book lock first (always in this order, so writers cannot deadlock), then the one row the
    write changes, locked too; `not_found` when there is none."""
    stock = _lock_stock(book_id)
    row = rows.select_for_update().first()
    if row is None:
        raise not_found
    return stock, row


def _lock_book(book: books.BookInfo, *, bump_version: bool = False) -> None:
    """Upsert the book's row with what the Book service just said; the upsert locks the row until
    the transaction ends, so concurrent lends of this book queue here. A lend bumps the version in
    the same statement (one round trip less than a separate UPDATE)."""
    stock = BookStock._meta.db_table
    bump = f"version = {stock}.version + 1," if bump_version else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {stock} (book_id, title, copies, version, updated_at) VALUES (%s, %s, %s, %s, %s) "
            f"ON CONFLICT (book_id) DO UPDATE SET {bump} title = EXCLUDED.title, copies = EXCLUDED.copies, "
            "updated_at = EXCLUDED.updated_at",
            [book.id, book.title, book.copies, int(bump_version), _db_datetime(timezone.now())],
        )


def _lock_stock_bumping_version(book_id: int) -> int | None:
    """The book lock and the version bump in one UPDATE, for a return (which does not ask the Book
    service). Returns the book's copies; None for a book never lent through this service."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {BookStock._meta.db_table} SET version = version + 1 WHERE book_id = %s RETURNING copies",
            [book_id],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def _close_open_loan(user_email: str, book_id: int, *, now: datetime) -> Loan:
    """Marks the patron's open loan of the book RETURNED in one statement, which also says whether
    patrons wait for the book. Run it after taking the book lock: a statement sees what committed
    before it began, so the holds it counts are those of the lock's previous holders too. The
    repeated `date_returned IS NULL` stops a concurrent return of a book never lent here (no lock
    row) from closing the loan twice."""
    loan, hold = Loan._meta.db_table, Hold._meta.db_table
    returned = list(
        Loan.objects.raw(
            f"UPDATE {loan} SET status = %s, date_returned = %s "
            f"WHERE id = (SELECT id FROM {loan} WHERE user_email = %s AND book_id = %s AND date_returned IS NULL) "
            "AND date_returned IS NULL "
            f"RETURNING *, EXISTS (SELECT 1 FROM {hold} WHERE book_id = %s AND status = %s) AS book_has_waiting_holds",
            [LoanStatus.RETURNED.value, _db_datetime(now), user_email, book_id, book_id, HoldStatus.WAITING.value],
        )
    )
    if not returned:
        raise NotFound(f"{user_email} has no open loan of book {book_id}.", code="loan_not_found")
    return returned[0]


def _db_datetime(value: datetime):
    """A datetime as the backend stores it, for the statements written in SQL."""
    return connection.ops.adapt_datetimefield_value(value)


def _book_changed(book_id: int, *also: OutboxMessage) -> None:
    """Bump the book's version and queue an availability update computed at delivery time, with any
    other messages of the change in the same INSERT."""
    BookStock.objects.filter(book_id=book_id).update(version=F("version") + 1)
    enqueue(availability_message(book_id), *also)
