"""The balance block: a patron owing more than FINES_BLOCK_LIMIT at the Fees service may not borrow
or renew (403 `patron_blocked`, `fines_over_limit`), may still return and reserve; at or below the
limit nothing is refused; when the Fees service cannot answer the block fails open and the status
says `"balance": "unknown"`; without a limit the Fees service is never asked."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from lending import blocks, circulation_rules, errors
from lending.blocks import FeesStanding, PatronCounts
from lending.clients.fees import Balance
from lending.locks import lock_patron
from lending.models import Loan
from lending.patron_ref import patron_ref
from tests.conftest import post_json

RULES = blocks.BlockRules(max_overdue_loans=3, max_overdue_days=30, max_open_loans=10, block_on_overdue=True)


def owing(amount: str, limit: str = "10.00") -> FeesStanding:
    return FeesStanding(limit=Decimal(limit), balance=Balance(Decimal(amount), "EUR"))


def codes(action: str, fees: FeesStanding) -> list[str]:
    return [reason.code for reason in blocks.reasons_against(action, PatronCounts(), [], RULES, fees)]


# --- The rule, pure --------------------------------------------------------------------------------
def test_a_balance_above_the_limit_blocks_borrowing_and_renewing_only():
    assert codes("borrow", owing("10.01")) == ["fines_over_limit"]
    assert codes("renew", owing("10.01")) == ["fines_over_limit"]
    assert codes("reserve", owing("10.01")) == []
    assert "fines_over_limit" in blocks.BLOCKING_CODES
    [reason] = blocks.fees_reasons(owing("12.50"))
    assert reason.message == "12.50 EUR owed in fines and fees; more than 10.00 blocks borrowing and renewing."


@pytest.mark.parametrize("fees", [owing("10.00"), owing("0"), FeesStanding(limit=Decimal("10")), blocks.NOT_ASKED])
def test_at_or_below_the_limit_unknown_or_not_asked_blocks_nothing(fees):
    assert codes("borrow", fees) == [] and codes("renew", fees) == []


def test_the_balance_as_a_status_screen_shows_it():
    assert owing("12.50").shown_balance() == "12.50"
    assert FeesStanding(limit=Decimal("10")).shown_balance() == "unknown"
    assert blocks.NOT_ASKED.shown_balance() is None


# --- Asking the Fees service -----------------------------------------------------------------------
def test_without_a_limit_the_fees_service_is_not_asked(peers, settings, patron):
    settings.FINES_BLOCK_LIMIT = None
    peers.fees.add_fee(patron_ref(patron), "99.00")
    assert blocks.fees_standing(patron) is blocks.NOT_ASKED


def test_with_a_limit_the_balance_is_asked_by_patron_ref(peers, settings, patron):
    settings.FINES_BLOCK_LIMIT = Decimal("10.00")
    peers.fees.add_fee(patron_ref(patron), "12.50")
    found = blocks.fees_standing(patron)
    assert found.balance == Balance(Decimal("12.50"), "EUR") and found.over_limit


def test_the_fees_service_down_gives_an_unknown_balance(peers, settings, patron):
    settings.FINES_BLOCK_LIMIT = Decimal("10.00")
    peers.fees.faults.status = 503
    found = blocks.fees_standing(patron)
    assert found.unknown and not found.over_limit


@pytest.mark.django_db
def test_a_write_refuses_with_every_blocking_reason_in_details(peers, settings, patron):
    """What lend, check-out and renew do: ask before the transaction, check under the patron lock."""
    settings.FINES_BLOCK_LIMIT = Decimal("10.00")
    peers.fees.add_fee(patron_ref(patron), "10.01")
    fees = blocks.fees_standing(patron)
    with pytest.raises(errors.LendingError) as refused, transaction.atomic():
        rulebook = circulation_rules.in_force(lock_patron(patron))
        blocks.check_not_blocked(patron, blocks.Action.BORROW, timezone.now(), rulebook=rulebook, fees=fees)
    assert refused.value.status == 403 and refused.value.code == "patron_blocked"
    assert [reason["code"] for reason in refused.value.details["blocks"]] == ["fines_over_limit"]


# --- Through the API -------------------------------------------------------------------------------
def lend(api, email: str, book_id: int):
    return post_json(api, "/lendBook/", {"user_email": email, "book_id": book_id})


@pytest.mark.django_db
def test_status_shows_the_balance_and_the_block(api, peers, settings, patron):
    settings.FINES_BLOCK_LIMIT = Decimal("10.00")
    peers.fees.add_fee(patron_ref(patron), "12.50")
    body = api.get(f"/patrons/{patron}/status/").json()
    assert (body["balance"], body["balance_currency"], body["limits"]["fines_block_limit"]) == ("12.50", "EUR", "10.00")
    assert [reason["code"] for reason in body["borrow"]["reasons"]] == ["fines_over_limit"]
    assert [reason["code"] for reason in body["renew"]["reasons"]] == ["fines_over_limit"]
    assert body["reserve"] == {"allowed": True, "reasons": []}


@pytest.mark.django_db
def test_status_says_unknown_when_the_fees_service_is_down(api, peers, settings, patron):
    settings.FINES_BLOCK_LIMIT = Decimal("10.00")
    peers.fees.add_fee(patron_ref(patron), "12.50")
    peers.fees.faults.status = 503
    body = api.get(f"/patrons/{patron}/status/").json()
    assert (body["balance"], body["balance_currency"]) == ("unknown", None)
    assert body["borrow"] == {"allowed": True, "reasons": []}


@pytest.mark.django_db
def test_status_without_a_limit_has_no_balance(api, peers, settings, patron):
    settings.FINES_BLOCK_LIMIT = None
    body = api.get(f"/patrons/{patron}/status/").json()
    assert (body["balance"], body["balance_currency"], body["limits"]["fines_block_limit"]) == (None, None, None)


@pytest.mark.django_db
def test_a_patron_owing_at_the_limit_borrows(api, peers, settings, patron, book):
    settings.FINES_BLOCK_LIMIT = Decimal("10.00")
    peers.fees.add_fee(patron_ref(patron), "10.00")
    assert lend(api, patron, book["id"]).status_code == 201


@pytest.mark.django_db
def test_the_fees_service_down_does_not_stop_a_lend(api, peers, settings, patron, book):
    settings.FINES_BLOCK_LIMIT = Decimal("10.00")
    peers.fees.add_fee(patron_ref(patron), "50.00")
    peers.fees.faults.status = 503
    assert lend(api, patron, book["id"]).status_code == 201


@pytest.mark.django_db
def test_a_patron_over_the_limit_still_returns(api, peers, settings, patron, book):
    assert lend(api, patron, book["id"]).status_code == 201
    settings.FINES_BLOCK_LIMIT = Decimal("10.00")
    peers.fees.add_fee(patron_ref(patron), "50.00")
    returned = post_json(api, "/returnBook/", {"user_email": patron, "book_id": book["id"]})
    assert returned.status_code == 200
    assert Loan.objects.get(user_email=patron).date_returned is not None


@pytest.mark.django_db
def test_a_patron_over_the_limit_may_not_borrow(api, peers, settings, patron, book):
    settings.FINES_BLOCK_LIMIT = Decimal("10.00")
    peers.fees.add_fee(patron_ref(patron), "10.01")
    refused = lend(api, patron, book["id"])
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "patron_blocked"
    assert [reason["code"] for reason in error["details"]["blocks"]] == ["fines_over_limit"]
    assert not Loan.objects.filter(user_email=patron).exists()


@pytest.mark.django_db
def test_a_patron_over_the_limit_may_not_renew(api, peers, settings, patron, book):
    assert lend(api, patron, book["id"]).status_code == 201
    settings.FINES_BLOCK_LIMIT = Decimal("10.00")
    peers.fees.add_fee(patron_ref(patron), "10.01")
    refused = post_json(api, "/renewBook/", {"user_email": patron, "book_id": book["id"]})
    assert refused.status_code == 403
    assert [reason["code"] for reason in refused.json()["error"]["details"]["blocks"]] == ["fines_over_limit"]
    assert Loan.objects.get(user_email=patron).renewals == 0


@pytest.mark.django_db
def test_a_patron_over_the_limit_may_not_check_out_a_copy(api, peers, settings, patron):
    settings.FINES_BLOCK_LIMIT = Decimal("10.00")
    peers.fees.add_fee(patron_ref(patron), "10.01")
    barcode = peers.book.add_book("Blocked copy", "A", 1)["items"][0]["barcode"]
    refused = post_json(api, "/checkouts/", {"item_barcode": barcode, "user_email": patron})
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "patron_blocked")
    assert not Loan.objects.filter(user_email=patron).exists()
