"""SIP2's fee fields: a patron's status (24) and information (64) carry the balance the Fees service
reported through the lending API (BH currency, BV fee amount, CC fee limit) and the "excessive
outstanding fines/fees" flags when the balance blocks; an unknown balance shows no amount."""

from __future__ import annotations

from decimal import Decimal

import pysip2
import pytest

from lending.patron_ref import patron_ref
from tests.sip_gateway.test_gateway import checkout, new_item, new_patron, now, strict

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

EXCESSIVE_FINES, EXCESSIVE_FEES = 10, 11


def status(kiosk, patron: dict):
    return strict(kiosk.ask(f"23000{now()}AOtest-library|AA{patron['barcode']}|AD|"))


def test_a_patron_over_the_limit_sees_the_fees_and_may_not_check_out(kiosk, peers, settings):
    settings.FINES_BLOCK_LIMIT = Decimal("10.00")
    patron = new_patron(peers)
    peers.fees.add_fee(patron_ref(patron["email"]), "12.50")

    reply = status(kiosk, patron)
    assert isinstance(reply, pysip2.PatronStatusResponse)
    assert (reply.currency_type, reply.fee_amount) == ("EUR", "12.50")
    assert reply.patron_status[0] == "Y"  # charge privileges denied
    assert reply.patron_status[EXCESSIVE_FINES] == reply.patron_status[EXCESSIVE_FEES] == "Y"
    assert reply.screen_message == ("Your account is blocked. Please see the library staff.",)

    info = strict(kiosk.ask(f"63000{now()}{' ' * 10}AOtest-library|AA{patron['barcode']}|AD|"))
    assert (info.fee_amount, info.fee_limit) == ("12.50", "10.00")

    _, [item] = new_item(peers)
    refused = strict(checkout(kiosk, patron["barcode"], item))
    assert refused.ok == "0"


def test_at_the_limit_the_amount_shows_and_nothing_is_denied(kiosk, peers, settings):
    settings.FINES_BLOCK_LIMIT = Decimal("10.00")
    patron = new_patron(peers)
    peers.fees.add_fee(patron_ref(patron["email"]), "10.00")
    reply = status(kiosk, patron)
    assert reply.fee_amount == "10.00"
    assert reply.patron_status == " " * 14


def test_an_unknown_balance_shows_no_amount_and_denies_nothing(kiosk, peers, settings):
    settings.FINES_BLOCK_LIMIT = Decimal("10.00")
    patron = new_patron(peers)
    peers.fees.add_fee(patron_ref(patron["email"]), "99.00")
    peers.fees.faults.status = 503
    reply = status(kiosk, patron)
    assert reply.fee_amount is None and reply.patron_status == " " * 14
