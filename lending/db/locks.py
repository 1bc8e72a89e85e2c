"""The locks every write takes, as statements (the order and the why: `lending.locks`).

The *book lock* is the book's `lending_bookstock` row; the *patron lock* a transaction-scoped
advisory lock on PostgreSQL (SQLite runs one writer at a time anyway)."""

from __future__ import annotations

from datetime import datetime

from lending.db import rules
from lending.db.run import Variants, columns, db_datetime, execute, fetch_one, instance, is_postgresql
from lending.models import BookStock

# A lend or reservation, which just asked the Book service: the upsert locks the row until the
# transaction ends. `version + %s`: a lend bumps the version in the same statement (1), a reservation
# does not (0).
UPSERT_BOOK_STOCK = (
    "INSERT INTO lending_bookstock (book_id, title, copies, version, updated_at) VALUES (%s, %s, %s, %s, %s) "
    "ON CONFLICT (book_id) DO UPDATE SET version = lending_bookstock.version + %s, title = EXCLUDED.title, "
    "copies = EXCLUDED.copies, updated_at = EXCLUDED.updated_at"
)

# A return, which asks no peer: the lock and the version bump in one UPDATE.
BUMP_BOOK_VERSION = "UPDATE lending_bookstock SET version = version + 1 WHERE book_id = %s RETURNING copies"

# Renew, cancel, expire: the row, locked.
LOCK_BOOK = Variants(
    postgresql=f"SELECT {columns(BookStock)} FROM lending_bookstock WHERE book_id = %s FOR UPDATE",  # noqa: S608
    sqlite=f"SELECT {columns(BookStock)} FROM lending_bookstock WHERE book_id = %s",  # noqa: S608
)

# The patron lock (first key: "patron lends"), with the circulation rules' version read in the same
# statement: the write applies the rulebook of that version, at no round trip of its own.
PATRON_LOCK_SPACE = 0x4C4E
LOCK_PATRON_READING_RULES_VERSION = f"SELECT pg_advisory_xact_lock(%s, hashtext(%s)), ({rules.READ_VERSION})"  # noqa: S608 - a constant

# A lend or reservation: the book lock (the upsert) and then the patron lock, with the rules' version, in
# one statement. The SELECT reads the upsert's row, which the upsert locked before returning it, so
# the advisory lock is asked for after the book lock is held: the writers' order (`lending.locks`) holds.
UPSERT_BOOK_STOCK_LOCKING_PATRON = (
    f"WITH book AS ({UPSERT_BOOK_STOCK} RETURNING book_id)"  # noqa: S608 - constants
    f" SELECT pg_advisory_xact_lock(%s, hashtext(%s)), ({rules.READ_VERSION}) FROM book"
)


def upsert_book_stock(book_id: int, title: str, copies: int, *, bump_version: bool, now: datetime) -> None:
    bump = int(bump_version)
    execute(UPSERT_BOOK_STOCK, [book_id, title, copies, bump, db_datetime(now), bump])


def upsert_book_stock_locking_patron(
    book_id: int, title: str, copies: int, *, bump_version: bool, now: datetime, user_email: str
) -> str:
    """`upsert_book_stock`, then `lock_patron_reading_rules_version`, in one round trip on PostgreSQL
    (SQLite: the upsert, then the version). The rules' version (`rules.NO_VERSION` without a row)."""
    if not is_postgresql():
        upsert_book_stock(book_id, title, copies, bump_version=bump_version, now=now)
        return rules.read_version()
    bump = int(bump_version)
    row = fetch_one(
        UPSERT_BOOK_STOCK_LOCKING_PATRON,
        [book_id, title, copies, bump, db_datetime(now), bump, PATRON_LOCK_SPACE, user_email, rules.ROW_ID],
    )
    assert row is not None, "the upsert always answers its row"
    return row[1] or rules.NO_VERSION


def bump_book_version(book_id: int) -> int | None:
    """The book's copies; None for a book never lent through this service (nothing locked)."""
    row = fetch_one(BUMP_BOOK_VERSION, [book_id])
    return row[0] if row else None


def lock_book(book_id: int) -> BookStock | None:
    return instance(BookStock, LOCK_BOOK, [book_id])


def lock_patron_reading_rules_version(user_email: str) -> str:
    """The rules' version (`rules.NO_VERSION` without a version row)."""
    if not is_postgresql():
        return rules.read_version()
    row = fetch_one(LOCK_PATRON_READING_RULES_VERSION, [PATRON_LOCK_SPACE, user_email, rules.ROW_ID])
    assert row is not None
    return row[1] or rules.NO_VERSION
