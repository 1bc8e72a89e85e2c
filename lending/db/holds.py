"""The holds' statements on the write path."""

from __future__ import annotations

from typing import Any

from lending.db.run import columns, db_datetime, instance, instances
from lending.models import Hold

# A book's open holds (WAITING and READY) in queue (id) order: what its lock's holder decides on.
OPEN_HOLDS_OF_BOOK = (
    f"SELECT {columns(Hold)} FROM lending_hold"  # noqa: S608 - the model's column names
    " WHERE book_id = %s AND status IN ('WAITING', 'READY') ORDER BY id"
)

# The READY hold a copy waits on the hold shelf for (none, or one: a partial unique index).
TRAPPED_HOLD = (
    f"SELECT {columns(Hold)} FROM lending_hold"  # noqa: S608 - the model's column names
    " WHERE status = 'READY' AND item_barcode = %s"
)

# Where a checked-in copy goes, under its book's lock: the READY hold it is trapped for (of any book: a
# barcode is one copy), else the book's first READY hold kept a copy by the count alone (no barcode).
HOLD_FOR_COPY = (
    f"SELECT {columns(Hold)} FROM lending_hold"  # noqa: S608 - the model's column names
    " WHERE status = 'READY' AND (item_barcode = %s OR (book_id = %s AND item_barcode IS NULL))"
    " ORDER BY item_barcode IS NULL, id LIMIT 1"
)

# A reservation's new hold, WAITING, with the id it took with the book's state (`lending.db.state`), so
# that its event can name it in the same statement (`lending.events.history.record_with`).
INSERT_WAITING_HOLD_WITH_ID = (
    "INSERT INTO lending_hold (id, user_email, book_id, book_title, status, date_reserved, date_ready,"
    " pickup_deadline, date_closed, loan_id, item_barcode) VALUES (%s, %s, %s, %s, 'WAITING', %s, NULL, NULL,"
    " NULL, NULL, NULL)"
)


def open_holds_of_book(book_id: int) -> list[Hold]:
    return instances(Hold, OPEN_HOLDS_OF_BOOK, [book_id])


def trapped_hold(item_barcode: str) -> Hold | None:
    """The READY hold this copy waits on the hold shelf for, if any (at most one: a constraint)."""
    return instance(Hold, TRAPPED_HOLD, [item_barcode])


def hold_for_copy(item_barcode: str, book_id: int) -> Hold | None:
    return instance(Hold, HOLD_FOR_COPY, [item_barcode, book_id])


def waiting_hold_with_id_insert(hold: Hold) -> tuple[str, list[Any]]:
    """The INSERT of a reservation's `hold` (WAITING, its id already set), to run with its event in one
    statement (`lending.db.run.together`). The instance counts as saved from here, as after `save()`: the
    caller runs the statement in its transaction, which a failure rolls back."""
    assert hold.pk is not None and hold.status == "WAITING", "a new hold, with the id it took"
    hold._state.adding = False  # noqa: SLF001 - as the ORM marks a saved instance
    return INSERT_WAITING_HOLD_WITH_ID, [
        hold.pk,
        hold.user_email,
        hold.book_id,
        hold.book_title,
        db_datetime(hold.date_reserved),
    ]
