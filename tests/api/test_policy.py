"""Loan policy: `GET /policy/`, the patron-wide lend rules and the dry-run lend."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lending.models import BookStock, Hold, IdempotencyRecord, Loan, OutboxMessage
from tests.conftest import post_json
from tests.factories import LoanFactory, days
from tests.rules import set_policy

pytestmark = pytest.mark.django_db


def lend(api, email, book_id, **params):
    path = "/lendBook/" + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")
    return post_json(api, path, {"user_email": email, "book_id": book_id})


def code(response) -> str:
    return response.json()["error"]["code"]


def test_policy_shows_the_fallback_policy(api, django_assert_num_queries):
    api.get("/policy/")
    with django_assert_num_queries(1):  # the rules' version: this process's copy of the rules is current
        response = api.get("/policy/")
    assert response.status_code == 200
    assert response.json() == {
        "loan_period_days": 60,
        "max_renewals": 2,
        "max_active_loans_per_patron": 10,
        "block_on_overdue": True,
        "renew_overdue_allowed": False,
        "hold_pickup_days": 3,
        "loan_policy": "default",
    }


def test_policy_follows_the_settings(api, settings):
    set_policy(renewals_max=5)
    settings.HOLD_PICKUP_DAYS = 7
    body = api.get("/policy").json()
    assert body["max_renewals"] == 5 and body["hold_pickup_days"] == 7


def test_a_patron_may_borrow_up_to_the_limit_and_no_more(api, peers, patron, settings):
    set_policy(max_loans=2)
    books = [peers.book.add_book(f"Limit {i}", "A", 1)["id"] for i in range(3)]

    assert [lend(api, patron, b).status_code for b in books[:2]] == [201, 201]
    refused = lend(api, patron, books[2])

    assert (refused.status_code, code(refused)) == (409, "loan_limit_reached")
    assert Loan.objects.filter(user_email=patron).count() == 2


def test_a_returned_loan_frees_a_place_under_the_limit(api, peers, patron, settings):
    set_policy(max_loans=1)
    first, second = (peers.book.add_book(f"Limit {i}", "A", 1)["id"] for i in range(2))
    lend(api, patron, first)
    post_json(api, "/returnBook/", {"user_email": patron, "book_id": first})
    assert lend(api, patron, second).status_code == 201


def test_a_patron_with_an_overdue_loan_may_not_borrow(api, patron, book):
    LoanFactory(user_email=patron, book_id=424242, borrowed_ago=days(70), due_in=days(-10))
    refused = lend(api, patron, book["id"])
    assert (refused.status_code, code(refused)) == (409, "patron_has_overdue_loans")
    assert not OutboxMessage.objects.exists()


def test_overdue_blocking_can_be_turned_off(api, patron, book, settings):
    settings.LOAN_BLOCK_ON_OVERDUE = False
    LoanFactory(user_email=patron, book_id=424242, borrowed_ago=days(70), due_in=days(-10))
    assert lend(api, patron, book["id"]).status_code == 201


def test_dry_run_says_yes_and_writes_nothing(api, patron, book):
    with CaptureQueriesContext(connection) as queries:
        response = lend(api, patron, book["id"], dry_run="true")

    assert response.status_code == 200
    assert response.json() == {
        "dry_run": True,
        "would_succeed": True,
        "user_email": patron,
        "book_id": book["id"],
        "error": None,
    }
    assert all(q["sql"].lstrip().upper().startswith("SELECT") for q in queries.captured_queries)
    for model in (Loan, BookStock, OutboxMessage, Hold, IdempotencyRecord):
        assert not model.objects.exists()
    # The real lend agrees.
    assert lend(api, patron, book["id"]).status_code == 201


def test_dry_run_ignores_an_idempotency_key(api, patron, book):
    response = post_json(
        api, "/lendBook/?dry_run=1", {"user_email": patron, "book_id": book["id"]}, **{"Idempotency-Key": "dry-1"}
    )
    assert response.json()["would_succeed"] is True
    assert not IdempotencyRecord.objects.exists()
    assert lend(api, patron, book["id"]).status_code == 201


def _refusals(api, peers, patron, book, settings):
    """Each refused case, set up, with the code the real lend gives."""
    other = peers.user.add_user(f"other-{book['id']}@example.com")["email"]
    yield "user_not_found", "ghost@example.com", book["id"]
    yield "book_not_found", patron, 999_999
    lend(api, other, book["id"])
    yield "no_copy_available", patron, book["id"]
    two = peers.book.add_book("Two", "A", 2)["id"]
    lend(api, patron, two)
    yield "already_borrowed", patron, two
    set_policy(max_loans=1)
    yield "loan_limit_reached", patron, peers.book.add_book("Three", "A", 1)["id"]
    set_policy(max_loans=10)
    LoanFactory(user_email=patron, book_id=424242, borrowed_ago=days(70), due_in=days(-10))
    yield "patron_has_overdue_loans", patron, peers.book.add_book("Four", "A", 1)["id"]


def test_dry_run_gives_the_same_refusal_as_the_real_lend(api, peers, patron, book, settings):
    for expected, email, book_id in _refusals(api, peers, patron, book, settings):
        before = (Loan.objects.count(), OutboxMessage.objects.count())
        dry = lend(api, email, book_id, dry_run="true")
        assert dry.status_code == 200, dry.content
        assert dry.json()["would_succeed"] is False
        assert dry.json()["error"]["code"] == expected
        assert (Loan.objects.count(), OutboxMessage.objects.count()) == before
        real = lend(api, email, book_id)
        assert code(real) == expected


def test_dry_run_reports_copies_kept_for_holds(api, peers, patron, book):
    holder, waiting = (peers.user.add_user(f"{n}-{book['id']}@example.com")["email"] for n in ("h", "w"))
    lend(api, holder, book["id"])
    post_json(api, "/reserveBook/", {"user_email": waiting, "book_id": book["id"]})
    post_json(api, "/returnBook/", {"user_email": holder, "book_id": book["id"]})

    assert lend(api, patron, book["id"], dry_run="true").json()["error"]["code"] == "copies_on_hold"
    assert lend(api, waiting, book["id"], dry_run="true").json()["would_succeed"] is True


def test_dry_run_with_a_peer_down_is_503(api, peers, patron, book):
    peers.user.faults.status = 503
    response = lend(api, patron, book["id"], dry_run="true")
    assert response.status_code == 503 and "Retry-After" in response


def test_dry_run_false_lends(api, patron, book):
    assert lend(api, patron, book["id"], dry_run="false").status_code == 201


def test_bad_dry_run_value_is_400(api, patron, book):
    response = lend(api, patron, book["id"], dry_run="perhaps")
    assert (response.status_code, code(response)) == (400, "invalid_request")
    assert not Loan.objects.exists()


def test_dry_run_with_a_bad_body_is_400(api):
    response = post_json(api, "/lendBook/?dry_run=true", {"user_email": "x", "book_id": 1})
    assert (response.status_code, code(response)) == (400, "invalid_request")
