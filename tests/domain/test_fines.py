"""The fines arithmetic without a database (`lending.fines`): the grace period, the whole late period
beyond it, closed days counted or not, the cap, lost fees and their refund."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from lending import fines
from lending.calendar import ClosedDays
from tests.domain.test_policy import TERMS

DUE = datetime(2026, 3, 2, 23, 59, 59, 999999, tzinfo=UTC)  # a Monday, the end of the library's day
FINED = replace(TERMS, fine_per_day=Decimal("0.50"), fine_grace_days=2, fine_max=Decimal("5.00"))


@pytest.fixture(autouse=True)
def _utc_library(settings):
    settings.LIBRARY_TIME_ZONE = "UTC"
    settings.FINES_CURRENCY = "EUR"


def fine_after(days: float, terms=FINED, closed=ClosedDays()):
    return fines.overdue_fine(terms, date_due=DUE, returned_at=DUE + timedelta(days=days), closed=closed)


def test_in_time_or_within_the_grace_owes_nothing():
    assert fine_after(-1) is None
    assert fine_after(0.5) is None  # one day late
    assert fine_after(2) is None  # two days late: the grace


def test_beyond_the_grace_the_whole_late_period_counts():
    fine = fine_after(3)
    assert fine is not None
    assert (fine.amount, fine.days_charged, fine.currency, fine.kind) == (Decimal("1.50"), 3, "EUR", "overdue")


def test_the_fine_stops_at_its_cap():
    assert fine_after(30).amount == Decimal("5.00")
    assert fine_after(30, replace(FINED, fine_max=None)).amount == Decimal("15.00")


def test_closed_days_are_not_counted_when_the_policy_says_so():
    weekend = ClosedDays(weekdays=frozenset({5, 6}))  # due Monday; returned Monday a week later: 7 days late
    counted = fine_after(7, closed=weekend)
    open_days_only = fine_after(7, replace(FINED, fine_counts_closed_days=False), closed=weekend)
    assert (counted.days_charged, counted.amount) == (7, Decimal("3.50"))
    assert (open_days_only.days_charged, open_days_only.amount) == (5, Decimal("2.50"))


def test_a_policy_without_fines_charges_none():
    assert fine_after(30, TERMS) is None


def test_lost_fees_and_their_refund():
    lost = replace(TERMS, lost_item_fee=Decimal("25.00"), lost_processing_fee=Decimal("5.00"))
    assert [(f.kind, f.amount) for f in fines.lost_fees(lost)] == [
        ("lost_item", Decimal("25.00")),
        ("processing", Decimal("5.00")),
    ]
    assert fines.lost_fees(TERMS) == []
    refund = fines.lost_refund(lost, Decimal("25.00"))
    assert refund is not None and (refund.kind, refund.amount) == ("refund", Decimal("25.00"))
    assert fines.lost_refund(replace(lost, refund_lost_on_return=False), Decimal("25.00")) is None
    assert fines.lost_refund(lost, None) is None
