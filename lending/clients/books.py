"""Book Management: `GET /getBooks/{id}`, `GET /items/{barcode}` and `PUT /updateBook/{id}`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from lending.clients.http import (
    PeerClient,
    PeerResponse,
    is_sendable_key,
    path_segment,
    peer_client,
    shown_key,
    unexpected_answer,
)
from lending.errors import BOOK_NOT_FOUND, ITEM_NOT_FOUND

PEER = "Book Management"


@dataclass(frozen=True)
class BookInfo:
    id: int
    title: str
    copies: int
    # The title's item type when all its copies the Book service lists share one (a title-level lend
    # then follows that type's circulation rules); None when they differ or none is listed.
    item_type: str | None = None


@dataclass(frozen=True)
class ItemInfo:
    """One copy, as the Book service knows it: its barcode, its title, its type (book, dvd, ...)."""

    barcode: str
    book_id: int
    type: str
    loanable: bool


def client() -> PeerClient:
    return peer_client(PEER, settings.BOOK_MANAGEMENT_URL)


def get_book(book_id: int) -> BookInfo:
    response = client().get(f"/getBooks/{book_id}")
    if response.status == 404:
        raise BOOK_NOT_FOUND.error(book_id=book_id)
    data = response.data
    if response.status != 200 or not isinstance(data, dict):
        raise unexpected_answer(PEER, response)
    copies = _copies(data)
    title = data.get("title")
    if copies is None or not isinstance(title, str | None):
        raise unexpected_answer(PEER, response)
    # A title longer than we store is data, not an error: kept as far as it fits.
    return BookInfo(id=book_id, title=(title or "")[:MAX_TITLE_LENGTH], copies=copies, item_type=_title_type(data))


def get_item(barcode: str) -> ItemInfo:
    """The copy with this barcode; 404 item_not_found when the Book service knows none. A barcode is
    opaque: quoted whole into the path, so `/`, `?`, spaces or non-ASCII cannot change the call."""
    if not is_sendable_key(barcode, MAX_BARCODE_LENGTH):  # no copy we could lend has it
        raise ITEM_NOT_FOUND.error(item_barcode=shown_key(barcode, MAX_BARCODE_LENGTH))
    response = client().get(f"/items/{path_segment(barcode)}")
    if response.status == 404:
        raise ITEM_NOT_FOUND.error(item_barcode=barcode)
    data = response.data
    if response.status != 200 or not isinstance(data, dict):
        raise unexpected_answer(PEER, response)
    return _item(barcode, data, response)


def _item(asked: str, data: dict, response: PeerResponse) -> ItemInfo:
    # The peer's own spelling of the barcode wins (a scanner may send lower case where the catalogue
    # has upper): the loans then name each copy one way. Another barcode altogether is another copy
    # than the one asked for: outside the contract.
    barcode = _or_default(data, "barcode", asked)
    book_id = data.get("book_id")
    item_type = _or_default(data, "type", DEFAULT_ITEM_TYPE)
    loanable = _or_default(data, "loanable", True)
    if (
        not isinstance(barcode, str)
        or not is_sendable_key(barcode, MAX_BARCODE_LENGTH)
        or barcode.casefold() != asked.casefold()
        or isinstance(book_id, bool)
        or not isinstance(book_id, int)
        or not 0 < book_id <= MAX_BOOK_ID
        or not isinstance(item_type, str)
        or not 0 < len(item_type) <= MAX_ITEM_TYPE_LENGTH
        or not isinstance(loanable, bool)
    ):
        raise unexpected_answer(PEER, response)
    return ItemInfo(barcode=barcode, book_id=book_id, type=item_type, loanable=loanable)


def _title_type(data: dict) -> str | None:
    """The one item type of the title's `items`, if they have one. A list the contract does not
    describe is no type, not an error: the title's copies are counted from `quantity` anyway."""
    items = data.get("items")
    if not isinstance(items, list) or not items:
        return None
    types = {_or_default(item, "type", DEFAULT_ITEM_TYPE) if isinstance(item, dict) else None for item in items}
    if len(types) != 1:
        return None
    [item_type] = types
    return item_type if isinstance(item_type, str) and 0 < len(item_type) <= MAX_ITEM_TYPE_LENGTH else None


def _or_default(data: dict, field: str, default: Any) -> Any:
    """The field's value, or `default` when the peer leaves it out (or sends null); a value of the
    wrong type is returned as is, for the caller to refuse."""
    value = data.get(field)
    return default if value is None else value


# Barcodes are stored in 64 characters (Loan.item_barcode); a book id is a PostgreSQL integer.
MAX_BARCODE_LENGTH = 64
MAX_BOOK_ID = 2**31 - 1
# An item's type is a word of the rules (book, dvd, magazine ...); what the peer omits is a book.
DEFAULT_ITEM_TYPE = "book"
MAX_ITEM_TYPE_LENGTH = 64

# What the database stores (Book.copies is a PositiveIntegerField, book_title 500 characters).
MAX_COPIES = 2**31 - 1
MAX_TITLE_LENGTH = 500


def _copies(data: dict) -> int | None:
    """`quantity` or `copies` when the Book service sends one, else a single copy; None when the
    value is not a count we can hold (a string, a fraction, negative, 2**70...)."""
    for field in ("quantity", "copies"):
        if field in data and data[field] is not None:
            value = data[field]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COPIES:
                return None
            return value
    return 1


def publish_availability(book_id: int, available: bool, *, idempotency_key: str) -> int:
    """Returns the peer's HTTP status; 4xx is returned, 5xx and transport errors raise."""
    return (
        client().send("PUT", f"/updateBook/{book_id}", {"available": available}, idempotency_key=idempotency_key).status
    )
