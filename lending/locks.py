"""The locks every write takes, and the statements written in SQL that take them.

One vocabulary: the *book lock* is the book's `BookStock` row (our record of its copies and version);
every decision about a book's copies and holds queue is taken while holding it. Writers take it
first, always, then (for a lend) the *patron lock*, and nothing after that, so they cannot deadlock.

- `lock_book_refreshing_stock`: a lend or reservation, which just asked the Book service: upserts
  the row with what it said (the upsert locks it).
- `lock_book_bumping_version`: a return, which asks no peer: one UPDATE locks and bumps the version.
- `lock_book`: renew, cancel, expire: SELECT ... FOR UPDATE.
- `lock_book_and_row`: the book lock, then the one row the write changes.
- `lock_patron`: one patron's lends, one at a time (the open-loan limit).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import F, QuerySet
from django.utils import timezone

from lending import circulation_rules
from lending.clients.books import BookInfo
from lending.errors import LendingError
from lending.models import BookStock, Hold, Loan, LoanStatus

_PATRON_LOCK_SPACE = 0x4C4E  # first key of the two-key advisory lock: "patron lends"


def lock_book(book_id: int) -> BookStock | None:
    """The book lock, for writes that do not ask the Book service (renew, cancel, expire). None for
    a book never lent through this service."""
    return BookStock.objects.select_for_update().filter(book_id=book_id).first()


def lock_book_refreshing_stock(book: BookInfo, *, bump_version: bool = False) -> None:
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
            [book.id, book.title, book.copies, int(bump_version), db_datetime(timezone.now())],
        )


def lock_book_bumping_version(book_id: int) -> int | None:
    """The book lock and the version bump in one UPDATE, for a return (which does not ask the Book
    service). Returns the book's copies; None for a book never lent through this service."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {BookStock._meta.db_table} SET version = version + 1 WHERE book_id = %s RETURNING copies",
            [book_id],
        )
        row = cursor.fetchone()
    return row[0] if row else None


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
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"SELECT pg_advisory_xact_lock(%s, hashtext(%s)), ({circulation_rules.VERSION_SQL})",
                [_PATRON_LOCK_SPACE, user_email, circulation_rules.ROW_ID],
            )
            return cursor.fetchone()[1] or circulation_rules.NO_VERSION
        cursor.execute(circulation_rules.VERSION_SQL, [circulation_rules.ROW_ID])
        row = cursor.fetchone()
        return row[0] if row else circulation_rules.NO_VERSION


def bump_book_version(book_id: int) -> None:
    """The book changed (a hold promoted, cancelled or expired): its next availability is newer."""
    BookStock.objects.filter(book_id=book_id).update(version=F("version") + 1)


def close_open_loan(loans: QuerySet, *, book_id: int, now: datetime) -> tuple[Loan, bool] | None:
    """Marks RETURNED the one open loan of `loans` (the patron's loan of the book, narrowed as the
    caller needs) in one statement, which also says whether patrons wait for the book. Run it after
    taking the book lock: a statement sees what committed before it began, so the holds it counts are
    those of the lock's previous holders too. The repeated conditions stop a concurrent write that
    holds no book lock (a return of a book never lent here, the scheduler aging a loan to lost) from
    being overwritten: PostgreSQL re-checks them on the row once that write commits. Returns the
    loan and whether anyone waits for the book; None when no loan matches."""
    loan = Loan._meta.db_table
    matching, params = _where(loans)
    waiting, waiting_params = _where(Hold.objects.waiting_for(book_id))
    returned = list(
        Loan.objects.raw(
            f"UPDATE {loan} SET status = %s, date_returned = %s "
            f"WHERE id = (SELECT id FROM {loan} WHERE {matching}) AND {matching} "
            f"RETURNING *, EXISTS (SELECT 1 FROM {Hold._meta.db_table} WHERE {waiting}) AS book_has_waiting_holds",
            [LoanStatus.RETURNED.value, db_datetime(now), *params, *params, *waiting_params],
        )
    )
    if not returned:
        return None
    closed = returned[0]
    return closed, bool(closed.__dict__.pop("book_has_waiting_holds"))


def _where(queryset: QuerySet) -> tuple[str, tuple]:
    """The WHERE clause the ORM writes for `queryset` (one table, no joins), with its parameters: so
    the statements above use the models' one definition of an open loan and of a waiting hold."""
    compiler = queryset.query.get_compiler(connection=connection)
    where, params = compiler.compile(queryset.query.where)
    return where, tuple(params)


def db_datetime(value: datetime):
    """A datetime as the backend stores it, for the statements written in SQL."""
    return connection.ops.adapt_datetimefield_value(value)
