"""Notification service: `POST /send-notification`."""

from __future__ import annotations

from django.conf import settings

from lending.clients.http import PeerClient, peer_client

PEER = "Notification"


def client() -> PeerClient:
    return peer_client(PEER, settings.NOTIFICATION_SERVICE_URL)


def send_notification(payload: dict, *, idempotency_key: str) -> int:
    """Returns the peer's HTTP status; 4xx is returned, 5xx and transport errors raise."""
    return client().send("POST", "/send-notification", payload, idempotency_key=idempotency_key).status
