"""Writes: lend and return. Each is one short transaction; peers are asked before it opens.

The per-book lock is the `BookStock` row: a lend upserts it (which locks it), a return selects it
FOR UPDATE. Every decision about a book's copies is taken while holding that lock, and the partial
unique constraint on open loans backs the one-loan-per-patron rule in the database itself.
"""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from lending.clients import books, users
from lending.errors import Conflict, NotFound
from lending.idempotency import Claim
from lending.models import BookStock, Loan, LoanStatus
from lending.outbox.messages import MessageType, enqueue_availability, enqueue_notification


def loan_lend(*, user_email: str, book_id: int, claim: Claim | None = None) -> Loan:
    users.ensure_active_user(user_email)
    book = books.get_book(book_id)
    try:
        with transaction.atomic():
            _lock_book(book)
            _ensure_lendable(user_email=user_email, book=book)
            now = timezone.now()
            loan = Loan.objects.create(
                user_email=user_email,
                book_id=book_id,
                book_title=book.title,
                date_borrowed=now,
                date_due=now + timedelta(days=settings.LOAN_PERIOD_DAYS),
            )
            _book_changed(book_id)
            enqueue_notification(loan, MessageType.LENDING_CONFIRMATION)
            if claim:
                claim.settle(loan)
    except IntegrityError:
        # The partial unique constraint caught a second open loan that slipped past the check.
        raise _already_borrowed(user_email, book_id) from None
    return loan


def loan_return(*, user_email: str, book_id: int, claim: Claim | None = None) -> Loan:
    """Never calls a peer: returning works while every peer is down."""
    with transaction.atomic():
        BookStock.objects.select_for_update().filter(book_id=book_id).first()
        loan = (
            Loan.objects.select_for_update()
            .filter(user_email=user_email, book_id=book_id, date_returned__isnull=True)
            .first()
        )
        if loan is None:
            raise NotFound(f"{user_email} has no open loan of book {book_id}.", code="loan_not_found")
        loan.status = LoanStatus.RETURNED
        loan.date_returned = timezone.now()
        loan.save(update_fields=["status", "date_returned"])
        _book_changed(book_id)
        enqueue_notification(loan, MessageType.RETURN_CONFIRMATION)
        if claim:
            claim.settle(loan)
    return loan


def _lock_book(book: books.BookInfo) -> None:
    """Upsert the book's row with what the Book service just said; the upsert locks the row until
    the transaction ends, so concurrent lends of this book queue here."""
    BookStock.objects.bulk_create(
        [BookStock(book_id=book.id, title=book.title, copies=book.copies)],
        update_conflicts=True,
        unique_fields=["book_id"],
        update_fields=["title", "copies"],
    )


def _ensure_lendable(*, user_email: str, book: books.BookInfo) -> None:
    open_loans = Loan.objects.filter(book_id=book.id, date_returned__isnull=True)
    if open_loans.filter(user_email=user_email).exists():
        raise _already_borrowed(user_email, book.id)
    if open_loans.count() >= book.copies:
        raise Conflict(f"No copy of book {book.id} is available.", code="no_copy_available")


def _already_borrowed(user_email: str, book_id: int) -> Conflict:
    return Conflict(f"{user_email} already has book {book_id} on loan.", code="already_borrowed")


def _book_changed(book_id: int) -> None:
    """Bump the book's version and queue an availability update computed at delivery time."""
    BookStock.objects.filter(book_id=book_id).update(version=F("version") + 1)
    enqueue_availability(book_id)
