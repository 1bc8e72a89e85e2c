"""Lost and claimed-returned loans (issue 13 item 5): `POST /loans/{id}/declare-lost/`,
`/claim-returned/`, `/resolve/`; a return of one resolves it as found; the scheduler ages long-overdue
loans to lost.

A lost or claimed-returned loan keeps its copy (no one else may borrow it), is neither overdue nor
renewable, and an unresolved lost one blocks its patron.
"""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from lending.models import Event, EventKind, Loan, LoanStatus, OutboxKind, OutboxMessage
from lending.services import lost
from tests.conftest import post_json
from tests.factories import LoanFactory, days

pytestmark = pytest.mark.django_db


def lend(api, email, book_id) -> Loan:
    answer = post_json(api, "/lendBook/", {"user_email": email, "book_id": book_id})
    assert answer.status_code == 201, answer.content
    return Loan.objects.get(pk=answer.json()["id"])


def act(api, loan: Loan, action: str, **body):
    return post_json(api, f"/loans/{loan.pk}/{action}/", body)


def another_patron(peers) -> str:
    return peers.user.add_user(f"other-{uuid.uuid4().hex[:10]}@example.com")["email"]


def notices_of(loan: Loan) -> list[str]:
    messages = OutboxMessage.objects.filter(kind=OutboxKind.NOTIFICATION, payload__loan_id=loan.pk).order_by("id")
    return [message.payload["message_type"] for message in messages]


def expired_ids(api) -> list[int]:
    answer = api.get("/getExpiredBooks/").json()
    return [row["id"] for row in (answer["results"] if isinstance(answer, dict) else answer)]


def kinds_of(loan: Loan) -> list[str]:
    return list(Event.objects.filter(loan=loan).order_by("sequence").values_list("kind", flat=True))


# --- Declare lost ----------------------------------------------------------------------------------
def test_a_lost_loan_frees_no_copy_and_blocks_its_patron(api, peers, patron, book):
    loan = lend(api, patron, book["id"])
    answer = act(api, loan, "declare-lost", note="Left on a train.")
    assert answer.status_code == 200, answer.content
    assert answer.json()["status"] == "LOST" and answer.json()["date_returned"] is None
    # The copy is still out: another patron cannot borrow it.
    refused = post_json(api, "/lendBook/", {"user_email": another_patron(peers), "book_id": book["id"]})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "no_copy_available"
    # The patron is blocked while it is unresolved, and the status says why.
    status = api.get(f"/patrons/{patron}/status/").json()
    assert status["borrow"]["allowed"] is False
    assert "lost_items" in [reason["code"] for reason in status["borrow"]["reasons"]]
    assert status["counts"]["lost_loans"] == 1
    other_book = peers.book.add_book("Another", "Author", 1)
    blocked = post_json(api, "/lendBook/", {"user_email": patron, "book_id": other_book["id"]})
    assert blocked.status_code == 403 and blocked.json()["error"]["code"] == "patron_blocked"
    # Recorded with its note, the patron told, availability republished.
    declared = Event.objects.get(loan=loan, kind=EventKind.DECLARED_LOST)
    assert declared.reason == "Left on a train." and declared.data == {"was": "ACTIVE", "status": "LOST"}
    assert notices_of(loan)[-1] == "loan_declared_lost"
    assert OutboxMessage.objects.filter(kind=OutboxKind.AVAILABILITY, book_id=book["id"]).count() == 2


def test_a_lost_loan_is_not_overdue_nor_renewable_nor_redated(api, patron, book):
    loan = lend(api, patron, book["id"])
    Loan.objects.filter(pk=loan.pk).update(date_due=timezone.now() - days(3))
    assert loan.pk in expired_ids(api)
    assert act(api, loan, "declare-lost").status_code == 200
    assert loan.pk not in expired_ids(api)
    renewed = post_json(api, "/renewBook/", {"user_email": patron, "book_id": book["id"]})
    assert renewed.status_code == 409 and renewed.json()["error"]["code"] == "loan_status_conflict"
    redated = act(api, loan, "change-due-date", date_due="2031-01-01", reason="x")
    assert redated.status_code == 409 and redated.json()["error"]["code"] == "loan_status_conflict"
    assert api.get("/loans/", {"status": "LOST", "user_email": patron}).json()["results"][0]["id"] == loan.pk


def test_declaring_lost_twice_or_after_the_return_is_a_conflict(api, patron, book):
    loan = lend(api, patron, book["id"])
    assert act(api, loan, "declare-lost").status_code == 200
    again = act(api, loan, "declare-lost")
    assert again.status_code == 409 and again.json()["error"]["code"] == "loan_status_conflict"
    returned = LoanFactory(returned=True)
    closed = act(api, returned, "declare-lost")
    assert closed.status_code == 409 and closed.json()["error"]["code"] == "loan_not_open"
    assert act(api, Loan(pk=10**9), "declare-lost").status_code == 404


# --- Claimed returned ------------------------------------------------------------------------------
def test_a_claimed_returned_loan_stops_overdue_notices_and_blocks(api, patron, book, settings):
    settings.BLOCK_MAX_OVERDUE_LOANS = 1
    loan = lend(api, patron, book["id"])
    Loan.objects.filter(pk=loan.pk).update(date_due=timezone.now() - days(3))
    assert api.get(f"/patrons/{patron}/status/").json()["borrow"]["allowed"] is False
    assert loan.pk in expired_ids(api)
    answer = act(api, loan, "claim-returned", note="Says it went in the book drop.")
    assert answer.status_code == 200 and answer.json()["status"] == "CLAIMED_RETURNED"
    assert api.get(f"/patrons/{patron}/status/").json()["borrow"]["allowed"] is True
    assert loan.pk not in expired_ids(api)
    assert notices_of(loan)[-1] == "loan_claimed_returned"
    # Only a circulating loan can be claimed returned.
    assert act(api, loan, "claim-returned").json()["error"]["code"] == "loan_status_conflict"


