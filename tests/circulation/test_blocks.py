"""Patron blocks: the automated rules (pure), manual blocks (POST/GET/DELETE) and GET /patrons/{email}/status/."""

from __future__ import annotations

import pytest
from django.utils import timezone

from lending import blocks
from lending.blocks import BlockRules, PatronBlock, PatronCounts
from tests.conftest import post_json
from tests.factories import LoanFactory, days
from tests.rules import set_policy

RULES = BlockRules(max_overdue_loans=3, max_overdue_days=30, max_open_loans=10, block_on_overdue=True)


def codes(reasons) -> list[str]:
    return [reason.code for reason in reasons]


# --- The rules, pure -------------------------------------------------------------------------------
def test_a_patron_in_good_standing_may_do_everything():
    for action in blocks.ALL_ACTIONS:
        assert blocks.reasons_against(action, PatronCounts(open_loans=2), [], RULES) == []


def test_overdue_loans_at_the_limit_block_every_action():
    counts = PatronCounts(open_loans=3, overdue_loans=3, most_days_overdue=2)
    assert codes(blocks.reasons_against("borrow", counts, [], RULES)) == [
        "too_many_overdue_loans",
        "patron_has_overdue_loans",
    ]
    assert codes(blocks.reasons_against("renew", counts, [], RULES)) == ["too_many_overdue_loans"]
    assert codes(blocks.reasons_against("reserve", counts, [], RULES)) == ["too_many_overdue_loans"]
    below = PatronCounts(open_loans=2, overdue_loans=2, most_days_overdue=2)
    assert blocks.reasons_against("renew", below, [], RULES) == []


def test_a_loan_overdue_more_than_the_days_blocks():
    assert blocks.reasons_against("reserve", PatronCounts(overdue_loans=1, most_days_overdue=30), [], RULES) == []
    assert codes(blocks.reasons_against("reserve", PatronCounts(overdue_loans=1, most_days_overdue=31), [], RULES)) == [
        "loan_overdue_too_long"
    ]


def test_lost_items_block_every_action():
    for action in blocks.ALL_ACTIONS:
        assert "lost_items" in codes(blocks.reasons_against(action, PatronCounts(lost_loans=1), [], RULES))


def test_the_loan_limit_and_overdue_policy_refuse_borrowing_only():
    counts = PatronCounts(open_loans=10, overdue_loans=1, most_days_overdue=1)
    assert codes(blocks.reasons_against("borrow", counts, [], RULES)) == [
        "patron_has_overdue_loans",
        "loan_limit_reached",
    ]
    assert blocks.reasons_against("renew", counts, [], RULES) == []
    lenient = BlockRules(max_overdue_loans=3, max_overdue_days=30, max_open_loans=10, block_on_overdue=False)
    assert codes(blocks.reasons_against("borrow", counts, [], lenient)) == ["loan_limit_reached"]


def test_a_manual_block_refuses_only_its_actions_and_comes_first():
    block = PatronBlock(pk=4, user_email="a@example.com", reason="Damaged books", blocks=["borrow"])
    counts = PatronCounts(lost_loans=1)
    assert codes(blocks.reasons_against("borrow", counts, [block], RULES)) == ["manual_block", "lost_items"]
    assert codes(blocks.reasons_against("renew", counts, [block], RULES)) == ["lost_items"]
    reason = blocks.reasons_against("borrow", PatronCounts(), [block], RULES)[0]
    assert reason.as_dict() == {
        "code": "manual_block",
        "message": "Blocked by staff: Damaged books",
        "actions": ["borrow"],
        "block_id": 4,
        "reason": "Damaged books",
    }


def test_zero_max_overdue_loans_turns_the_count_rule_off():
    off = BlockRules(max_overdue_loans=0, max_overdue_days=30, max_open_loans=10, block_on_overdue=False)
    assert blocks.reasons_against("renew", PatronCounts(overdue_loans=5), [], off) == []


# --- Manual blocks through the API -----------------------------------------------------------------
pytestmark_db = pytest.mark.django_db
EMAIL = "Block.Me@Example.com"


@pytestmark_db
def test_place_list_and_remove_a_block(api):
    placed = post_json(api, f"/patrons/{EMAIL}/blocks/", {"reason": "Damaged books", "blocks": ["borrow", "reserve"]})
    assert placed.status_code == 201, placed.content
    block = placed.json()
    assert block["user_email"] == "block.me@example.com"
    assert block["blocks"] == ["borrow", "reserve"]
    assert block["expires_at"] is None
    assert block["created_by"] == "anonymous"
    listed = api.get(f"/patrons/{EMAIL.lower()}/blocks/")
    assert listed.status_code == 200
    assert [b["id"] for b in listed.json()] == [block["id"]]
    removed = api.delete(f"/patrons/{EMAIL}/blocks/{block['id']}/")
    assert removed.status_code == 204
    assert api.get(f"/patrons/{EMAIL}/blocks").json() == []
    again = api.delete(f"/patrons/{EMAIL}/blocks/{block['id']}")
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "block_not_found"


