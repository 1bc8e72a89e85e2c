"""Fees service: `POST /fees` (an assessed fine or fee, idempotent by its `id`) and
`GET /patrons/{patron_ref}/balance` (what the patron owes).

The Fees service keeps the money; lending only assesses and asks. Asking is fail-open: when the
service cannot answer (down, slow, breaker open, an answer outside the contract) `balance` returns
None and the caller treats the balance as unknown, so a desk never stops because Fees is down.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.conf import settings

from lending.clients.http import PeerClient, PeerResponse, path_segment, peer_client
from lending.errors import PeerUnavailable

logger = logging.getLogger(__name__)

PEER = "Fees"


@dataclass(frozen=True)
class Balance:
    """What a patron owes at the Fees service (fees less refunds)."""

    amount: Decimal
    currency: str


def client() -> PeerClient:
    return peer_client(PEER, settings.FEES_SERVICE_URL)


def post_fee(payload: dict) -> int:
    """Records one fee; returns the peer's HTTP status (201 new, 200 a repeat of the same fee, 409
    the same id with another body, 400 a body it refuses). 5xx and transport errors raise
    PeerUnavailable. The fee's `id` is its idempotency key too."""
    return client().send("POST", "/fees", payload, idempotency_key=str(payload["id"])).status


def balance(patron_ref: str) -> Balance | None:
    """The patron's balance, or None when the Fees service cannot say (fail open). A patron the
    service does not know (404) owes nothing."""
    try:
        response = client().get(f"/patrons/{path_segment(patron_ref)}/balance")
    except PeerUnavailable as failure:
        logger.warning("Fees service unavailable, balance unknown: %s", failure.message)
        return None
    if response.status == 404:
        return Balance(amount=Decimal("0"), currency=settings.FINES_CURRENCY)
    return _balance(response)


def _balance(response: PeerResponse) -> Balance | None:
    found = _parsed(response.data) if response.status == 200 else None
    if found is None:
        shown = repr(response.data)[:300]
        logger.warning("Fees answered a balance outside its contract: HTTP %s %s", response.status, shown)
    return found


def _parsed(data: object) -> Balance | None:
    """The contract's `{"balance": "12.50", "currency": "EUR"}`, or None for anything else."""
    if not isinstance(data, dict):
        return None
    amount, currency = data.get("balance"), data.get("currency")
    if not isinstance(amount, str) or not isinstance(currency, str) or not currency:
        return None
    try:
        parsed = Decimal(amount)
    except InvalidOperation:
        return None
    return Balance(amount=parsed, currency=currency) if parsed.is_finite() else None
