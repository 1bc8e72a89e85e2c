"""Blocks, overrides and the calendar in the write path: lend, renew and reserve refuse a blocked
patron with 403 `patron_blocked` (every block in `details`); a staff override with a reason lifts the
named refusals (never `no_copy_available` or `already_borrowed`) and shows in the loan's history; due
dates are the end of an open day; staff change a due date (`POST /loans/{id}/change-due-date/`)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from lending import blocks, calendar
from lending.api.permissions import create_key
from lending.models import Event, EventKind, Hold, Loan, OutboxMessage, Scope
from tests.conftest import post_json
from tests.factories import LoanFactory, days
from tests.rules import set_policy

pytestmark = pytest.mark.django_db
OVERRIDE = {"override": {"reason": "Patron's fine paid at the desk."}}


def lend(api, email, book_id, **extra):
    return post_json(api, "/lendBook/", {"user_email": email, "book_id": book_id, **extra}, **extra.pop("headers", {}))


def block(email, actions=("borrow", "renew", "reserve"), reason="Damaged books"):
    return blocks.place(email, reason=reason, actions=list(actions), expires_at=None, by="test", now=timezone.now())


def error_of(response) -> dict:
    return response.json()["error"]


# --- Blocks refuse ---------------------------------------------------------------------------------
def test_a_blocked_patron_may_not_borrow_and_status_says_why(api, patron, book):
    placed = block(patron, actions=["borrow"])
    refused = lend(api, patron, book["id"])
    assert refused.status_code == 403
    error = error_of(refused)
    assert error["code"] == "patron_blocked"
    assert error["details"]["blocks"] == [
        {
            "code": "manual_block",
            "message": "Blocked by staff: Damaged books",
            "actions": ["borrow"],
            "block_id": placed.pk,
            "reason": "Damaged books",
        }
    ]
    assert not Loan.objects.filter(user_email=patron).exists()
    status = api.get(f"/patrons/{patron}/status/").json()
    assert status["borrow"]["allowed"] is False and status["reserve"]["allowed"] is True


def test_a_block_on_borrowing_does_not_stop_a_return(api, patron, book):
    assert lend(api, patron, book["id"]).status_code == 201
    block(patron)
    assert post_json(api, "/returnBook/", {"user_email": patron, "book_id": book["id"]}).status_code == 200


def test_a_blocked_patron_may_not_renew(api, patron, book):
    assert lend(api, patron, book["id"]).status_code == 201
    block(patron, actions=["renew"])
    refused = post_json(api, "/renewBook/", {"user_email": patron, "book_id": book["id"]})
    assert refused.status_code == 403 and error_of(refused)["code"] == "patron_blocked"
    assert Loan.objects.get(user_email=patron).renewals == 0


def test_a_blocked_patron_may_not_reserve(api, peers, patron, book):
    other = peers.user.add_user(f"other-{uuid.uuid4().hex[:8]}@example.com")["email"]
    assert lend(api, other, book["id"]).status_code == 201
    block(patron, actions=["reserve"])
    refused = post_json(api, "/reserveBook/", {"user_email": patron, "book_id": book["id"]})
    assert refused.status_code == 403 and error_of(refused)["code"] == "patron_blocked"
    assert not Hold.objects.filter(user_email=patron).exists()


def test_automated_blocks_refuse_with_patron_blocked(api, patron, book, settings):
    settings.BLOCK_MAX_OVERDUE_LOANS = 2
    LoanFactory(user_email=patron, due_in=days(-2))
    LoanFactory(user_email=patron, due_in=days(-1))
    refused = lend(api, patron, book["id"])
    assert refused.status_code == 403
    assert [b["code"] for b in error_of(refused)["details"]["blocks"]] == ["too_many_overdue_loans"]


def test_a_loan_overdue_too_long_blocks(api, patron, book, settings):
    settings.BLOCK_MAX_OVERDUE_DAYS = 10
    LoanFactory(user_email=patron, due_in=days(-11))
    refused = lend(api, patron, book["id"])
    assert refused.status_code == 403
    assert [b["code"] for b in error_of(refused)["details"]["blocks"]] == ["loan_overdue_too_long"]


def test_the_dry_run_reports_the_block(api, patron, book):
    block(patron, actions=["borrow"])
    answer = post_json(api, "/lendBook/?dry_run=true", {"user_email": patron, "book_id": book["id"]})
    assert answer.status_code == 200
    assert answer.json()["would_succeed"] is False and answer.json()["error"]["code"] == "patron_blocked"


# --- Overrides -------------------------------------------------------------------------------------
def test_an_override_lends_to_a_blocked_patron_and_shows_in_the_history(api, patron, book):
    block(patron)
    lent = lend(api, patron, book["id"], **OVERRIDE)
    assert lent.status_code == 201, lent.content
    loan_id = lent.json()["id"]
    history = api.get(f"/loans/{loan_id}/history/").json()["results"]
    assert history[0]["kind"] == "lent"
    assert history[0]["reason"] == "Patron's fine paid at the desk."
    assert history[0]["caller"] == "anonymous"
    assert history[0]["data"]["override"] == {"lifted": ["patron_blocked"]}


def test_an_override_lifts_the_loan_limit_and_the_overdue_rule(api, patron, book, settings):
    set_policy(max_loans=1)
    LoanFactory(user_email=patron, due_in=days(-1))
    assert error_of(lend(api, patron, book["id"]))["code"] == "patron_has_overdue_loans"
    lent = lend(api, patron, book["id"], **OVERRIDE)
    assert lent.status_code == 201, lent.content
    event = Event.objects.get(loan_id=lent.json()["id"], kind=EventKind.LENT)
    assert event.data["override"] == {"lifted": ["patron_has_overdue_loans", "loan_limit_reached"]}


def test_an_override_never_lifts_no_copy_available_or_already_borrowed(api, peers, patron, book):
    assert lend(api, patron, book["id"]).status_code == 201
    again = lend(api, patron, book["id"], **OVERRIDE)
    assert again.status_code == 409 and error_of(again)["code"] == "already_borrowed"
    other = peers.user.add_user(f"other-{uuid.uuid4().hex[:8]}@example.com")["email"]
    none_left = lend(api, other, book["id"], **OVERRIDE)
    assert none_left.status_code == 409 and error_of(none_left)["code"] == "no_copy_available"


def test_an_override_lifts_the_renewal_limit_but_not_a_waiting_patron(api, peers, patron, book, settings):
    set_policy(renewals_max=0)
    assert lend(api, patron, book["id"]).status_code == 201
    body = {"user_email": patron, "book_id": book["id"]}
    assert error_of(post_json(api, "/renewBook/", body))["code"] == "renewal_limit_reached"
    renewed = post_json(api, "/renewBook/", {**body, **OVERRIDE})
    assert renewed.status_code == 200, renewed.content
    event = Event.objects.get(loan__user_email=patron, kind=EventKind.RENEWED)
    assert event.reason and event.data["override"] == {"lifted": ["renewal_limit_reached"]}
    other = peers.user.add_user(f"other-{uuid.uuid4().hex[:8]}@example.com")["email"]
    assert post_json(api, "/reserveBook/", {"user_email": other, "book_id": book["id"]}).status_code == 201
    waiting = post_json(api, "/renewBook/", {**body, **OVERRIDE})
    assert waiting.status_code == 409 and error_of(waiting)["code"] == "book_reserved_by_others"


def test_an_override_renews_an_overdue_loan(api, patron, book):
    assert lend(api, patron, book["id"]).status_code == 201
    Loan.objects.filter(user_email=patron).update(date_due=timezone.now() - days(1))
    body = {"user_email": patron, "book_id": book["id"]}
    assert error_of(post_json(api, "/renewBook/", body))["code"] == "loan_overdue"
    assert post_json(api, "/renewBook/", {**body, **OVERRIDE}).status_code == 200


@pytest.mark.parametrize("override", [{}, {"reason": ""}, {"reason": 5}, "yes", None, {"reason": "x" * 1001}])
def test_an_override_without_a_reason_is_400_and_writes_nothing(api, patron, book, override):
    answer = lend(api, patron, book["id"], override=override)
    assert answer.status_code == 400, answer.content
    assert error_of(answer)["code"] == "invalid_request"
    assert "override" in error_of(answer)["details"]
    assert not Loan.objects.exists()


def test_an_override_needs_the_override_scope(api, patron, book, settings):
    settings.REQUIRE_API_KEY = True
    block(patron)
    desk = create_key("desk", [Scope.CIRCULATION])[1]
    refused = post_json(
        api, "/lendBook/", {"user_email": patron, "book_id": book["id"], **OVERRIDE}, Authorization=f"Api-Key {desk}"
    )
    assert refused.status_code == 403
    error = error_of(refused)
    assert error["code"] == "insufficient_scope" and error["details"]["required_scope"] == "override"
    assert not Loan.objects.exists()
    supervisor = create_key("supervisor", [Scope.CIRCULATION, Scope.OVERRIDE])[1]
    lent = post_json(
        api,
        "/lendBook/",
        {"user_email": patron, "book_id": book["id"], **OVERRIDE},
        Authorization=f"Api-Key {supervisor}",
    )
    assert lent.status_code == 201, lent.content
    event = Event.objects.get(loan_id=lent.json()["id"], kind=EventKind.LENT)
    assert event.caller == "supervisor" and event.reason == OVERRIDE["override"]["reason"]


def test_an_override_of_a_reservation_is_recorded_on_the_hold(api, peers, patron, book):
    other = peers.user.add_user(f"other-{uuid.uuid4().hex[:8]}@example.com")["email"]
    assert lend(api, other, book["id"]).status_code == 201
    block(patron, actions=["reserve"])
    placed = post_json(api, "/reserveBook/", {"user_email": patron, "book_id": book["id"], **OVERRIDE})
    assert placed.status_code == 201, placed.content
    event = Event.objects.get(hold__user_email=patron, kind=EventKind.RESERVED)
    assert event.data["override"] == {"lifted": ["patron_blocked"]}


# --- Due dates on the calendar ---------------------------------------------------------------------
def test_a_lend_is_due_at_the_end_of_the_next_open_day(api, patron, book, settings):
    set_policy(loan_days=5, renewal_days=5)
    settings.LIBRARY_TIME_ZONE = "Europe/Paris"
    calendar.set_calendar(["sunday"], ["2026-12-07"])
    with time_machine.travel(datetime(2026, 12, 1, 10, 0, tzinfo=calendar.library_zone()), tick=False):
        lent = lend(api, patron, book["id"])  # Tuesday + 5 days = Sunday 6th: closed; Monday 7th: closed
    assert lent.status_code == 201
    due = Loan.objects.get(pk=lent.json()["id"]).date_due.astimezone(calendar.library_zone())
    assert (due.date(), due.hour, due.minute) == (date(2026, 12, 8), 23, 59)


def test_a_renewal_moves_the_due_date_off_closed_days(api, patron, book, settings):
    set_policy(loan_days=7, renewal_days=7)
    with time_machine.travel(datetime(2026, 12, 1, 10, 0, tzinfo=calendar.library_zone()), tick=False):
        assert lend(api, patron, book["id"]).status_code == 201  # due Tuesday 8th
        calendar.set_calendar([], ["2026-12-15"])
        renewed = post_json(api, "/renewBook/", {"user_email": patron, "book_id": book["id"]})
    assert renewed.status_code == 200
    assert Loan.objects.get(user_email=patron).date_due.date() == date(2026, 12, 16)


# --- Due-date change by staff ----------------------------------------------------------------------
def change(api, loan_id, **body):
    return post_json(api, f"/loans/{loan_id}/change-due-date/", {"reason": "Patron in hospital", **body})


def test_staff_change_a_due_date_the_patron_is_told_and_the_history_says_why(api, settings):
    calendar.set_calendar(["sunday"], [])
    loan = LoanFactory(due_in=days(3))
    previous = loan.date_due
    target = calendar.library_day(timezone.now()) + timedelta(days=20)
    answer = change(api, loan.pk, date_due=target.isoformat())
    assert answer.status_code == 200, answer.content
    loan.refresh_from_db()
    expected = calendar.end_of_open_day(datetime.combine(target, datetime.min.time(), tzinfo=calendar.library_zone()))
    assert loan.date_due == expected and loan.date_due.weekday() != 6
    assert answer.json()["date_due"] == expected.isoformat().replace("+00:00", "Z")
    event = Event.objects.get(loan=loan, kind=EventKind.DUE_DATE_CHANGED)
    assert event.reason == "Patron in hospital"
    assert event.data["previous"] == previous.isoformat().replace("+00:00", "Z")
    notice = OutboxMessage.objects.get(payload__message_type="due_date_changed")
    assert notice.payload["loan_id"] == loan.pk


def test_an_overdue_loan_given_a_later_due_date_is_active_again(api):
    loan = LoanFactory(due_in=days(-2), status="OVERDUE")
    answer = change(api, loan.pk, date_due=(timezone.now() + days(5)).isoformat())
    assert answer.status_code == 200 and answer.json()["status"] == "ACTIVE"


@pytest.mark.parametrize("day", ["2000-01-01", "9999-12-31"])
def test_a_due_date_in_the_past_or_too_far_is_422_and_writes_nothing(api, day):
    loan = LoanFactory()
    answer = change(api, loan.pk, date_due=day)
    assert answer.status_code == 422 and error_of(answer)["code"] == "date_out_of_range"
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"date_due": "tomorrow"},
        {"date_due": "2026-12-24T10:00:00"},
        {"date_due": 20261224},
        {},
        {"date_due": "2030-01-01", "reason": ""},
    ],
)
def test_a_bad_due_date_change_is_400_and_writes_nothing(api, body):
    loan = LoanFactory()
    before = loan.date_due
    answer = post_json(api, f"/loans/{loan.pk}/change-due-date/", {"reason": "x", **body})
    assert answer.status_code == 400, answer.content
    loan.refresh_from_db()
    assert loan.date_due == before and not Event.objects.exists()


def test_a_returned_loans_due_date_does_not_change(api):
    loan = LoanFactory(returned=True)
    answer = change(api, loan.pk, date_due="2030-01-01")
    assert answer.status_code == 409 and error_of(answer)["code"] == "loan_not_open"
    assert change(api, 10**9, date_due="2030-01-01").status_code == 404
    assert change(api, 2**63, date_due="2030-01-01").status_code == 404


def test_a_dry_run_with_a_malformed_override_is_400_not_an_answer(api, patron, book):
    answer = post_json(api, "/lendBook/?dry_run=true", {"user_email": patron, "book_id": book["id"], "override": {}})
    assert answer.status_code == 400 and error_of(answer)["code"] == "invalid_request"
