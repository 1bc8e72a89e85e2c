"""The spec's endpoints end to end through the API, against the reference peers."""

from datetime import timedelta

import pytest

from lending import calendar
from lending.models import Loan, OutboxKind, OutboxMessage
from tests.conftest import post_json
from tests.factories import LoanFactory, days
from tests.rules import set_policy

pytestmark = pytest.mark.django_db

LOAN_FIELDS = {"id", "user_email", "book_id", "date_borrowed", "date_due", "date_returned", "status"}


@pytest.mark.parametrize("path", ["/lendBook/", "/lendBook"])
def test_lend_creates_an_active_loan_due_in_the_loan_period(api, patron, book, path):
    response = post_json(api, path, {"user_email": patron, "book_id": book["id"]})

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == LOAN_FIELDS
    assert body["status"] == "ACTIVE" and body["date_returned"] is None
    loan = Loan.objects.get(pk=body["id"])
    # The end of the period's last day (lending.calendar: the due-date rule).
    assert loan.date_due == calendar.due_after(loan.date_borrowed, timedelta(days=60))
    assert loan.book_title == "Test book"


def test_lend_writes_availability_and_confirmation_into_the_outbox(api, patron, book):
    post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})

    messages = OutboxMessage.objects.filter(book_id=book["id"])
    assert sorted(messages.values_list("kind", flat=True)) == [OutboxKind.AVAILABILITY, OutboxKind.NOTIFICATION]
    notification = messages.get(kind=OutboxKind.NOTIFICATION)
    assert notification.payload["message_type"] == "lending_confirmation"
    assert notification.payload["book_title"] == "Test book"


def test_lend_period_follows_the_setting(api, patron, book, settings):
    set_policy(loan_days=14, renewal_days=14)
    body = post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]}).json()
    loan = Loan.objects.get(pk=body["id"])
    assert loan.date_due == calendar.due_after(loan.date_borrowed, timedelta(days=14))


def test_second_copy_request_for_a_one_copy_book_is_refused(api, peers, patron, book):
    other = peers.user.add_user("second-reader@example.com")["email"]
    post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})

    response = post_json(api, "/lendBook/", {"user_email": other, "book_id": book["id"]})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_copy_available"
    assert Loan.objects.filter(book_id=book["id"]).count() == 1


def test_the_same_patron_cannot_borrow_the_same_book_twice(api, peers, patron):
    book = peers.book.add_book("Two copies", "A", 2)
    post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})

    response = post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_borrowed"


def test_copies_come_from_the_book_service_quantity(api, peers):
    book = peers.book.add_book("Three copies", "A", 3)
    readers = [peers.user.add_user(f"reader{i}-{book['id']}@example.com")["email"] for i in range(4)]
    statuses = [post_json(api, "/lendBook/", {"user_email": r, "book_id": book["id"]}).status_code for r in readers]
    assert statuses == [201, 201, 201, 409]


def test_email_is_compared_case_insensitively(api, patron, book):
    post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})
    response = post_json(api, "/lendBook/", {"user_email": patron.upper(), "book_id": book["id"]})
    assert response.status_code == 409


def test_unknown_user_is_404_and_inactive_user_is_403(api, peers, book):
    unknown = post_json(api, "/lendBook/", {"user_email": "nobody@example.com", "book_id": book["id"]})
    inactive = post_json(api, "/lendBook/", {"user_email": "inactive@example.com", "book_id": book["id"]})

    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "user_not_found")
    assert (inactive.status_code, inactive.json()["error"]["code"]) == (403, "user_inactive")
    assert not Loan.objects.exists() and not OutboxMessage.objects.exists()


def test_unknown_book_is_404(api, patron):
    response = post_json(api, "/lendBook/", {"user_email": patron, "book_id": 999_999})
    assert (response.status_code, response.json()["error"]["code"]) == (404, "book_not_found")
    assert not Loan.objects.exists()


@pytest.mark.parametrize("path", ["/returnBook/", "/returnBook"])
def test_return_closes_the_loan_and_queues_its_side_effects(api, patron, book, path):
    post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})

    response = post_json(api, path, {"user_email": patron, "book_id": book["id"]})

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "RETURNED" and body["date_returned"] is not None
    types = [m.payload.get("message_type") for m in OutboxMessage.objects.filter(kind=OutboxKind.NOTIFICATION)]
    assert types == ["lending_confirmation", "return_confirmation"]
    assert OutboxMessage.objects.filter(kind=OutboxKind.AVAILABILITY).count() == 2


def test_returned_copy_can_be_lent_again(api, peers, patron, book):
    other = peers.user.add_user(f"next-{book['id']}@example.com")["email"]
    post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})
    post_json(api, "/returnBook/", {"user_email": patron, "book_id": book["id"]})

    assert post_json(api, "/lendBook/", {"user_email": other, "book_id": book["id"]}).status_code == 201


def test_return_without_an_open_loan_is_404_and_writes_nothing(api, patron, book):
    response = post_json(api, "/returnBook/", {"user_email": patron, "book_id": book["id"]})
    assert (response.status_code, response.json()["error"]["code"]) == (404, "loan_not_found")
    assert not OutboxMessage.objects.exists()


def test_return_works_while_every_peer_is_down(api, peers, patron, book):
    post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})
    for peer in peers.all():
        peer.faults.status = 503

    response = post_json(api, "/returnBook/", {"user_email": patron, "book_id": book["id"]})

    assert response.status_code == 200
    assert response.json()["status"] == "RETURNED"


def test_overdue_lists_open_loans_past_due_oldest_first_and_writes_nothing(api, django_assert_num_queries):
    late = LoanFactory(user_email="late@example.com", book_id=1, due_in=days(-1))
    later = LoanFactory(user_email="later@example.com", book_id=1, due_in=days(-10))
    LoanFactory(user_email="fine@example.com", book_id=1, due_in=days(1))
    LoanFactory(user_email="back@example.com", book_id=1, due_in=days(-5), returned=True)

    with django_assert_num_queries(1):
        response = api.get("/getExpiredBooks/")

    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list)
    assert [loan["id"] for loan in body] == [later.pk, late.pk]
    assert {loan["status"] for loan in body} == {"OVERDUE"}
    assert set(Loan.objects.values_list("status", flat=True)) == {"ACTIVE", "RETURNED"}


def test_overdue_answers_without_trailing_slash(api):
    assert api.get("/getExpiredBooks").json() == []
