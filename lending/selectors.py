"""Reads. None of them writes: a loan past due shows as OVERDUE whether or not the scheduled job has
persisted that status yet."""
from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from lending.models import BookStock, Loan


def overdue_loans() -> QuerySet[Loan]:
    """Open loans whose due date has passed, oldest due first."""
    return Loan.objects.filter(date_returned__isnull=True, date_due__lt=timezone.now()).order_by("date_due", "id")


def book_is_available(book_id: int) -> tuple[bool, int]:
    """(a copy is free, the book's version) — what the relay publishes to the Book service."""
    stock = BookStock.objects.filter(book_id=book_id).values_list("copies", "version").first()
    if stock is None:
        return True, 0
    copies, version = stock
    open_loans = Loan.objects.filter(book_id=book_id, date_returned__isnull=True).count()
    return open_loans < copies, version
