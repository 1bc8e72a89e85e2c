"""Reads. None of them writes: a loan past due shows as OVERDUE whether or not the scheduled job has
persisted that status yet."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import timezone

from lending.db import loans as statements
from lending.models import OPEN_HOLD_STATUSES, Hold, HoldStatus, Loan


def overdue_loans() -> QuerySet[Loan]:
    """Open loans whose due date has passed, oldest due first."""
    return Loan.objects.overdue(timezone.now()).order_by("date_due", "id")


def book_is_available(book_id: int) -> tuple[bool, int]:
    """(a copy is free, the book's version) — what the relay publishes to the Book service.

    Free means a patron not in the holds queue could borrow it: copies kept for READY holds or
    promised to WAITING patrons do not count (`BookState.copies_free_for`, counted in SQL)."""
    return books_availability([book_id])[book_id]


def books_availability(book_ids: Iterable[int]) -> dict[int, tuple[bool, int]]:
    """`book_is_available` of several books in one query (`lending.db.loans`): the relay asks it once
    per batch. A book never lent through this service is available, at version 0."""
    book_ids = list(book_ids)
    states = {book_id: (True, 0) for book_id in book_ids}
    if not book_ids:
        return states
    for book_id, copies, version, loans_open, holds_open in statements.books_availability(book_ids):
        states[book_id] = (loans_open + holds_open < copies, version)
    return states


def loans(*, user_email: str | None = None, book_id: int | None = None, status: str | None = None) -> QuerySet[Loan]:
    """Loans, newest first, filtered by patron, book and status. The status is the one shown to
    clients (ACTIVE turns OVERDUE as soon as the due date passes)."""
    queryset = Loan.objects.with_shown_status(status, timezone.now())
    if user_email is not None:
        queryset = queryset.filter(user_email=user_email)
    if book_id is not None:
        queryset = queryset.filter(book_id=book_id)
    return queryset.order_by("-date_borrowed", "-id")


def loan(loan_id: int) -> Loan | None:
    return Loan.objects.filter(pk=loan_id).first()


def holds(
    *, user_email: str | None = None, book_id: int | None = None, statuses: tuple[str, ...] = OPEN_HOLD_STATUSES
) -> QuerySet[Hold]:
    """Holds in queue order (oldest first), each annotated with `queue_position`: 1 for the next
    WAITING patron to get a copy, None for holds that are not WAITING."""
    queryset = Hold.objects.filter(status__in=statuses)
    if user_email is not None:
        queryset = queryset.filter(user_email=user_email)
    if book_id is not None:
        queryset = queryset.filter(book_id=book_id)
    return queryset.with_queue_position().order_by("id")


@dataclass(frozen=True)
class ItemCirculation:
    """One copy's circulation, derived from the loans and holds (nothing is stored twice)."""

    item_barcode: str
    book_id: int
    loan: Loan | None  # its open loan (lost and claimed-returned ones included)
    trapped_for: Hold | None  # the READY hold it waits on the hold shelf for
    holds_waiting: int  # WAITING holds on its book


def item_circulation(barcode: str, item_of: Callable[[str], tuple[str, int]]) -> ItemCirculation:
    """`item_of(barcode)`: the copy's (barcode as the catalogue spells it, book id), asked only when no
    open loan nor READY hold names the copy (the Book service's `GET /items/{barcode}`)."""
    loan = Loan.objects.open().filter(item_barcode=barcode).first()
    trapped = None if loan else Hold.objects.filter(status=HoldStatus.READY, item_barcode=barcode).first()
    if loan is None and trapped is None:
        spelled, book_id = item_of(barcode)
        if spelled != barcode:
            return item_circulation(spelled, lambda _: (spelled, book_id))
    else:
        book_id = loan.book_id if loan else trapped.book_id  # type: ignore[union-attr]
    waiting = Hold.objects.waiting_for(book_id).count()
    return ItemCirculation(barcode, book_id, loan, trapped, waiting)
