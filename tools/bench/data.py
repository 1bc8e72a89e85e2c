"""Bulk loans for the benchmark and the EXPLAIN tool, written with PostgreSQL COPY (psycopg 3 `cursor.copy`):
one COPY routine (`copy_loans`) and the shapes of data the runs need."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg

LOAN_COLUMNS = "(user_email, book_id, book_title, date_borrowed, date_due, date_returned, status, renewals)"
STOCK_COLUMNS = "(book_id, title, copies, version, updated_at)"
CHUNK = 20_000
HEAVY_READER = "heavy.reader@example.com"


def _ts(value: datetime) -> str:
    return value.isoformat()


def copy_rows(dsn: str, table: str, row: Callable[[int], str], count: int, *, analyze: str = "ANALYZE") -> None:
    """COPY `row(i)` for i in [0, count) into `table` (a table name with its column list), then `analyze` it."""
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY {table} FROM STDIN") as copy:
            for start in range(0, count, CHUNK):
                copy.write("".join(row(i) for i in range(start, min(start + CHUNK, count))))
        cur.execute(f"{analyze} {table.split()[0]}")


def copy_loans(dsn: str, row: Callable[[int], str], count: int, *, analyze: str = "ANALYZE") -> None:
    copy_rows(dsn, f"lending_loan {LOAN_COLUMNS}", row, count, analyze=analyze)


def loan_row(
    user: str, book: int, borrowed: datetime, due: datetime, returned: datetime | None, status: str, title: str = ""
) -> str:
    """One loan as a COPY text line (no renewals)."""
    back = _ts(returned) if returned else "\\N"
    return f"{user}\t{book}\t{title or 'Volume book'}\t{_ts(borrowed)}\t{_ts(due)}\t{back}\t{status}\t0\n"


def open_loans(dsn: str, first: int, count: int) -> None:
    """Open, not yet due loans patron<k> -> book k+5 for k in [first, first+count), with their
    BookStock rows (the per-book lock rows a lend would have created)."""
    now = datetime.now(UTC)
    borrowed, due = now - timedelta(days=1), now + timedelta(days=59)
    copy_loans(
        dsn,
        lambda i: loan_row(
            f"patron{first + i}@example.com", first + i + 5, borrowed, due, None, "ACTIVE", f"Demo book {first + i}"
        ),
        count,
    )
    copy_rows(
        dsn,
        f"lending_bookstock {STOCK_COLUMNS}",
        lambda i: f"{first + i + 5}\tDemo book {first + i}\t1\t1\t{_ts(borrowed)}\n",
        count,
    )


def overdue_loans(dsn: str, first: int, count: int, *, prefix: str = "late") -> None:
    """`count` open loans past their due date, one per patron <prefix><k>@example.com, of the books
    `first`.. (a block of the run's numbers, which no other scenario lends)."""
    now = datetime.now(UTC)

    def row(i: int) -> str:
        k = i + 1
        borrowed, due = now - timedelta(days=90, minutes=k), now - timedelta(days=30, minutes=k)
        return loan_row(f"{prefix}{k}@example.com", first + i, borrowed, due, None, "OVERDUE", "Old book")

    copy_loans(dsn, row, count)


def volume(dsn: str, total: int, overdue: int, patrons: int, *, heavy: int = 0) -> dict:
    """`total` loans over `patrons` patrons vol<k>@example.com: `overdue` open and past due, as many
    open and not yet due, the rest returned; with `heavy`, that many of the returned ones belong to one
    patron (HEAVY_READER). Returns the counts written and the seconds taken."""
    started = time.monotonic()
    now = datetime.now(UTC)
    active = overdue
    book_base = 5_000_000

    def row(i: int) -> str:
        user = f"vol{i % patrons + 1}@example.com"
        book = book_base + i % max(overdue + active, 1)
        if i < overdue:  # open, due date passed
            due = now - timedelta(days=1, seconds=i)
            return loan_row(user, book, due - timedelta(days=60), due, None, "OVERDUE")
        if i < overdue + active:  # open, not yet due
            due = now + timedelta(days=1, seconds=i)
            return loan_row(user, book, due - timedelta(days=60), due, None, "ACTIVE")
        if i < overdue + active + heavy:
            user = HEAVY_READER
        borrowed = now - timedelta(days=400) + timedelta(seconds=i * 30)
        return loan_row(user, book, borrowed, borrowed + timedelta(days=60), borrowed + timedelta(days=20), "RETURNED")

    copy_loans(dsn, row, total, analyze="VACUUM ANALYZE")
    return {
        "loans": total,
        "overdue": overdue,
        "open_not_due": active,
        "patrons": patrons,
        "seconds": round(time.monotonic() - started, 1),
    }


def returned_loans(dsn: str, count: int, patrons: int) -> float:
    """`count` returned loans of patrons hist<k>@example.com, all past any retention. Seconds taken."""
    started = time.monotonic()
    now = datetime.now(UTC)

    def row(i: int) -> str:
        returned = now - timedelta(days=200, seconds=i * 30)
        borrowed = returned - timedelta(days=20)
        user, book = f"hist{i % patrons}@example.com", 8_000_000 + i % 50_000
        return loan_row(user, book, borrowed, borrowed + timedelta(days=60), returned, "RETURNED", "History book")

    copy_loans(dsn, row, count, analyze="VACUUM ANALYZE")
    return time.monotonic() - started