# --- Resolve ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("outcome", ["found", "returned"])
def test_resolving_as_found_or_returned_puts_the_copy_back(api, peers, patron, book, outcome):
    loan = lend(api, patron, book["id"])
    assert act(api, loan, "claim-returned").status_code == 200
    answer = act(api, loan, "resolve", outcome=outcome, note="On the shelf in 823.")
    assert answer.status_code == 200, answer.content
    assert answer.json()["status"] == "RETURNED" and answer.json()["date_returned"]
    assert kinds_of(loan)[-2:] == [EventKind.RETURNED, EventKind.RESOLVED]
    resolved = Event.objects.get(loan=loan, kind=EventKind.RESOLVED)
    assert resolved.data == {"outcome": outcome, "was": "CLAIMED_RETURNED"} and resolved.reason.startswith("On the")
    assert notices_of(loan)[-1] == "loan_resolved"
    lend(api, another_patron(peers), book["id"])  # the copy is free again


def test_resolving_a_claim_as_lost_makes_it_lost(api, patron, book):
    loan = lend(api, patron, book["id"])
    assert act(api, loan, "claim-returned").status_code == 200
    answer = act(api, loan, "resolve", outcome="lost")
    assert answer.status_code == 200 and answer.json()["status"] == "LOST"
    assert Event.objects.get(loan=loan, kind=EventKind.RESOLVED).data["outcome"] == "lost"
    # A lost loan is resolved when its copy is back, not as lost again.
    again = act(api, loan, "resolve", outcome="lost")
    assert again.status_code == 409 and again.json()["error"]["code"] == "loan_status_conflict"


def test_only_lost_or_claimed_loans_are_resolved_and_the_outcome_is_checked(api, patron, book):
    loan = lend(api, patron, book["id"])
    refused = act(api, loan, "resolve", outcome="found")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "loan_status_conflict"
    invalid = act(api, loan, "resolve", outcome="stolen")
    assert invalid.status_code == 400 and "outcome" in invalid.json()["error"]["details"]
    assert Loan.objects.get(pk=loan.pk).status == LoanStatus.ACTIVE


def test_a_return_of_a_lost_loan_resolves_it_as_found(api, peers, patron, book):
    loan = lend(api, patron, book["id"])
    assert act(api, loan, "declare-lost").status_code == 200
    waiting = another_patron(peers)
    assert post_json(api, "/reserveBook/", {"user_email": waiting, "book_id": book["id"]}).status_code == 201
    returned = post_json(api, "/returnBook/", {"user_email": patron, "book_id": book["id"]})
    assert returned.status_code == 200 and returned.json()["status"] == "RETURNED"
    assert Event.objects.get(loan=loan, kind=EventKind.RESOLVED).data == {"outcome": "found", "was": "LOST"}
    # The copy came back: it goes to the patron waiting, and the lost item no longer blocks.
    assert api.get("/reservations/", {"user_email": waiting}).json()["results"][0]["status"] == "READY"
    assert api.get(f"/patrons/{patron}/status/").json()["counts"]["lost_loans"] == 0


# --- Aging to lost ---------------------------------------------------------------------------------
def test_the_scheduler_ages_long_overdue_loans_to_lost(settings):
    settings.LOST_AFTER_OVERDUE_DAYS = 30
    long_overdue = LoanFactory(due_in=days(-31))
    recently_overdue = LoanFactory(due_in=days(-29))
    claimed = LoanFactory(due_in=days(-40), status=LoanStatus.CLAIMED_RETURNED)
    assert lost.age_overdue_to_lost() == 1
    assert lost.age_overdue_to_lost() == 0  # once
    statuses = {loan.pk: loan.status for loan in Loan.objects.all()}
    assert statuses == {
        long_overdue.pk: LoanStatus.LOST,
        recently_overdue.pk: LoanStatus.ACTIVE,
        claimed.pk: LoanStatus.CLAIMED_RETURNED,
    }
    event = Event.objects.get(loan=long_overdue)
    assert (event.kind, event.caller, event.data["aged"]) == (EventKind.DECLARED_LOST, "system:scheduler", True)
    assert notices_of(long_overdue) == ["loan_declared_lost"]


def test_aging_to_lost_is_off_by_default(settings):
    assert settings.LOST_AFTER_OVERDUE_DAYS == 0
    LoanFactory(due_in=days(-400))
    assert lost.age_overdue_to_lost() == 0
    assert not Loan.objects.filter(status=LoanStatus.LOST).exists()


def test_lost_and_claimed_loans_get_no_reminder_nor_overdue_notice():
    from lending import notices

    LoanFactory(due_in=days(1), status=LoanStatus.LOST)
    LoanFactory(due_in=days(-1), status=LoanStatus.CLAIMED_RETURNED)
    circulating = LoanFactory(due_in=days(1))
    assert notices.send_due_soon_reminders() == 1
    assert notices.send_overdue_notices() == 0
    assert notices_of(circulating) == ["due_soon_reminder"]
