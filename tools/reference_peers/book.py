"""Reference Book Management: a demo catalogue in memory, each copy an item with a barcode."""

from __future__ import annotations

import itertools
from typing import Any
from urllib.parse import unquote

from tools.reference_peers.server import KeyedDeduplicator, PeerServer, Request, Router

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


def _demo_book_id(barcode: str) -> int | None:
    """The book whose copy the demo scheme gives this barcode (copies are numbered below 100)."""
    if len(barcode) < 10 or not barcode.startswith("39") or not barcode.isascii() or not barcode.isdigit():
        return None
    book_id, copy = int(barcode[2:-2]), int(barcode[-2:])
    return book_id if copy and generated_barcode(book_id, copy) == barcode else None


class BarcodeTaken(ValueError):
    pass


class BookPeer(PeerServer):
    name = "book"

    def __init__(self, *args: Any, demo_books: int = 0, **kwargs: Any) -> None:
        self.books: dict[int, dict] = {}
        # Every copy by barcode: {"barcode", "book_id", "type", "loanable"} (`GET /items/{barcode}`);
        # the same dicts, in copy order, are their book's "items". Read them through item() and
        # items_of(): a demo book's copies are made when first asked for, so the million demo books
        # of `make bench` start as fast, and take as little memory, as books without copies.
        self.items: dict[str, dict] = {}
        self.ids = itertools.count(1)
        self.dedupe = KeyedDeduplicator()
        self.updates_applied = 0
        super().__init__(*args, **kwargs)
        demo = [*DEMO_BOOKS, *((f"Demo book {n + 1}", "Demo Author", 1) for n in range(demo_books))]
        for title, author, quantity in demo:
            book_id = next(self.ids)
            self.books[book_id] = {
                "id": book_id,
                "title": title,
                "author": author,
                "quantity": quantity,
                "available": quantity > 0,
            }
        self.demo_book_count = len(demo)

    # --- what tests and the routes read ---------------------------------------------------------------
    def item(self, barcode: str) -> dict | None:
        with self.lock:
            return self._item(barcode)

    def items_of(self, book_id: int) -> list[dict]:
        with self.lock:
            return self._items_of(self.books[book_id])

    def _make_demo_copies(self, book: dict) -> None:
        """Before a demo book is first answered (the lock is taken only then). A book of a test's
        own without "items" (popped: a Book service from before barcodes) is answered so."""
        if "items" not in book and book["id"] <= self.demo_book_count:
            self.items_of(book["id"])

    # --- what tests change ----------------------------------------------------------------------------
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
                if self._item(item["barcode"]) is not None:
                    raise BarcodeTaken(item["barcode"])
            book_id = next(self.ids)
            if items is None:
                items = [
                    {"barcode": self._free_barcode(book_id, copy), "type": item_type} for copy in range(quantity or 0)
                ]
            copies = len(items) if quantity is None else quantity
            book = {"id": book_id, "title": title, "author": author, "quantity": copies, "available": copies > 0}
            book["items"] = [self._store_item(book_id, item) for item in items]
            self.books[book_id] = book
        return book

    def add_item(
        self, book_id: int, barcode: str | None = None, item_type: str = "book", loanable: bool = True
    ) -> dict:
        """One more copy of a book (the library bought one): its quantity grows by one."""
        with self.lock:
            book = self.books[book_id]
            if barcode is not None and self._item(barcode) is not None:
                raise BarcodeTaken(barcode)
            items = self._items_of(book)
            barcode = barcode or self._free_barcode(book_id, len(items))
            item = self._store_item(book_id, {"barcode": barcode, "type": item_type, "loanable": loanable})
            items.append(item)
            book["quantity"] += 1
        return item

    def set_loanable(self, barcode: str, loanable: bool) -> dict:
        """A copy kept for reference (or back in circulation): `GET /items/{barcode}` says so."""
        with self.lock:
            item = self._item(barcode)
            if item is None:
                raise KeyError(barcode)
            item["loanable"] = loanable
        return item

    def set_quantity(self, book_id: int, quantity: int) -> dict:
        """The library bought (or lost) copies: the next `getBooks` reports the new count, and its
        items follow (new copies get barcodes, the last ones go)."""
        with self.lock:
            book = self.books[book_id]
            items = self._items_of(book)
            book["quantity"] = quantity
            for item in items[quantity:]:
                self.items.pop(item["barcode"], None)
            del items[quantity:]
            for copy in range(len(items), quantity):
                items.append(self._store_item(book_id, {"barcode": self._free_barcode(book_id, copy), "type": "book"}))
        return book

    # --- under self.lock ------------------------------------------------------------------------------
    def _item(self, barcode: str) -> dict | None:
        item = self.items.get(barcode)
        if item is None and (book_id := _demo_book_id(barcode)) and book_id <= self.demo_book_count:
            self._items_of(self.books[book_id])  # a demo copy not made yet: made now
            item = self.items.get(barcode)
        return item

    def _items_of(self, book: dict) -> list[dict]:
        """The book's copies; a demo book's are made on first use (a test may have dropped them: a
        book of its own then has none)."""
        if "items" not in book and book["id"] <= self.demo_book_count:
            item_type = "dvd" if book["id"] in DEMO_DVD_BOOK_IDS else "book"
            copies = range(book["quantity"])
            book["items"] = [
                self._store_item(book["id"], {"barcode": generated_barcode(book["id"], copy + 1), "type": item_type})
                for copy in copies
            ]
        return book.setdefault("items", [])

    def _store_item(self, book_id: int, item: dict) -> dict:
        stored = {
            "barcode": item["barcode"],
            "book_id": book_id,
            "type": item.get("type", "book"),
            "loanable": item.get("loanable", True),
        }
        self.items[stored["barcode"]] = stored
        return stored

    def _free_barcode(self, book_id: int, index: int) -> str:
        """The demo scheme's barcode of copy `index + 1`; should a copy already have it (an explicit
        barcode, or a book id past six digits), the next free one after it."""
        barcode = generated = generated_barcode(book_id, index + 1)
        suffix = 0
        while self._item(barcode) is not None:
            suffix += 1
            barcode = f"{generated}-{suffix}"
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
        if not book:
            return 404, {"error": "book not found"}
        self._make_demo_copies(book)
        return 200, book

    def get_item(self, request: Request) -> tuple[int, Any]:
        item = self.item(unquote(request.params["barcode"]))
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
        self._make_demo_copies(book)
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
        for book in list(self.books.values()):
            self._make_demo_copies(book)
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
