"""User Management: `GET /users/{email}`."""

from __future__ import annotations

from urllib.parse import quote

from django.conf import settings

from lending.clients.http import PeerClient, peer_client, unexpected_answer
from lending.errors import USER_INACTIVE, USER_NOT_FOUND

PEER = "User Management"


def client() -> PeerClient:
    return peer_client(PEER, settings.USER_MANAGEMENT_URL)


def ensure_active_user(email: str) -> None:
    """404 when the User service does not know the patron, 403 when the account is inactive."""
    response = client().get(f"/users/{quote(email, safe='@')}")
    if response.status == 404:
        raise USER_NOT_FOUND.error(user_email=email)
    if response.status != 200 or not isinstance(response.data, dict):
        raise unexpected_answer(PEER, response)
    # `active` is optional in the contract: an account is active unless it says otherwise. Anything
    # but a boolean there is outside the contract (a 503, never a guess either way).
    active = response.data.get("active", True)
    if not isinstance(active, bool):
        raise unexpected_answer(PEER, response)
    if active is False:
        raise USER_INACTIVE.error(user_email=email)
