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
