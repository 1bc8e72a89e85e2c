"""Reference Book Management: a demo catalogue in memory, each copy an item with a barcode."""

from __future__ import annotations

import itertools
from typing import Any
from urllib.parse import unquote

from reference_peers.server import KeyedDeduplicator, PeerServer, Request, Router

DEMO_BOOKS = [
    ("Les Misérables", "Victor Hugo", 3),
    ("Madame Bovary", "Gustave Flaubert", 1),
    ("Le Petit Prince", "Antoine de Saint-Exupéry", 2),
    ("L'Étranger", "Albert Camus", 1),
    ("Germinal", "Émile Zola", 2),
]
# Every copy of these demo books is a DVD (Germinal, and the last five demo books 101-105).
DEMO_DVD_BOOK_IDS = frozenset({5, 101, 102, 103, 104, 105})

MAX_BARCODE_LENGTH = 64


def generated_barcode(book_id: int, copy: int) -> str:
    """The demo scheme: "39", the book id on six digits, the copy number (from 01) on two."""
    return f"39{book_id:06d}{copy:02d}"


class BarcodeTaken(ValueError):
    pass


class BookPeer(PeerServer):
    name = "book"

    def __init__(self, *args: Any, demo_books: int = 0, **kwargs: Any) -> None:
        self.books: dict[int, dict] = {}
        # Every copy by barcode: {"barcode", "book_id", "type", "loanable"} (`GET /items/{barcode}`).
        self.items: dict[str, dict] = {}
        self.copies: dict[int, list[str]] = {}  # each book's barcodes, in copy order
        self.ids = itertools.count(1)
        self.dedupe = KeyedDeduplicator()
        self.updates_applied = 0
        super().__init__(*args, **kwargs)
        demo = [*DEMO_BOOKS, *((f"Demo book {n + 1}", "Demo Author", 1) for n in range(demo_books))]
        for title, author, quantity in demo:
            book_id = len(self.books) + 1
            self.add_book(title, author, quantity, item_type="dvd" if book_id in DEMO_DVD_BOOK_IDS else "book")

    def add_book(
        self,
        title: str,
        author: str,
        quantity: int | None = None,
        *,
        items: list[dict] | None = None,
        item_type: str = "book",
    ) -> dict:
        """A book with `items` (each `{"barcode", "type"?, "loanable"?}`), or `quantity` copies with
        generated barcodes of `item_type`. Raises BarcodeTaken when a given barcode is already a copy's."""
        with self.lock:
            for item in items or []:
                if item["barcode"] in self.items:
                    raise BarcodeTaken(item["barcode"])
            book_id = next(self.ids)
            if items is None:
                barcodes = [self._free_barcode(book_id, copy) for copy in range(quantity or 0)]
                items = [{"barcode": barcode, "type": item_type} for barcode in barcodes]
            copies = len(items) if quantity is None else quantity
            book = {"id": book_id, "title": title, "author": author, "quantity": copies, "available": copies > 0}
            self.books[book_id] = book
            self.copies[book_id] = []
            for item in items:
                self._store_item(book_id, item)
            self._list_items(book)
        return book

    def add_item(
        self, book_id: int, barcode: str | None = None, item_type: str = "book", loanable: bool = True
    ) -> dict:
        """One more copy of a book (the library bought one): its quantity grows by one."""
        with self.lock:
            book = self.books[book_id]
            if barcode is not None and barcode in self.items:
                raise BarcodeTaken(barcode)
            barcode = barcode or self._free_barcode(book_id, len(self.copies[book_id]))
            item = self._store_item(book_id, {"barcode": barcode, "type": item_type, "loanable": loanable})
            book["quantity"] += 1
            self._list_items(book)
        return item

    def set_loanable(self, barcode: str, loanable: bool) -> dict:
        """A copy kept for reference (or back in circulation): `GET /items/{barcode}` says so."""
        with self.lock:
            item = self.items[barcode]
            item["loanable"] = loanable
        return item

    def set_quantity(self, book_id: int, quantity: int) -> dict:
        """The library bought (or lost) copies: the next `getBooks` reports the new count, and its
        items follow (new copies get barcodes, the last ones go)."""
        with self.lock:
            book = self.books[book_id]
            book["quantity"] = quantity
            barcodes = self.copies[book_id]
            for barcode in barcodes[quantity:]:
                del self.items[barcode]
            del barcodes[quantity:]
            for copy in range(len(barcodes), quantity):
                self._store_item(book_id, {"barcode": self._free_barcode(book_id, copy), "type": "book"})
            self._list_items(book)
        return book

    # Under self.lock.
    def _store_item(self, book_id: int, item: dict) -> dict:
        stored = {
            "barcode": item["barcode"],
            "book_id": book_id,
            "type": item.get("type", "book"),
            "loanable": item.get("loanable", True),
        }
        self.items[stored["barcode"]] = stored
        self.copies[book_id].append(stored["barcode"])
        return stored

    def _list_items(self, book: dict) -> None:
        """`getBooks` names each copy by barcode and type."""
        items = (self.items[barcode] for barcode in self.copies[book["id"]])
        book["items"] = [{"barcode": item["barcode"], "type": item["type"]} for item in items]

    def _free_barcode(self, book_id: int, index: int) -> str:
        """The demo scheme's barcode of copy `index + 1`; should a copy already have it (an explicit
        barcode, or a book id past six digits), the next free one after it."""
        barcode = generated_barcode(book_id, index + 1)
        suffix = itertools.count(1)
        while barcode in self.items:
            barcode = f"{generated_barcode(book_id, index + 1)}-{next(suffix)}"
        return barcode

    def register_routes(self, router: Router) -> None:
        router.add("GET", "/getBooks/{book_id}", self.get_book)
        router.add("PUT", "/updateBook/{book_id}", self.update_book)
        router.add("POST", "/books", self.create_book)
        router.add("GET", "/books", self.list_books)
        router.add("GET", "/items/{barcode}", self.get_item)

    def _find(self, raw_id: str) -> dict | None:
        return self.books.get(int(raw_id)) if raw_id.isdigit() else None

    def get_book(self, request: Request) -> tuple[int, Any]:
        book = self._find(request.params["book_id"])
        return (200, book) if book else (404, {"error": "book not found"})

    def get_item(self, request: Request) -> tuple[int, Any]:
        item = self.items.get(unquote(request.params["barcode"]))
        return (200, item) if item else (404, {"error": "item not found"})

    def update_book(self, request: Request) -> tuple[int, Any]:
        book = self._find(request.params["book_id"])
        if not book:
            return 404, {"error": "book not found"}
        body = request.body
        if not isinstance(body, dict) or not isinstance(body.get("available"), bool):
            return 400, {"error": 'body must be {"available": bool}'}
        if self.dedupe.first_time(request.headers.get("Idempotency-Key")):
            with self.lock:
                book["available"] = body["available"]
                self.updates_applied += 1
        return 200, book

    def create_book(self, request: Request) -> tuple[int, Any]:
        """`{"title", "author"?, "quantity"?, "items"?: [{"barcode", "type"?, "loanable"?}]}`: with items,
        quantity (when given) must be their number; without, `quantity` copies get generated barcodes."""
        body = request.body
        if not isinstance(body, dict) or not isinstance(body.get("title"), str):
            return 400, {"error": "title is required"}
        quantity = body.get("quantity")
        if quantity is not None and (isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0):
            return 400, {"error": "quantity must be a non-negative integer"}
        items = body.get("items")
        if items is None:
            quantity = 1 if quantity is None else quantity
        else:
            refusal = _items_refusal(items)
            if refusal is None and quantity is not None and quantity != len(items):
                refusal = "quantity must be the number of items"
            if refusal:
                return 400, {"error": refusal}
        try:
            return 201, self.add_book(body["title"], str(body.get("author", "")), quantity, items=items)
        except BarcodeTaken as taken:
            return 409, {"error": f"barcode {taken} is already a copy's"}

    def list_books(self, request: Request) -> tuple[int, Any]:
        return 200, list(self.books.values())


def _items_refusal(items: Any) -> str | None:
    """Why `items` of `POST /books` cannot be stored, or None."""
    if not isinstance(items, list):
        return "items must be a list"
    barcodes = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("barcode"), str):
            return 'each item must be {"barcode": str, "type"?: str, "loanable"?: bool}'
        if not 0 < len(item["barcode"]) <= MAX_BARCODE_LENGTH:
            return f"a barcode has 1 to {MAX_BARCODE_LENGTH} characters"
        if not isinstance(item.get("type", "book"), str) or not isinstance(item.get("loanable", True), bool):
            return "an item's type is a string and loanable a boolean"
        barcodes.append(item["barcode"])
    if len(set(barcodes)) != len(barcodes):
        return "a barcode appears twice"
    return None
