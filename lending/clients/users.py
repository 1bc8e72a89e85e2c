"""User Management: `GET /users/{email}` and `GET /users?barcode=B` (a library card)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from lending.clients.http import PeerClient, PeerResponse, is_sendable_key, peer_client, shown_key, unexpected_answer
from lending.errors import USER_INACTIVE, USER_NOT_FOUND, PeerUnavailable

PEER = "User Management"

# A card barcode is opaque, at most as long as an item's (lending never stores it).
MAX_CARD_BARCODE_LENGTH = 64
# What the API accepts of an email (lending/api/serializers.py), and so what a loan can name.
MAX_EMAIL_LENGTH = 254
MAX_CATEGORY_LENGTH = 64
MAX_NAME_LENGTH = 200


@dataclass(frozen=True)
class Patron:
    """An active patron: the email the loans name, and the category the rules use (adult, student,
    staff ...; None when the User service has none for them)."""

    email: str
    category: str | None
    # What a kiosk greets them by (the User service's optional `name`); never needed to lend.
    name: str | None = None


def client() -> PeerClient:
    return peer_client(PEER, settings.USER_MANAGEMENT_URL)


def ensure_active_user(email: str) -> None:
    """404 when the User service does not know the patron, 403 when the account is inactive."""
    _active_user(email)


def active_patron(email: str) -> Patron:
    """As ensure_active_user, with the patron's category."""
    user, response = _active_user(email)
    return Patron(email=email, category=_category(user, response))


def _active_user(email: str) -> tuple[dict, PeerResponse]:
    response = client().get(f"/users/{quote(email, safe='@')}")
    if response.status == 404:
        raise USER_NOT_FOUND.error(user_email=email)
    user = _user(response)
    _ensure_active(user, email, response)
    return user, response


def active_patron_by_card(barcode: str) -> Patron:
    """The patron holding this library card, resolved at the User service on every scan (lending
    never stores a card): 404 user_not_found for a card nobody holds, 403 user_inactive."""
    if not is_sendable_key(barcode, MAX_CARD_BARCODE_LENGTH):  # no card we could look up has it
        raise _no_card_holder(shown_key(barcode, MAX_CARD_BARCODE_LENGTH))
    response = client().get(f"/users?{urlencode({'barcode': barcode}, quote_via=quote, safe='')}")
    if response.status == 404:
        raise _no_card_holder(barcode)
    user = _user(response)
    _ensure_holds_card(user, barcode, response)
    email = _card_holder_email(user, response)
    _ensure_active(user, email, response)
    return Patron(email=email, category=_category(user, response), name=_display_name(user))


def _display_name(user: dict) -> str | None:
    """`name` is optional and only shown: a name we could not show is no name, not an error."""
    name = user.get("name")
    return name if isinstance(name, str) and 0 < len(name) <= MAX_NAME_LENGTH and name.isprintable() else None


def _no_card_holder(barcode: str) -> Exception:
    return USER_NOT_FOUND.error(f"No user holds the library card {barcode}.")


def _user(response: PeerResponse) -> dict:
    if response.status != 200 or not isinstance(response.data, dict):
        raise _outside_contract(response)
    return response.data


def _ensure_active(user: dict, email: str, response: PeerResponse) -> None:
    # `active` is optional in the contract: an account is active unless it says otherwise. Anything
    # but a boolean there is outside the contract (a 503, never a guess either way).
    active = user.get("active", True)
    if not isinstance(active, bool):
        raise _outside_contract(response)
    if active is False:
        raise USER_INACTIVE.error(user_email=email)


def _ensure_holds_card(user: dict, barcode: str, response: PeerResponse) -> None:
    """A user whose body names another card is not this card's holder (a User service that ignored
    the query, say): lending to them would lend to the wrong patron. Only the spelling may differ."""
    card = user.get("barcode")
    if card is not None and (not isinstance(card, str) or card.casefold() != barcode.casefold()):
        raise _outside_contract(response)


def _card_holder_email(user: dict, response: PeerResponse) -> str:
    """The email of the card's holder, as the loans store it (lower case); an answer without a
    usable one is outside the contract: a loan must name its patron."""
    email = user.get("email")
    if not isinstance(email, str) or len(email) > MAX_EMAIL_LENGTH:
        raise _outside_contract(response)
    try:
        validate_email(email)
    except ValidationError:
        raise _outside_contract(response) from None
    return email.lower()


def _category(user: dict, response: PeerResponse) -> str | None:
    """`category` is optional: absent or null is None; anything but a short string is a 503."""
    category = user.get("category")
    if category is None:
        return None
    if not isinstance(category, str) or not 0 < len(category) <= MAX_CATEGORY_LENGTH:
        raise _outside_contract(response)
    return category


def _outside_contract(response: PeerResponse) -> PeerUnavailable:
    """The 503 for an answer outside the contract; the answer is logged without the library card
    (lending never keeps a card, in its logs either)."""
    if isinstance(response.data, dict) and "barcode" in response.data:
        response = PeerResponse(response.status, {**response.data, "barcode": "(card not logged)"})
    return unexpected_answer(PEER, response)
