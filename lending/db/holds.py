"""The holds' statements on the write path."""

from __future__ import annotations

from lending.db.run import columns, instances
from lending.models import Hold

# A book's open holds (WAITING and READY) in queue (id) order: what its lock's holder decides on.
OPEN_HOLDS_OF_BOOK = (
    f"SELECT {columns(Hold)} FROM lending_hold"  # noqa: S608 - the model's column names
    " WHERE book_id = %s AND status IN ('WAITING', 'READY') ORDER BY id"
)


def open_holds_of_book(book_id: int) -> list[Hold]:
    return instances(Hold, OPEN_HOLDS_OF_BOOK, [book_id])
