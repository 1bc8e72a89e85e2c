"""Bulk data for the benchmark, written with PostgreSQL COPY (psycopg 3 `cursor.copy`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

LOAN_COLUMNS = "(user_email, book_id, book_title, date_borrowed, date_due, date_returned, status, renewals)"
STOCK_COLUMNS = "(book_id, title, copies, version, updated_at)"
CHUNK = 20_000


def _ts(value: datetime) -> str:
    return value.isoformat()


def open_loans(dsn: str, first: int, count: int) -> None:
    """Open, not yet due loans patron<k> -> book k+5 for k in [first, first+count), with their
    BookStock rows (the per-book lock rows a lend would have created)."""
    now = datetime.now(UTC)
    borrowed, due = _ts(now - timedelta(days=1)), _ts(now + timedelta(days=59))
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY lending_loan {LOAN_COLUMNS} FROM STDIN") as copy:
            for start in range(first, first + count, CHUNK):
                copy.write(
                    "".join(
                        f"patron{k}@example.com\t{k + 5}\tDemo book {k}\t{borrowed}\t{due}\t\\N\tACTIVE\t0\n"
                        for k in range(start, min(start + CHUNK, first + count))
                    )
                )
        with cur.copy(f"COPY lending_bookstock {STOCK_COLUMNS} FROM STDIN") as copy:
            for start in range(first, first + count, CHUNK):
                copy.write(
                    "".join(
                        f"{k + 5}\tDemo book {k}\t1\t1\t{borrowed}\n"
                        for k in range(start, min(start + CHUNK, first + count))
                    )
                )
        cur.execute("ANALYZE lending_loan")
        cur.execute("ANALYZE lending_bookstock")


def overdue_loans(dsn: str, count: int, *, prefix: str = "late") -> None:
    """`count` open loans past their due date, one per patron <prefix><k>@example.com."""
    now = datetime.now(UTC)
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY lending_loan {LOAN_COLUMNS} FROM STDIN") as copy:
            copy.write(
                "".join(
                    f"{prefix}{k}@example.com\t{900_000 + k}\tOld book\t{_ts(now - timedelta(days=90, minutes=k))}\t"
                    f"{_ts(now - timedelta(days=30, minutes=k))}\t\\N\tOVERDUE\t0\n"
                    for k in range(1, count + 1)
                )
            )
        cur.execute("ANALYZE lending_loan")


def volume(dsn: str, total: int, overdue: int, patrons: int) -> dict:
    """`total` loans over `patrons` patrons vol<k>@example.com: `overdue` open and past due, as many
    open and not yet due, the rest returned. Returns the counts written and the seconds taken."""
    import time

    started = time.monotonic()
    now = datetime.now(UTC)
    active = overdue
    book_base = 5_000_000

    def row(i: int) -> str:
        user = f"vol{i % patrons + 1}@example.com"
        book = book_base + i % (overdue + active)
        borrowed = now - timedelta(days=400) + timedelta(seconds=i * 30)
        if i < overdue:  # open, due date passed
            due = now - timedelta(days=1, seconds=i)
            return f"{user}\t{book}\tVolume book\t{_ts(due - timedelta(days=60))}\t{_ts(due)}\t\\N\tOVERDUE\t0\n"
        if i < overdue + active:  # open, not yet due
            due = now + timedelta(days=1, seconds=i)
            return f"{user}\t{book}\tVolume book\t{_ts(due - timedelta(days=60))}\t{_ts(due)}\t\\N\tACTIVE\t0\n"
        returned = borrowed + timedelta(days=20)
        return (
            f"{user}\t{book}\tVolume book\t{_ts(borrowed)}\t{_ts(borrowed + timedelta(days=60))}\t"
            f"{_ts(returned)}\tRETURNED\t0\n"
        )

    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY lending_loan {LOAN_COLUMNS} FROM STDIN") as copy:
            for start in range(0, total, CHUNK):
                copy.write("".join(row(i) for i in range(start, min(start + CHUNK, total))))
        cur.execute("VACUUM ANALYZE lending_loan")
    return {
        "loans": total,
        "overdue": overdue,
        "open_not_due": active,
        "patrons": patrons,
        "seconds": round(time.monotonic() - started, 1),
    }
