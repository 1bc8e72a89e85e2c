"""Renewals: `POST /renewBook/`."""

from datetime import timedelta

import pytest
from django.utils import timezone

from lending.models import Loan, LoanStatus, OutboxKind, OutboxMessage
from tests.conftest import post_json
from tests.rules import set_policy

pytestmark = pytest.mark.django_db


def renew(api, email, book_id, **headers):
    return post_json(api, "/renewBook/", {"user_email": email, "book_id": book_id}, **headers)


def code(response) -> str:
    return response.json()["error"]["code"]


@pytest.fixture
def loan(api, patron, book) -> Loan:
    response = post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})
    return Loan.objects.get(pk=response.json()["id"])


def notifications(book_id: int) -> list[str]:
    return [
        m.payload["message_type"]
        for m in OutboxMessage.objects.filter(kind=OutboxKind.NOTIFICATION, book_id=book_id).order_by("id")
    ]


@pytest.mark.parametrize("path", ["/renewBook/", "/renewBook"])
def test_renewal_extends_the_due_date_from_the_current_due_date(api, patron, book, loan, path):
    response = post_json(api, path, {"user_email": patron, "book_id": book["id"]})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["renewals"] == 1 and body["status"] == "ACTIVE"
    loan_after = Loan.objects.get(pk=loan.pk)
    assert loan_after.date_due == loan.date_due + timedelta(days=60)
    assert loan_after.date_borrowed == loan.date_borrowed
    assert notifications(book["id"]) == ["lending_confirmation", "renewal_confirmation"]
    confirmation = OutboxMessage.objects.filter(kind=OutboxKind.NOTIFICATION).last()
    assert confirmation.payload["due_date"] == loan_after.date_due.date().isoformat()


def test_renewals_stop_at_the_maximum(api, patron, book, loan):
    assert [renew(api, patron, book["id"]).status_code for _ in range(2)] == [200, 200]

    refused = renew(api, patron, book["id"])

    assert (refused.status_code, code(refused)) == (409, "renewal_limit_reached")
    loan.refresh_from_db()
    assert loan.renewals == 2
    assert notifications(book["id"]).count("renewal_confirmation") == 2


def test_the_maximum_is_the_loan_policys(api, patron, book):
    set_policy(renewals_max=0)
    post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})
    assert code(renew(api, patron, book["id"])) == "renewal_limit_reached"


def test_a_loan_renews_under_its_own_snapshot_when_the_policy_changes(api, patron, book, loan):
    set_policy(renewals_max=0, renewal_days=1)  # after the lend: the loan keeps the policy it was lent under
    renewed = renew(api, patron, book["id"])
    assert renewed.status_code == 200, renewed.json()
    loan_days = loan.policy_terms["renewal_days"]
    assert (Loan.objects.get(pk=loan.pk).date_due - loan.date_due).days in (loan_days, loan_days + 1)


def _make_overdue(loan: Loan) -> None:
    Loan.objects.filter(pk=loan.pk).update(date_due=timezone.now() - timedelta(days=3), status=LoanStatus.OVERDUE)


def test_an_overdue_loan_cannot_be_renewed(api, patron, book, loan):
    _make_overdue(loan)
    refused = renew(api, patron, book["id"])
    assert (refused.status_code, code(refused)) == (409, "loan_overdue")
    assert notifications(book["id"]) == ["lending_confirmation"]


def test_an_overdue_loan_can_be_renewed_when_the_policy_allows(api, patron, book, loan, settings):
    settings.LOAN_RENEW_OVERDUE_ALLOWED = True
    _make_overdue(loan)
    response = renew(api, patron, book["id"])
    assert response.status_code == 200
    assert response.json()["status"] == "ACTIVE"
    assert Loan.objects.get(pk=loan.pk).status == LoanStatus.ACTIVE


def test_no_renewal_while_another_patron_waits(api, peers, patron, book, loan):
    waiting = peers.user.add_user(f"waiting-{book['id']}@example.com")["email"]
    assert post_json(api, "/reserveBook/", {"user_email": waiting, "book_id": book["id"]}).status_code == 201

    refused = renew(api, patron, book["id"])

    assert (refused.status_code, code(refused)) == (409, "book_reserved_by_others")
    post_json(api, "/cancelReservation/", {"user_email": waiting, "book_id": book["id"]})
    assert renew(api, patron, book["id"]).status_code == 200


def test_renewal_without_an_open_loan_is_404(api, patron, book):
    refused = renew(api, patron, book["id"])
    assert (refused.status_code, code(refused)) == (404, "loan_not_found")


def test_renewal_works_while_every_peer_is_down(api, peers, patron, book, loan):
    for peer in peers.all():
        peer.faults.status = 503
    assert renew(api, patron, book["id"]).status_code == 200


def test_a_retried_renewal_with_the_same_key_renews_once(api, patron, book, loan):
    first = renew(api, patron, book["id"], **{"Idempotency-Key": "renew-1"})
    retry = renew(api, patron, book["id"], **{"Idempotency-Key": "renew-1"})

    assert retry.status_code == first.status_code == 200
    assert retry.json() == first.json() and retry["Idempotent-Replayed"] == "true"
    assert Loan.objects.get(pk=loan.pk).renewals == 1


def test_renewal_with_a_bad_body_is_400(api):
    response = post_json(api, "/renewBook/", {"user_email": "alice@example.com", "book_id": "1"})
    assert (response.status_code, code(response)) == (400, "invalid_request")
