"""Reference Notification service: stores what it receives, drops repeats of an Idempotency-Key."""

from __future__ import annotations

from typing import Any

from reference_peers.server import KeyedDeduplicator, PeerServer, Request, Router

REQUIRED_FIELDS = ("user_email", "message_type")


class NotificationPeer(PeerServer):
    name = "notification"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.notifications: list[dict] = []
        self.dedupe = KeyedDeduplicator()
        super().__init__(*args, **kwargs)

    def register_routes(self, router: Router) -> None:
        router.add("POST", "/send-notification", self.send)
        router.add("GET", "/notifications", self.list_notifications)
        router.add("GET", "/stats", self.stats)

    def send(self, request: Request) -> tuple[int, Any]:
        body = request.body
        if not isinstance(body, dict) or any(not body.get(field) for field in REQUIRED_FIELDS):
            return 400, {"error": f"fields {', '.join(REQUIRED_FIELDS)} are required"}
        key = request.headers.get("Idempotency-Key")
        if not self.dedupe.first_time(key):
            return 200, {"status": "duplicate ignored"}
        with self.lock:
            self.notifications.append({**body, "idempotency_key": key})
        return 202, {"status": "queued"}

    def list_notifications(self, request: Request) -> tuple[int, Any]:
        email = request.query.get("user_email")
        with self.lock:
            found = [n for n in self.notifications if email is None or n.get("user_email") == email]
        return 200, found

    def stats(self, request: Request) -> tuple[int, Any]:
        return 200, {"received": len(self.notifications), "duplicates_dropped": self.dedupe.duplicates}
