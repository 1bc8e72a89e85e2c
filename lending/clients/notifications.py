"""Notification service: `POST /send-notification`."""
from __future__ import annotations

from functools import cache

from django.conf import settings

from lending.clients.http import PeerClient

PEER = "Notification"


@cache
def client() -> PeerClient:
    return PeerClient(PEER, settings.NOTIFICATION_SERVICE_URL)


def send_notification(payload: dict, *, idempotency_key: str) -> int:
    """Returns the peer's HTTP status; 4xx is returned, 5xx and transport errors raise."""
    return client().send("POST", "/send-notification", payload, idempotency_key=idempotency_key).status