@pytestmark_db
def test_another_patrons_block_cannot_be_removed_through_this_patron(api):
    block = blocks.place("a@example.com", reason="x", actions=["borrow"], expires_at=None, by="t", now=timezone.now())
    answer = api.delete(f"/patrons/b@example.com/blocks/{block.pk}/")
    assert answer.status_code == 404
    assert PatronBlock.objects.filter(pk=block.pk).exists()
    assert api.delete(f"/patrons/a@example.com/blocks/{2**63}/").status_code == 404


@pytestmark_db
def test_an_expired_block_is_not_listed_and_does_not_block(api):
    now = timezone.now()
    blocks.place("a@example.com", reason="old", actions=["borrow"], expires_at=now - days(1), by="t", now=now - days(2))
    assert api.get("/patrons/a@example.com/blocks/").json() == []
    assert api.get("/patrons/a@example.com/status/").json()["borrow"] == {"allowed": True, "reasons": []}


@pytestmark_db
def test_a_block_expiring_in_the_past_is_422_and_writes_nothing(api):
    answer = post_json(
        api,
        "/patrons/a@example.com/blocks/",
        {"reason": "x", "blocks": ["borrow"], "expires_at": "2000-01-01T00:00:00Z"},
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "date_out_of_range"
    assert not PatronBlock.objects.exists()


@pytestmark_db
@pytest.mark.parametrize(
    "body",
    [
        {"blocks": ["borrow"]},
        {"reason": "", "blocks": ["borrow"]},
        {"reason": "x", "blocks": []},
        {"reason": "x", "blocks": ["fly"]},
        {"reason": "x", "blocks": "borrow"},
        {"reason": "x", "blocks": ["borrow"], "expires_at": "soon"},
        {"reason": "x" * 1001, "blocks": ["borrow"]},
    ],
)
def test_a_bad_block_is_400_and_writes_nothing(api, body):
    answer = post_json(api, "/patrons/a@example.com/blocks/", body)
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"]["code"] == "invalid_request"
    assert not PatronBlock.objects.exists()


@pytestmark_db
@pytest.mark.parametrize("path", ["/patrons/not-an-email/blocks/", "/patrons/not-an-email/status/"])
def test_a_bad_email_is_400(api, path):
    answer = api.get(path)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_request"


# --- Status ----------------------------------------------------------------------------------------
@pytestmark_db
def test_status_lists_every_reason_and_the_counts(api, settings):
    settings.BLOCK_MAX_OVERDUE_LOANS = 2
    settings.BLOCK_MAX_OVERDUE_DAYS = 5
    patron = "kiosk@example.com"
    LoanFactory(user_email=patron, due_in=days(-7))
    LoanFactory(user_email=patron, due_in=days(-1))
    LoanFactory(user_email=patron, due_in=days(10))
    LoanFactory(user_email=patron, returned=True, due_in=days(-40))
    block = blocks.place(patron, reason="Desk", actions=["reserve"], expires_at=None, by="t", now=timezone.now())
    status = api.get(f"/patrons/{patron}/status/")
    assert status.status_code == 200
    body = status.json()
    assert body["counts"] == {
        "open_loans": 3,
        "overdue_loans": 2,
        "most_days_overdue": 7,
        "lost_loans": 0,
        "blocks_in_force": 1,
    }
    assert body["limits"]["max_overdue_loans"] == 2
    assert body["borrow"]["allowed"] is False
    assert [r["code"] for r in body["borrow"]["reasons"]] == [
        "too_many_overdue_loans",
        "loan_overdue_too_long",
        "patron_has_overdue_loans",
    ]
    assert [r["code"] for r in body["reserve"]["reasons"]] == [
        "manual_block",
        "too_many_overdue_loans",
        "loan_overdue_too_long",
    ]
    assert body["reserve"]["reasons"][0]["block_id"] == block.pk
    assert api.get(f"/patrons/{patron}/status/").headers["Cache-Control"] == "no-store"


@pytestmark_db
def test_status_of_an_unknown_patron_allows_everything(api):
    body = api.get("/patrons/nobody@example.com/status/").json()
    assert all(body[action] == {"allowed": True, "reasons": []} for action in ("borrow", "renew", "reserve"))
    assert body["counts"]["open_loans"] == 0


@pytestmark_db
def test_the_loan_limit_shows_in_status(api, settings):
    set_policy(max_loans=2)
    for _ in range(2):
        LoanFactory(user_email="full@example.com")
    body = api.get("/patrons/full@example.com/status/").json()
    assert [r["code"] for r in body["borrow"]["reasons"]] == ["loan_limit_reached"]
    assert body["renew"]["allowed"] and body["reserve"]["allowed"]
