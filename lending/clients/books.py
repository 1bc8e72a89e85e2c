"""Book Management: `GET /getBooks/{id}` and `PUT /updateBook/{id}`."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from lending.clients.http import PeerClient, peer_client, unexpected_answer
from lending.errors import BOOK_NOT_FOUND

PEER = "Book Management"


@dataclass(frozen=True)
class BookInfo:
    id: int
    title: str
    copies: int


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
    return BookInfo(id=book_id, title=(title or "")[:MAX_TITLE_LENGTH], copies=copies)


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
