"""Reference User Management: demo patrons in memory, each with a library card and a category."""

from __future__ import annotations

import itertools
from typing import Any
from urllib.parse import unquote

from tools.reference_peers.server import PeerServer, Request, Router

# (email, active, card barcode, category)
DEMO_USERS = [
    ("alice@example.com", True, "2100000001", "adult"),
    ("bob@example.com", True, "2100000002", "student"),
    ("carol@example.com", True, "2100000003", "staff"),
    ("inactive@example.com", False, "2100000004", "adult"),
]
DEFAULT_CATEGORY = "adult"
MAX_BARCODE_LENGTH = 64


def demo_patron(n: int) -> tuple[str, bool, str, str]:
    """patronN@example.com: card 2100001000 + N, a student when N is even, else an adult."""
    return f"patron{n}@example.com", True, f"2100{1000 + n:06d}", "student" if n % 2 == 0 else "adult"


def _user(email: str, active: bool, barcode: str, category: str) -> dict:
    return {"email": email, "name": email.split("@")[0], "active": active, "barcode": barcode, "category": category}


def _demo_patron_number(barcode: str) -> int | None:
    """N when this is patronN's card (2100001000 + N), else None."""
    if len(barcode) < 10 or not barcode.startswith("2100") or not barcode.isascii() or not barcode.isdigit():
        return None
    n = int(barcode[4:]) - 1000
    return n if n > 0 and demo_patron(n)[2] == barcode else None


class CardTaken(ValueError):
    pass


class UserPeer(PeerServer):
    name = "user"

    def __init__(self, *args: Any, demo_users: int = 0, **kwargs: Any) -> None:
        self.users: dict[str, dict] = {}
        # Card barcode -> the holder's key in self.users; the numbered demo patrons' cards are not
        # listed (their number is in the card), so a million of them start as fast as before cards.
        self.cards: dict[str, str] = {}
        self.card_numbers = itertools.count(1)
        super().__init__(*args, **kwargs)
        for email, active, barcode, category in DEMO_USERS:
            self.add_user(email, active, barcode=barcode, category=category)
        for n in range(1, demo_users + 1):
            email, active, barcode, category = demo_patron(n)
            self.users[email] = _user(email, active, barcode, category)
        self.demo_user_count = demo_users

    def add_user(
        self, email: str, active: bool = True, *, barcode: str | None = None, category: str = DEFAULT_CATEGORY
    ) -> dict:
        """A patron with this library card (a generated one when None) and category. Adding an email
        again replaces the patron, and frees their former card. Raises CardTaken when another patron
        holds `barcode`."""
        key = email.lower()
        with self.lock:
            holder = self._holder(barcode) if barcode is not None else None
            if holder is not None and holder != key:
                raise CardTaken(barcode)
            former_card = (self.users.get(key) or {}).get("barcode")
            if isinstance(former_card, str) and self.cards.get(former_card) == key:
                del self.cards[former_card]
            barcode = barcode or self._new_card()
            user = self.users[key] = _user(email, active, barcode, category)
            self.cards[barcode] = key
        return user

    def _new_card(self) -> str:
        """Generated cards start with 29 (the demo cards with 21), skipping any already held."""
        while self._holder(barcode := f"29{next(self.card_numbers):08d}") is not None:
            pass
        return barcode

    def _holder(self, barcode: str) -> str | None:
        """The key of the patron holding this card, or None."""
        key = self.cards.get(barcode)
        if key is None and (n := _demo_patron_number(barcode)) and n <= self.demo_user_count:
            key = demo_patron(n)[0]
        user = self.users.get(key) if key is not None else None
        # A patron added again, or a test that changed a card in place: the card must still be theirs.
        return key if user is not None and user.get("barcode") == barcode else None

    def register_routes(self, router: Router) -> None:
        router.add("GET", "/users/{email}", self.get_user)
        router.add("GET", "/users", self.find_by_card)
        router.add("POST", "/users", self.create_user)

    def get_user(self, request: Request) -> tuple[int, Any]:
        user = self.users.get(unquote(request.params["email"]).lower())
        return (200, user) if user else (404, {"error": "user not found"})

    def find_by_card(self, request: Request) -> tuple[int, Any]:
        """`GET /users?barcode=B`: the card's holder, the same body as `GET /users/{email}`."""
        barcode = request.query.get("barcode")
        if not barcode:
            return 400, {"error": "the barcode query parameter is required"}
        with self.lock:
            key = self._holder(barcode)
        if key is None:
            return 404, {"error": "no user holds that card"}
        return 200, self.users[key]

    def create_user(self, request: Request) -> tuple[int, Any]:
        """`{"email", "active"?, "barcode"?, "category"?}`: a card is generated when none is given."""
        body = request.body
        if not isinstance(body, dict) or not isinstance(body.get("email"), str) or "@" not in body["email"]:
            return 400, {"error": "email is required"}
        barcode = body.get("barcode")
        if barcode is not None and (not isinstance(barcode, str) or not 0 < len(barcode) <= MAX_BARCODE_LENGTH):
            return 400, {"error": f"barcode is a string of 1 to {MAX_BARCODE_LENGTH} characters"}
        category = body.get("category", DEFAULT_CATEGORY)
        if not isinstance(category, str) or not category:
            return 400, {"error": "category is a non-empty string"}
        try:
            user = self.add_user(body["email"], bool(body.get("active", True)), barcode=barcode, category=category)
        except CardTaken:
            return 409, {"error": "another user holds that card"}
        return 201, user
