"""The locks every write takes, in the order writers take them (their statements: `lending.db.locks`).

One vocabulary: the *book lock* is the book's `BookStock` row (our record of its copies and version);
every decision about a book's copies and holds queue is taken while holding it. Writers take it
first, always, then (for a lend) the *patron lock*, and nothing after that, so they cannot deadlock.

- `lock_book_refreshing_stock`: a write that just asked the Book service (a check-in): upserts
  the row with what it said (the upsert locks it).
- `lock_book_and_patron`: a lend or reservation: that upsert, then the patron lock, in one statement.
- `lock_book_bumping_version`: a return, which asks no peer: one UPDATE locks and bumps the version.
- `lock_book`: renew, cancel, expire: SELECT ... FOR UPDATE.
- `lock_book_and_row`: the book lock, then the one row the write changes.
- `lock_patron`: one patron's lends, one at a time (the open-loan limit).
- `close_patrons_loan`, `close_loan_of_copy`, `close_loan`: a return's one statement under the book lock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from lending.clients.books import BookInfo
from lending.db import loans
from lending.db import locks as statements
from lending.errors import LendingError
from lending.models import BookStock, Loan


def lock_book(book_id: int) -> BookStock | None:
    """The book lock, for writes that do not ask the Book service (renew, cancel, expire). None for
    a book never lent through this service."""
    return statements.lock_book(book_id)


def lock_book_refreshing_stock(book: BookInfo, *, bump_version: bool = False) -> None:
    """Upsert the book's row with what the Book service just said; the upsert locks the row until
    the transaction ends, so concurrent lends of this book queue here. A lend bumps the version in
    the same statement (one round trip less than a separate UPDATE)."""
    statements.upsert_book_stock(book.id, book.title, book.copies, bump_version=bump_version, now=timezone.now())


def lock_book_and_patron(book: BookInfo, user_email: str, *, bump_version: bool = False) -> str:
    """`lock_book_refreshing_stock`, then `lock_patron`, in that order and in one statement (a round trip
    less): a lend's and a reservation's locks. Returns the circulation rules' version, as `lock_patron`."""
    return statements.upsert_book_stock_locking_patron(
        book.id, book.title, book.copies, bump_version=bump_version, now=timezone.now(), user_email=user_email
    )


def lock_book_bumping_version(book_id: int) -> int | None:
    """The book lock and the version bump in one UPDATE, for a return (which does not ask the Book
    service). Returns the book's copies; None for a book never lent through this service."""
    return statements.bump_book_version(book_id)


def lock_book_and_row(book_id: int, rows: QuerySet, not_found: LendingError) -> tuple[BookStock | None, Any]:
    """The book lock first (always in this order, so writers cannot deadlock), then the one row the
    write changes, locked too; `not_found` when there is none."""
    stock = lock_book(book_id)
    row = rows.select_for_update().first()
    if row is None:
        raise not_found
    return stock, row


def lock_patron(user_email: str) -> str:
    """Serialises one patron's lends on PostgreSQL (a transaction-scoped advisory lock), so two
    lends of different books cannot both pass the open-loan limit. Taken after the book lock, and
    nothing is locked after it, so it cannot deadlock. SQLite runs one writer at a time anyway.

    Returns the circulation rules' version, read in the same statement (no round trip of its own):
    the write applies the rulebook of that version (`lending.circulation_rules.in_force`)."""
    return statements.lock_patron_reading_rules_version(user_email)


def bump_book_version(book_id: int) -> None:
    """The book changed (a hold promoted, cancelled or expired): its next availability is newer."""
    statements.bump_book_version(book_id)


# Returns. Run each after taking the book lock: a statement sees what committed before it began, so
# the holds it counts are those of the lock's previous holders too. Each returns the loan closed and
# whether anyone waits for its book; None when no open loan matches (`circulating_only`: a lost or
# claimed-returned loan does not match either).
def close_patrons_loan(
    user_email: str, book_id: int, *, now: datetime, circulating_only: bool
) -> tuple[Loan, bool] | None:
    return loans.close_open_loan(
        "patron_and_book", [user_email, book_id], book_id=book_id, now=now, circulating_only=circulating_only
    )


def close_loan_of_copy(
    item_barcode: str, book_id: int, *, now: datetime, circulating_only: bool
) -> tuple[Loan, bool] | None:
    return loans.close_open_loan(
        "copy_of_book", [item_barcode, book_id], book_id=book_id, now=now, circulating_only=circulating_only
    )


def close_loan(loan: Loan, *, now: datetime) -> tuple[Loan, bool] | None:
    """A lost or claimed-returned loan resolved (found, returned)."""
    return loans.close_open_loan("loan", [loan.pk], book_id=loan.book_id, now=now, circulating_only=False)
