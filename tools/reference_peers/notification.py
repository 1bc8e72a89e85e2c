"""Reference Notification service: stores what it receives, drops repeats of an Idempotency-Key.

`POST /send-notification` takes one notification, its key in the `Idempotency-Key` header: 202 when
queued, 200 for a repeat of a key (dropped), 400 without the required fields.

`POST /send-notifications` takes up to MAX_BATCH of them in one call,
`{"notifications": [{"idempotency_key": "k1", "notification": {...as the single call's body...}}, ...]}`,
and answers 200 `{"results": [{"idempotency_key": "k1", "status": 202}, ...]}`, one result per item in
the order sent, each status the one the single call would have given that item (a key seen before,
by either call, is a repeat). A body of another shape is 400 and a longer list 413, both for the
whole batch, which is then not applied at all. Faults set through `/_faults` apply to both calls.
"""

from __future__ import annotations

from typing import Any

from tools.reference_peers.server import KeyedDeduplicator, PeerServer, Request, Router

REQUIRED_FIELDS = ("user_email", "message_type")
MAX_BATCH = 100


class NotificationPeer(PeerServer):
    name = "notification"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.notifications: list[dict] = []
        self.dedupe = KeyedDeduplicator()
        # The size of every batch taken, in order: how many calls a relay made for how many messages.
        self.batches: list[int] = []
        # False stands for a Notification service without the batch endpoint (it answers 404).
        self.accepts_batches = True
        super().__init__(*args, **kwargs)

    def register_routes(self, router: Router) -> None:
        router.add("POST", "/send-notification", self.send)
        router.add("POST", "/send-notifications", self.send_batch)
        router.add("GET", "/notifications", self.list_notifications)
        router.add("GET", "/stats", self.stats)

    def send(self, request: Request) -> tuple[int, Any]:
        return self._take(request.body, request.headers.get("Idempotency-Key"))

    def send_batch(self, request: Request) -> tuple[int, Any]:
        if not self.accepts_batches:
            return 404, {"error": "not found"}
        items = request.body.get("notifications") if isinstance(request.body, dict) else None
        if not isinstance(items, list) or not all(_is_batch_item(item) for item in items):
            return 400, {"error": 'expected {"notifications": [{"idempotency_key": "…", "notification": {…}}]}'}
        if len(items) > MAX_BATCH:
            return 413, {"error": f"at most {MAX_BATCH} notifications per call"}
        with self.lock:
            self.batches.append(len(items))
        results = []
        for item in items:
            status, _ = self._take(item["notification"], item["idempotency_key"])
            results.append({"idempotency_key": item["idempotency_key"], "status": status})
        return 200, {"results": results}

    def _take(self, body: Any, key: str | None) -> tuple[int, dict]:
        """One notification, as both calls apply it: checked, then stored unless its key was seen."""
        if not isinstance(body, dict) or any(not body.get(field) for field in REQUIRED_FIELDS):
            return 400, {"error": f"fields {', '.join(REQUIRED_FIELDS)} are required"}
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
        with self.lock:
            received, batches = len(self.notifications), len(self.batches)
        return 200, {"received": received, "duplicates_dropped": self.dedupe.duplicates, "batches": batches}


def _is_batch_item(item: Any) -> bool:
    """An item names its key (a non-empty string: the results are matched by it) and its notification."""
    return (
        isinstance(item, dict)
        and isinstance(item.get("idempotency_key"), str)
        and bool(item["idempotency_key"])
        and "notification" in item
    )
