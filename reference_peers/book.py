"""Reference Book Management: a demo catalogue in memory."""

from __future__ import annotations

import itertools
from typing import Any

from reference_peers.server import KeyedDeduplicator, PeerServer, Request, Router

DEMO_BOOKS = [
    ("Les Misérables", "Victor Hugo", 3),
    ("Madame Bovary", "Gustave Flaubert", 1),
    ("Le Petit Prince", "Antoine de Saint-Exupéry", 2),
    ("L'Étranger", "Albert Camus", 1),
    ("Germinal", "Émile Zola", 2),
]


class BookPeer(PeerServer):
    name = "book"

    def __init__(self, *args: Any, demo_books: int = 0, **kwargs: Any) -> None:
        self.books: dict[int, dict] = {}
        self.ids = itertools.count(1)
        self.dedupe = KeyedDeduplicator()
        self.updates_applied = 0
        super().__init__(*args, **kwargs)
        for title, author, quantity in DEMO_BOOKS:
            self.add_book(title, author, quantity)
        for n in range(demo_books):
            self.add_book(f"Demo book {n + 1}", "Demo Author", 1)

    def add_book(self, title: str, author: str, quantity: int) -> dict:
        with self.lock:
            book_id = next(self.ids)
            book = {"id": book_id, "title": title, "author": author, "quantity": quantity, "available": quantity > 0}
            self.books[book_id] = book
        return book

    def set_quantity(self, book_id: int, quantity: int) -> dict:
        """The library bought (or lost) copies: the next `getBooks` reports the new count."""
        with self.lock:
            book = self.books[book_id]
            book["quantity"] = quantity
        return book

    def register_routes(self, router: Router) -> None:
        router.add("GET", "/getBooks/{book_id}", self.get_book)
        router.add("PUT", "/updateBook/{book_id}", self.update_book)
        router.add("POST", "/books", self.create_book)
        router.add("GET", "/books", self.list_books)

    def _find(self, raw_id: str) -> dict | None:
        return self.books.get(int(raw_id)) if raw_id.isdigit() else None

    def get_book(self, request: Request) -> tuple[int, Any]:
        book = self._find(request.params["book_id"])
        return (200, book) if book else (404, {"error": "book not found"})

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
        body = request.body
        if not isinstance(body, dict) or not isinstance(body.get("title"), str):
            return 400, {"error": "title is required"}
        quantity = body.get("quantity", 1)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            return 400, {"error": "quantity must be a non-negative integer"}
        return 201, self.add_book(body["title"], str(body.get("author", "")), quantity)

    def list_books(self, request: Request) -> tuple[int, Any]:
        return 200, list(self.books.values())
