"""What a lend or a reservation decides on, read in one statement under its locks: the book's open
loans and the patron's (`lending.db.loans`' counts), the book's open holds in queue order
(`lending.db.holds`), the patron's blocks in force (`lending.db.blocks`) and the library's closed days
(`lending.db.calendar`, for the due date). The holds and blocks ride as JSON arrays of their rows
beside the counts: one round trip instead of four."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lending.db.loans import (
    COUNT_BOOK_AND_PATRON_LOANS,
    PatronLoans,
    book_and_patron_loans,
    book_and_patron_loans_params,
)
from lending.db.run import Variants, db_datetime, fetch_one, instances_from_json, read_json
from lending.models import Hold, PatronBlock

# The calendar's one row (`lending.calendar.CALENDAR_ID`); NULL when none was ever set.
CALENDAR_WEEKDAYS = "SELECT closed_weekdays FROM lending_librarycalendar WHERE id = 1"
CALENDAR_DATES = "SELECT closed_dates FROM lending_librarycalendar WHERE id = 1"


# A lend takes its loan's id with the state (`for_lend`), and a reservation its hold's (`for_reserve`), so
# that the row, its events and its outbox rows can name it and go in one statement
# (`lending.events.history.record_with`); a refused write leaves a gap in the ids. SQLite's AUTOINCREMENT
# gives the larger of its counter and the highest id, plus one; its one writer at a time (the book upsert
# before this read took the write lock) keeps another transaction from taking it.
def _next_id(table: str) -> Variants:
    return Variants(
        postgresql=f"CASE WHEN %s THEN nextval(pg_get_serial_sequence('{table}', 'id')) END",
        sqlite=(
            f"CASE WHEN %s THEN MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = '{table}'), 0),"
            f" COALESCE((SELECT MAX(id) FROM {table}), 0)) + 1 END"  # noqa: S608 - a constant table name
        ),
    )


NEXT_LOAN_ID = _next_id("lending_loan")
NEXT_HOLD_ID = _next_id("lending_hold")

READ_BOOK_AND_PATRON = Variants(
    postgresql=(
        "SELECT counts.*,"
        " (SELECT json_agg(h ORDER BY h.id) FROM lending_hold h"
        "  WHERE h.book_id = %s AND h.status IN ('WAITING', 'READY')),"
        " (SELECT json_agg(b ORDER BY b.id) FROM lending_patronblock b"
        "  WHERE b.user_email = %s AND (b.expires_at IS NULL OR b.expires_at > %s))"
        f", ({CALENDAR_WEEKDAYS}), ({CALENDAR_DATES}), {NEXT_LOAN_ID.postgresql}, {NEXT_HOLD_ID.postgresql}"
        f" FROM ({COUNT_BOOK_AND_PATRON_LOANS}) counts"
    ),
    # SQLite 3.40 has no ORDER BY inside an aggregate: each array is built over an ordered subquery.
    sqlite=(
        "SELECT counts.*,"
        " (SELECT json_group_array(json_object('id', id, 'user_email', user_email, 'book_id', book_id,"
        "  'book_title', book_title, 'status', status, 'date_reserved', date_reserved, 'date_ready', date_ready,"
        "  'pickup_deadline', pickup_deadline, 'date_closed', date_closed, 'loan_id', loan_id,"
        "  'item_barcode', item_barcode)) FROM (SELECT * FROM lending_hold"
        "  WHERE book_id = %s AND status IN ('WAITING', 'READY') ORDER BY id)),"
        " (SELECT json_group_array(json_object('id', id, 'user_email', user_email, 'reason', reason,"
        "  'blocks', json(blocks), 'created_at', created_at, 'expires_at', expires_at, 'created_by', created_by))"
        "  FROM (SELECT * FROM lending_patronblock"
        "  WHERE user_email = %s AND (expires_at IS NULL OR expires_at > %s) ORDER BY id))"
        f", ({CALENDAR_WEEKDAYS}), ({CALENDAR_DATES}), {NEXT_LOAN_ID.sqlite}, {NEXT_HOLD_ID.sqlite}"
        f" FROM ({COUNT_BOOK_AND_PATRON_LOANS}) counts"
    ),
)


@dataclass(frozen=True)
class BookAndPatron:
    book_open_loans: int
    patron_loans: PatronLoans
    holds: list[Hold]  # the book's open holds, in queue order
    blocks: list[PatronBlock]  # the patron's blocks in force, oldest first
    calendar: tuple[list[str], list[str]] | None  # (closed weekdays, closed dates) as stored; None: no row
    next_loan_id: int | None  # the id a lend's loan takes (`for_lend`), else None
    next_hold_id: int | None  # the id a reservation's hold takes (`for_reserve`), else None


def read_book_and_patron(
    book_id: int, user_email: str, now: datetime, *, for_lend: bool = False, for_reserve: bool = False
) -> BookAndPatron:
    counts = book_and_patron_loans_params(book_id, user_email, now)
    row = fetch_one(READ_BOOK_AND_PATRON, [book_id, user_email, db_datetime(now), for_lend, for_reserve, *counts])
    assert row is not None
    book, patron_loans = book_and_patron_loans(row[:6])
    holds, blocks, weekdays, dates, next_loan_id, next_hold_id = row[6:]
    return BookAndPatron(
        book_open_loans=book,
        patron_loans=patron_loans,
        holds=instances_from_json(Hold, read_json(holds) or []),
        blocks=instances_from_json(PatronBlock, read_json(blocks) or []),
        calendar=None if weekdays is None else (read_json(weekdays), read_json(dates)),
        next_loan_id=next_loan_id,
        next_hold_id=next_hold_id,
    )
