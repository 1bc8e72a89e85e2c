"""The loans' statements on the write path: the counts the rules need, the insert of a lend, the
close of a return, and the books' availability the relay publishes.

What the words mean is `lending.models`' (an open loan: `date_returned IS NULL`; circulating: ACTIVE
or OVERDUE; overdue: circulating and due before now; an unresolved lost item: open and LOST);
`tests/db/test_loans.py` checks each statement against the ORM's reading of those words."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lending.db.run import (
    Variants,
    columns,
    db_datetime,
    db_json,
    fetch_all,
    fetch_one,
    instances,
    is_postgresql,
    read_datetime,
)
from lending.models import Loan


@dataclass(frozen=True)
class PatronLoans:
    """One patron's open loans, as the lending rules and the automated blocks count them."""

    open: int = 0
    overdue: int = 0
    of_this_book: int = 0
    lost: int = 0  # unresolved lost items
    oldest_overdue_due: datetime | None = None  # the due date of the loan overdue longest


# The patron's open loans at a moment: every count the rules and the blocks need, in one statement.
# Parameters: now (overdue), now (oldest overdue), the patron.
COUNT_PATRON_LOANS = (
    "SELECT COUNT(*),"
    " COUNT(*) FILTER (WHERE status IN ('ACTIVE', 'OVERDUE') AND date_due < %s),"
    " COUNT(*) FILTER (WHERE status = 'LOST'),"
    " MIN(date_due) FILTER (WHERE status IN ('ACTIVE', 'OVERDUE') AND date_due < %s)"
    " FROM lending_loan WHERE date_returned IS NULL AND user_email = %s"
)

# A lend's counts: the book's open loans and the patron's (as COUNT_PATRON_LOANS, plus the patron's
# open loan of this book), in one statement. Parameters: book, patron, book, patron, patron, now,
# patron, patron, now, book, patron.
COUNT_BOOK_AND_PATRON_LOANS = (
    "SELECT COUNT(*) FILTER (WHERE book_id = %s),"
    " COUNT(*) FILTER (WHERE user_email = %s AND book_id = %s),"
    " COUNT(*) FILTER (WHERE user_email = %s),"
    " COUNT(*) FILTER (WHERE user_email = %s AND status IN ('ACTIVE', 'OVERDUE') AND date_due < %s),"
    " COUNT(*) FILTER (WHERE user_email = %s AND status = 'LOST'),"
    " MIN(date_due) FILTER (WHERE user_email = %s AND status IN ('ACTIVE', 'OVERDUE') AND date_due < %s)"
    " FROM lending_loan WHERE date_returned IS NULL AND (book_id = %s OR user_email = %s)"
)

# A book's open loans (a return, a check-in: no patron's counts needed).
COUNT_OPEN_LOANS_OF_BOOK = "SELECT COUNT(*) FROM lending_loan WHERE date_returned IS NULL AND book_id = %s"

# A circulation rule for one item type limits the loans of that type.
COUNT_PATRON_LOANS_OF_TYPE = (
    "SELECT COUNT(*) FROM lending_loan WHERE date_returned IS NULL AND user_email = %s AND item_type = %s"
)

# The loan a lend makes, every column given (the model's defaults written out), with the id the lend took
# with its state (`lending.db.state`), so that its events and outbox rows can name it in the same
# statement (`lending.events.history.record_with`).
INSERT_LOAN_WITH_ID = (
    "INSERT INTO lending_loan (id, user_email, book_id, book_title, date_borrowed, date_due, date_returned, status,"
    " renewals, item_barcode, item_type, loan_policy, policy_terms, fine_amount, fine_days_charged)"
    " VALUES (%s, %s, %s, %s, %s, %s, NULL, 'ACTIVE', 0, %s, %s, %s, %s, NULL, NULL)"
)

# A renewal: the loan's new due date, renewal count and status (ACTIVE again unless still overdue), run
# with its event and notice in one statement (`lending.events.history.record_with`).
RENEW_LOAN = "UPDATE lending_loan SET date_due = %s, renewals = %s, status = %s WHERE id = %s"

# Who borrowed this copy, and of which book (none, or one: a partial unique index).
LOAN_OF_COPY = "SELECT user_email, book_id FROM lending_loan WHERE date_returned IS NULL AND item_barcode = %s"

# A return: marks RETURNED the one open loan that `{which}` names, and says in the same statement
# whether patrons wait for its book. The conditions are repeated outside the subquery so that a
# concurrent write holding no book lock (the scheduler aging a loan to lost) is not overwritten:
# PostgreSQL re-checks them on the row once that write commits. `{which}` is one of CLOSE_WHICH's
# literal texts, `{circulating}` CIRCULATING_ONLY or nothing.
CLOSE_OPEN_LOAN = (
    "UPDATE lending_loan SET status = 'RETURNED', date_returned = %s"
    " WHERE id = (SELECT id FROM lending_loan WHERE date_returned IS NULL AND {which}{circulating})"
    " AND date_returned IS NULL AND {which}{circulating}"
    f" RETURNING {columns(Loan)}, EXISTS (SELECT 1 FROM lending_hold WHERE book_id = %s AND status = 'WAITING')"
    " AS book_has_waiting_holds"
)
CLOSE_WHICH = {
    "patron_and_book": "user_email = %s AND book_id = %s",
    "copy_of_book": "item_barcode = %s AND book_id = %s",
    "loan": "id = %s",
}
CIRCULATING_ONLY = " AND status IN ('ACTIVE', 'OVERDUE')"

