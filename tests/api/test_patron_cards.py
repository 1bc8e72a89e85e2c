"""`POST /patrons/by-card/`: a card scan at a kiosk — the holder's standing, open loans and holds,
resolved at the User service; nobody else's data."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from lending import blocks
from lending.api.permissions import create_key
from lending.models import Scope
from tests.conftest import post_json

pytestmark = pytest.mark.django_db


def new_patron(peers, active: bool = True) -> dict:
    return peers.user.add_user(f"card-{uuid.uuid4().hex[:10]}@example.com", active)


def by_card(api, card, **headers):
    return post_json(api, "/patrons/by-card/", {"patron_barcode": card}, **headers)


def checkout(api, item: str, patron: dict):
    answer = post_json(api, "/checkouts/", {"item_barcode": item, "patron_barcode": patron["barcode"]})
    assert answer.status_code == 201, answer.content


def test_the_holder_of_a_card_with_their_loans_and_holds(api, peers):
    patron, other = new_patron(peers), new_patron(peers)
    lent = peers.book.add_book("Carded", "Author", 2)
    mine, theirs = (item["barcode"] for item in lent["items"])
    checkout(api, mine, patron)
    checkout(api, theirs, other)
    wanted = peers.book.add_book("Wanted", "Author", 1)
    checkout(api, wanted["items"][0]["barcode"], other)
    held = post_json(api, "/reserveBook/", {"user_email": patron["email"], "book_id": wanted["id"]})
    assert held.status_code == 201, held.content

    answer = by_card(api, patron["barcode"])
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["user_email"] == patron["email"]
    assert [loan["item_barcode"] for loan in body["loans"]] == [mine]
    assert [(hold["book_id"], hold["status"], hold["queue_position"]) for hold in body["holds"]] == [
        (wanted["id"], "WAITING", 1)
    ]
    assert body["borrow"]["allowed"] is True and body["counts"]["open_loans"] == 1
    assert other["email"] not in answer.content.decode()
    assert "no-store" in answer.headers["Cache-Control"]


def test_a_blocked_patron_and_the_reasons(api, peers):
    patron = new_patron(peers)
    blocks.place(
        patron["email"], reason="Damaged book", actions=["borrow"], expires_at=None, by="t", now=timezone.now()
    )
    body = by_card(api, patron["barcode"]).json()
    assert body["borrow"]["allowed"] is False
    assert [reason["code"] for reason in body["borrow"]["reasons"]] == ["manual_block"]


@pytest.mark.parametrize(
    ("card", "status", "code"),
    [("2999999999", 404, "user_not_found"), ("", 400, "invalid_request"), ("with space", 400, "invalid_request")],
)
def test_unknown_or_malformed_cards(api, peers, card, status, code):
    answer = by_card(api, card)
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)


def test_an_inactive_patron(api, peers):
    answer = by_card(api, new_patron(peers, active=False)["barcode"])
    assert (answer.status_code, answer.json()["error"]["code"]) == (403, "user_inactive")


def test_a_key_without_a_reading_scope_is_refused(api, peers, settings):
    settings.REQUIRE_API_KEY = True
    patron = new_patron(peers)
    lends_only = create_key("lends-only", [Scope.CIRCULATION])[1]  # a patron's loans are more than lending
    answer = by_card(api, patron["barcode"], Authorization=f"Api-Key {lends_only}")
    assert (answer.status_code, answer.json()["error"]["code"]) == (403, "insufficient_scope")
    kiosk = create_key("kiosk", [Scope.CIRCULATION, Scope.PATRON_READ])[1]
    assert by_card(api, patron["barcode"], Authorization=f"Api-Key {kiosk}").status_code == 200
