"""Notification service: `POST /send-notification`, and `POST /send-notifications` for a batch.

The batch call is optional in the peer's contract: a peer without it answers 404, and this process
then sends one notification per call for NO_BATCH_MEMORY_SECONDS before it asks again (a peer
upgraded meanwhile is noticed without a restart).
"""

from __future__ import annotations

import hashlib
import time

from django.conf import settings

from lending.clients.http import PeerClient, PeerResponse, peer_client, unexpected_answer

PEER = "Notification"
BATCH_PATH = "/send-notifications"
MAX_BATCH = 100  # the most a batch call carries (the reference peer's cap)
NO_BATCH_MEMORY_SECONDS = 300.0

# Per peer URL: until when (time.monotonic()) this process sends one notification per call.
_no_batch_until: dict[str, float] = {}


def client() -> PeerClient:
    return peer_client(PEER, settings.NOTIFICATION_SERVICE_URL)


def send_notification(payload: dict, *, idempotency_key: str) -> int:
    """Returns the peer's HTTP status; 4xx is returned, 5xx and transport errors raise."""
    return client().send("POST", "/send-notification", payload, idempotency_key=idempotency_key).status


def batches_accepted() -> bool:
    """False while the peer is known to have no batch endpoint (a 404 less than a while ago)."""
    return time.monotonic() >= _no_batch_until.get(settings.NOTIFICATION_SERVICE_URL, 0.0)


def send_notifications(batch: list[tuple[str, dict]]) -> list[int] | None:
    """Sends (idempotency key, notification) pairs, at most MAX_BATCH, in one call. Returns each one's
    status in the order given, as the single call would answer it (2xx taken, 4xx refused, 5xx
    failed), or None when the peer takes no batch of these: a 404 (remembered for a while) or
    another refusal of the whole batch (a peer with a smaller cap, say). Then send them one by one.
    5xx, transport errors and an answer outside the contract raise PeerUnavailable: the peer may
    have taken some, and a repeat with the same keys is dropped by it."""
    if len(batch) > MAX_BATCH:
        raise ValueError(f"at most {MAX_BATCH} notifications per batch call, not {len(batch)}")
    body = {"notifications": [{"idempotency_key": key, "notification": payload} for key, payload in batch]}
    response = client().send("POST", BATCH_PATH, body, idempotency_key=_batch_key([key for key, _ in batch]))
    if response.status == 404:
        _no_batch_until[settings.NOTIFICATION_SERVICE_URL] = time.monotonic() + NO_BATCH_MEMORY_SECONDS
        return None
    if response.status >= 400:
        return None
    return _statuses(response, [key for key, _ in batch])


def _batch_key(keys: list[str]) -> str:
    """The batch's own key, for a peer that drops repeated calls by it: the same for the same
    notifications only (each key names one notification), so a batch that shares some is not dropped."""
    return "batch-" + hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()


def _statuses(response: PeerResponse, keys: list[str]) -> list[int]:
    """The status of every key sent, matched by key; a result missing or malformed is a broken answer."""
    results = response.data.get("results") if isinstance(response.data, dict) else None
    by_key: dict[str, int] = {}
    for result in results if isinstance(results, list) else []:
        key = result.get("idempotency_key") if isinstance(result, dict) else None
        status = result.get("status") if isinstance(result, dict) else None
        if isinstance(key, str) and type(status) is int and 100 <= status <= 599:
            by_key[key] = status
    if response.status != 200 or not set(keys) <= by_key.keys():
        raise unexpected_answer(PEER, response)
    return [by_key[key] for key in keys]


def forget_missing_batch_endpoint() -> None:
    """Asks every peer for batches again at the next call (after a peer was upgraded, and in tests)."""
    _no_batch_until.clear()
