"""Back-dated returns (the book drop): `returned_at` is the real return date, bounded by
RETURN_BACKDATE_MAX_DAYS, the loan date and now; lateness is judged at that date."""

from __future__ import annotations

import pytest
from django.utils import timezone

from lending.models import Event, EventKind, Loan
from tests.conftest import post_json
from tests.factories import LoanFactory, days

pytestmark = pytest.mark.django_db


def return_at(api, loan, when):
    body = {"user_email": loan.user_email, "book_id": loan.book_id}
    if when is not None:
        body["returned_at"] = when.isoformat() if hasattr(when, "isoformat") else when
    return post_json(api, "/returnBook/", body)


def test_a_loan_overdue_at_its_real_return_date_counts_as_returned_late(api):
    loan = LoanFactory(due_in=days(-3), borrowed_ago=days(20))
    answer = return_at(api, loan, timezone.now() - days(1))
    assert answer.status_code == 200, answer.content
    loan.refresh_from_db()
    assert loan.status == "RETURNED"
    assert abs((loan.date_returned - (timezone.now() - days(1))).total_seconds()) < 60
    event = Event.objects.get(loan=loan, kind=EventKind.RETURNED)
    assert event.data["returned_late"] is True and event.data["days_late"] == 2


def test_a_loan_returned_in_the_drop_before_its_due_date_is_on_time(api):
    loan = LoanFactory(due_in=days(-1), borrowed_ago=days(20))
    assert return_at(api, loan, timezone.now() - days(2)).status_code == 200
    event = Event.objects.get(loan=loan, kind=EventKind.RETURNED)
    assert event.data["returned_late"] is False and event.data["days_late"] == 0


def test_without_returned_at_the_return_is_now(api):
    loan = LoanFactory(due_in=days(-1))
    assert return_at(api, loan, None).status_code == 200
    assert Event.objects.get(loan=loan, kind=EventKind.RETURNED).data["returned_late"] is True


@pytest.mark.parametrize(
    "when, status, code, message",
    [
        (lambda: timezone.now() + days(1), 422, "date_out_of_range", "future"),
        (lambda: timezone.now() - days(8), 422, "date_out_of_range", "7 days"),
        (lambda: "yesterday", 400, "invalid_request", "Datetime"),
        (lambda: 12, 400, "invalid_request", "Datetime"),
    ],
)
def test_a_bad_returned_at_is_refused_and_the_loan_stays_open(api, when, status, code, message):
    loan = LoanFactory(borrowed_ago=days(30))
    answer = return_at(api, loan, when())
    assert answer.status_code == status, answer.content
    error = answer.json()["error"]
    assert error["code"] == code and message in str(error["details"]["returned_at"])
    assert Loan.objects.get(pk=loan.pk).date_returned is None


def test_returned_at_before_the_loan_date_is_400_and_writes_nothing(api):
    loan = LoanFactory(borrowed_ago=days(1))
    answer = return_at(api, loan, timezone.now() - days(2))
    assert answer.status_code == 400
    assert "loan date" in str(answer.json()["error"]["details"]["returned_at"])
    assert Loan.objects.get(pk=loan.pk).date_returned is None
    assert not Event.objects.exists()


def test_the_backdate_limit_is_configurable(api, settings):
    settings.RETURN_BACKDATE_MAX_DAYS = 1
    loan = LoanFactory(borrowed_ago=days(30))
    assert return_at(api, loan, timezone.now() - days(2)).status_code == 422


# --- Who may back-date (issue 28): beyond the library's day, staff only --------------------------


def earlier_today():
    """A moment of the library's current day, before now."""
    from datetime import datetime, time

    from lending import calendar

    now = timezone.now()
    start = datetime.combine(calendar.library_day(now), time.min, tzinfo=calendar.library_zone())
    return start + (now - start) / 2


def keyed_return(api, loan, when, scopes, **extra):
    from lending.api.permissions import create_key

    body = {"user_email": loan.user_email, "book_id": loan.book_id, "returned_at": when.isoformat(), **extra}
    key = create_key("kiosk", scopes)[1]
    return post_json(api, "/returnBook/", body, Authorization=f"Api-Key {key}")


@pytest.fixture
def keys_on(settings):
    settings.REQUIRE_API_KEY = True


def test_a_circulation_key_back_dates_within_the_library_day(api, keys_on):
    loan = LoanFactory(borrowed_ago=days(3))

    answer = keyed_return(api, loan, earlier_today(), ["circulation"])

    assert answer.status_code == 200, answer.content


def test_a_circulation_key_may_not_back_date_to_an_earlier_day(api, keys_on):
    """A kiosk's key moving a return a week back turns a late return into an on-time one (money, once
    fines exist): refused before anything is written."""
    loan = LoanFactory(due_in=days(-3), borrowed_ago=days(20))

    answer = keyed_return(api, loan, timezone.now() - days(5), ["circulation"])

    assert answer.status_code == 403, answer.content
    error = answer.json()["error"]
    assert error["code"] == "insufficient_scope" and error["details"]["required_scope"] == "override"
    loan.refresh_from_db()
    assert loan.date_returned is None
    assert not Event.objects.filter(loan=loan, kind=EventKind.RETURNED).exists()


def test_staff_back_date_to_an_earlier_day_and_their_reason_is_in_the_history(api, keys_on):
    loan = LoanFactory(due_in=days(-3), borrowed_ago=days(20))
    override = {"override": {"reason": "book drop not emptied over the weekend"}}

    answer = keyed_return(api, loan, timezone.now() - days(5), ["circulation", "override"], **override)

    assert answer.status_code == 200, answer.content
    returned = Event.objects.get(loan=loan, kind=EventKind.RETURNED)
    assert returned.data["returned_late"] is False
    assert returned.reason == "book drop not emptied over the weekend"