# The books' availability as the relay publishes it: copies, version, open loans and open holds.
BOOKS_AVAILABILITY = Variants(
    postgresql=(
        "SELECT s.book_id, s.copies, s.version,"
        " (SELECT COUNT(*) FROM lending_loan l WHERE l.book_id = s.book_id AND l.date_returned IS NULL),"
        " (SELECT COUNT(*) FROM lending_hold h WHERE h.book_id = s.book_id AND h.status IN ('WAITING', 'READY'))"
        " FROM lending_bookstock s WHERE s.book_id = ANY(%s)"
    ),
    sqlite=(
        "SELECT s.book_id, s.copies, s.version,"
        " (SELECT COUNT(*) FROM lending_loan l WHERE l.book_id = s.book_id AND l.date_returned IS NULL),"
        " (SELECT COUNT(*) FROM lending_hold h WHERE h.book_id = s.book_id AND h.status IN ('WAITING', 'READY'))"
        " FROM lending_bookstock s WHERE s.book_id IN (SELECT value FROM json_each(%s))"
    ),
)


def count_patron_loans(user_email: str, now: datetime) -> PatronLoans:
    at = db_datetime(now)
    row = fetch_one(COUNT_PATRON_LOANS, [at, at, user_email])
    assert row is not None
    open_loans, overdue, lost, oldest = row
    return PatronLoans(open=open_loans, overdue=overdue, lost=lost, oldest_overdue_due=read_datetime(oldest))


def count_book_and_patron_loans(book_id: int, user_email: str, now: datetime) -> tuple[int, PatronLoans]:
    """(the book's open loans, the patron's)."""
    row = fetch_one(COUNT_BOOK_AND_PATRON_LOANS, book_and_patron_loans_params(book_id, user_email, now))
    assert row is not None
    return book_and_patron_loans(row)


def book_and_patron_loans_params(book_id: int, user_email: str, now: datetime) -> list[Any]:
    """COUNT_BOOK_AND_PATRON_LOANS' parameters, in its order (`lending.db.state` reads the counts
    inside a statement of its own)."""
    at = db_datetime(now)
    return [book_id, user_email, book_id, user_email, user_email, at, user_email, user_email, at, book_id, user_email]


def book_and_patron_loans(counts: Sequence[Any]) -> tuple[int, PatronLoans]:
    """COUNT_BOOK_AND_PATRON_LOANS' six columns, read: (the book's open loans, the patron's)."""
    book, of_this_book, open_loans, overdue, lost, oldest = counts
    patron = PatronLoans(
        open=open_loans, overdue=overdue, of_this_book=of_this_book, lost=lost, oldest_overdue_due=read_datetime(oldest)
    )
    return book, patron


def count_open_loans_of_book(book_id: int) -> int:
    row = fetch_one(COUNT_OPEN_LOANS_OF_BOOK, [book_id])
    assert row is not None
    return row[0]


def count_patron_loans_of_type(user_email: str, item_type: str) -> int:
    row = fetch_one(COUNT_PATRON_LOANS_OF_TYPE, [user_email, item_type])
    assert row is not None
    return row[0]


def _lend_values(loan: Loan) -> list[Any]:
    return [
        loan.user_email,
        loan.book_id,
        loan.book_title,
        db_datetime(loan.date_borrowed),
        db_datetime(loan.date_due),
        loan.item_barcode,
        loan.item_type,
        loan.loan_policy,
        db_json(loan.policy_terms),
    ]


def loan_with_id_insert(loan: Loan) -> tuple[str, list[Any]]:
    """The INSERT of a lend's `loan`, whose id is already set, to run with the lend's other rows in one
    statement (`lending.db.run.together`). The instance counts as saved from here: the caller runs the
    statement in its transaction, which a failure rolls back."""
    assert loan.pk is not None, "the id the lend took"
    loan._state.adding = False  # noqa: SLF001 - as the ORM marks a saved instance
    return INSERT_LOAN_WITH_ID, [loan.pk, *_lend_values(loan)]


def renewal_update(loan: Loan) -> tuple[str, list[Any]]:
    """The UPDATE of a renewed `loan` (its due date, renewals and status as the renewal set them), to
    run with the renewal's other rows in one statement (`lending.db.run.together`)."""
    return RENEW_LOAN, [db_datetime(loan.date_due), loan.renewals, loan.status, loan.pk]


def borrower_of_copy(item_barcode: str) -> str | None:
    row = fetch_one(LOAN_OF_COPY, [item_barcode])
    return row[0] if row else None


def book_of_copy_on_loan(item_barcode: str) -> int | None:
    row = fetch_one(LOAN_OF_COPY, [item_barcode])
    return row[1] if row else None


def close_open_loan(which: str, keys: list[Any], *, book_id: int, now: datetime, circulating_only: bool):
    """(the loan returned at `now`, whether patrons wait for its book), or None when no open loan
    matches. `which`: a key of CLOSE_WHICH, `keys` its parameters."""
    sql = CLOSE_OPEN_LOAN.format(which=CLOSE_WHICH[which], circulating=CIRCULATING_ONLY if circulating_only else "")
    returned = instances(Loan, sql, [db_datetime(now), *keys, *keys, book_id])
    if not returned:
        return None
    closed = returned[0]
    return closed, bool(closed.__dict__.pop("book_has_waiting_holds"))


def books_availability(book_ids: list[int]) -> list[tuple[int, int, int, int, int]]:
    """(book_id, copies, version, open loans, open holds) of each book with a stock row."""
    return fetch_all(BOOKS_AVAILABILITY, [list(book_ids) if is_postgresql() else json.dumps(list(book_ids))])
