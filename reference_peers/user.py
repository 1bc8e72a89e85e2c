"""Reference User Management: demo patrons in memory."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from reference_peers.server import PeerServer, Request, Router

DEMO_USERS = [
    ("alice@example.com", True),
    ("bob@example.com", True),
    ("carol@example.com", True),
    ("inactive@example.com", False),
]


class UserPeer(PeerServer):
    name = "user"

    def __init__(self, *args: Any, demo_users: int = 0, **kwargs: Any) -> None:
        self.users: dict[str, dict] = {}
        super().__init__(*args, **kwargs)
        for email, active in DEMO_USERS:
            self.add_user(email, active)
        for n in range(demo_users):
            self.add_user(f"patron{n + 1}@example.com", True)

    def add_user(self, email: str, active: bool = True) -> dict:
        user = {"email": email, "name": email.split("@")[0], "active": active}
        with self.lock:
            self.users[email.lower()] = user
        return user

    def register_routes(self, router: Router) -> None:
        router.add("GET", "/users/{email}", self.get_user)
        router.add("POST", "/users", self.create_user)

    def get_user(self, request: Request) -> tuple[int, Any]:
        user = self.users.get(unquote(request.params["email"]).lower())
        return (200, user) if user else (404, {"error": "user not found"})

    def create_user(self, request: Request) -> tuple[int, Any]:
        body = request.body
        if not isinstance(body, dict) or not isinstance(body.get("email"), str) or "@" not in body["email"]:
            return 400, {"error": "email is required"}
        return 201, self.add_user(body["email"], bool(body.get("active", True)))
