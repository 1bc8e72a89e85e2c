"""Fines through the API (PostgreSQL): a late return or check-in assesses its fine from the loan's policy
snapshot (judged at `returned_at`), a late renewal its lateness so far, a lost item its fees and, found
later, their refund; each assessment once, with its Fees message and its event; the desk's quote."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from lending import calendar
from lending.fines import FineAssessment
from lending.models import Event, Loan, OutboxKind, OutboxMessage
from lending.patron_ref import patron_ref
from tests.conftest import post_json
from tests.rules import set_policy

pytestmark = pytest.mark.django_db

FINED = {"fine_per_day": Decimal("0.50"), "fine_grace_days": 2, "fine_max": Decimal("5.00")}


@pytest.fixture
def fined(db):
    set_policy(**FINED, lost_item_fee=Decimal("25.00"), lost_processing_fee=Decimal("5.00"))


def lend_late(api, patron, book, *, days_late: int) -> Loan:
    """A loan due `days_late` library days ago (its due day ended that many days before today's)."""
    lent = post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})
    assert lent.status_code == 201, lent.json()
    due = calendar.end_of_day(calendar.library_day(timezone.now()) - timedelta(days=days_late))
    Loan.objects.filter(pk=lent.json()["id"]).update(date_due=due, date_borrowed=due - timedelta(days=30))
    return Loan.objects.get(pk=lent.json()["id"])


def give_back(api, patron, book, **body):
    return post_json(api, "/returnBook/", {"user_email": patron, "book_id": book["id"], **body})


def fees_sent(loan: Loan) -> list[dict]:
    return [
        m.payload
        for m in OutboxMessage.objects.filter(kind=OutboxKind.FEE).order_by("id")
        if m.payload["loan_id"] == loan.pk
    ]


def test_a_return_within_the_grace_owes_nothing(api, patron, book, fined):
    loan = lend_late(api, patron, book, days_late=2)
    assert give_back(api, patron, book).status_code == 200
    assert api.get(f"/loans/{loan.pk}/").json()["fine"] is None
    assert not FineAssessment.objects.filter(loan=loan).exists() and fees_sent(loan) == []


def test_a_late_return_beyond_the_grace_owes_the_whole_period(api, patron, book, fined):
    loan = lend_late(api, patron, book, days_late=3)
    assert give_back(api, patron, book).status_code == 200

    body = api.get(f"/loans/{loan.pk}/").json()
    assert body["fine"] == {"amount": "1.50", "currency": "EUR", "days_charged": 3}
    [assessment] = FineAssessment.objects.filter(loan=loan)
    assert (assessment.kind, assessment.amount) == ("overdue", Decimal("1.50"))
    [fee] = fees_sent(loan)
    assert fee == {
        "id": str(assessment.id),
        "patron_ref": patron_ref(patron),
        "loan_id": loan.pk,
        "kind": "overdue",
        "amount": "1.50",
        "currency": "EUR",
    }
    assert patron not in str(fee)  # the Fees service never learns the email
    event = Event.objects.get(loan=loan, kind="fine_assessed")
    assert event.data["amount"] == "1.50" and event.data["assessment_id"] == str(assessment.id)


def test_the_fine_is_capped(api, patron, book, fined):
    loan = lend_late(api, patron, book, days_late=40)
    give_back(api, patron, book)
    assert api.get(f"/loans/{loan.pk}/").json()["fine"] == {"amount": "5.00", "currency": "EUR", "days_charged": 40}


def test_a_back_dated_return_owes_what_it_owed_that_day(api, patron, book, fined):
    loan = lend_late(api, patron, book, days_late=6)
    that_day = calendar.end_of_day(calendar.library_day(timezone.now()) - timedelta(days=2)) - timedelta(hours=1)
    assert give_back(api, patron, book, returned_at=that_day.isoformat()).status_code == 200
    assert api.get(f"/loans/{loan.pk}/").json()["fine"]["days_charged"] == 4


def test_closed_days_not_counted_when_the_policy_says_so(api, patron, book, fined):
    set_policy(fine_counts_closed_days=False)
    today = calendar.library_day(timezone.now())
    closed = [(today - timedelta(days=d)).isoformat() for d in (1, 2)]
    assert api.put("/calendar/", {"closed_weekdays": [], "closed_dates": closed}, format="json").status_code == 200
    loan = lend_late(api, patron, book, days_late=5)
    give_back(api, patron, book)
    assert api.get(f"/loans/{loan.pk}/").json()["fine"] == {"amount": "1.50", "currency": "EUR", "days_charged": 3}


def test_a_late_renewal_assesses_its_lateness_and_the_next_counts_from_the_new_due_date(
    api, patron, book, fined, settings
):
    settings.LOAN_RENEW_OVERDUE_ALLOWED = True
    loan = lend_late(api, patron, book, days_late=4)
    renewed = post_json(api, "/renewBook/", {"user_email": patron, "book_id": book["id"]})
    assert renewed.status_code == 200, renewed.json()
    assert renewed.json()["fine"] == {"amount": "2.00", "currency": "EUR", "days_charged": 4}
    give_back(api, patron, book)  # in time now
    assert FineAssessment.objects.filter(loan=loan).count() == 1


def test_a_second_return_of_the_same_loan_assesses_nothing_more(api, patron, book, fined):
    loan = lend_late(api, patron, book, days_late=3)
    assert give_back(api, patron, book).status_code == 200
    again = give_back(api, patron, book)
    assert again.status_code == 404  # nothing left to return: no second fine
    assert FineAssessment.objects.filter(loan=loan).count() == 1


def test_the_same_idempotency_key_replays_the_return_without_a_second_fee(api, patron, book, fined):
    loan = lend_late(api, patron, book, days_late=3)
    headers = {"HTTP_IDEMPOTENCY_KEY": "late-return-once"}
    answers = [
        api.post("/returnBook/", {"user_email": patron, "book_id": book["id"]}, format="json", **headers)
        for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert FineAssessment.objects.filter(loan=loan).count() == 1 and len(fees_sent(loan)) == 1


def test_a_lost_item_owes_its_fees_and_found_later_gets_the_item_fee_back(api, patron, book, fined):
    loan = lend_late(api, patron, book, days_late=1)
    assert post_json(api, f"/loans/{loan.pk}/declare-lost/", {}).status_code == 200
    assert [(f["kind"], f["amount"]) for f in fees_sent(loan)] == [("lost_item", "25.00"), ("processing", "5.00")]

    assert post_json(api, f"/loans/{loan.pk}/resolve/", {"outcome": "found"}).status_code == 200
    assert [(f["kind"], f["amount"]) for f in fees_sent(loan)][-1] == ("refund", "25.00")
    assert api.get(f"/loans/{loan.pk}/").json()["fine"] is None  # no overdue fine on top of the lost fees


def test_a_check_in_assesses_like_a_return(api, peers, patron, fined):
    added = peers.book.add_book("Checked in late", "A", 1)
    barcode = added["items"][0]["barcode"]
    lent = post_json(api, "/checkouts/", {"item_barcode": barcode, "user_email": patron}).json()
    due = calendar.end_of_day(calendar.library_day(timezone.now()) - timedelta(days=3))
    Loan.objects.filter(pk=lent["id"]).update(date_due=due, date_borrowed=due - timedelta(days=10))
    checked_in = post_json(api, "/checkins/", {"item_barcode": barcode})
    assert checked_in.json()["loan"]["fine"] == {"amount": "1.50", "currency": "EUR", "days_charged": 3}


# --- The quote ---------------------------------------------------------------------------------------
def test_the_quote_prices_a_return_now_or_later_and_changes_nothing(api, patron, book, fined):
    loan = lend_late(api, patron, book, days_late=3)
    now = api.get(f"/loans/{loan.pk}/fine/")
    assert now.status_code == 200, now.json()
    assert {k: now.json()[k] for k in ("amount", "currency", "days_charged")} == {
        "amount": "1.50",
        "currency": "EUR",
        "days_charged": 3,
    }
    later = (timezone.now() + timedelta(days=2)).isoformat()
    assert api.get(f"/loans/{loan.pk}/fine/", {"returned_at": later}).json()["amount"] == "2.50"
    assert not FineAssessment.objects.exists() and Loan.objects.get(pk=loan.pk).date_returned is None


def test_a_quote_of_a_loan_in_time_is_zero_and_of_a_returned_one_a_409(api, patron, book, fined):
    lent = post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]}).json()
    assert api.get(f"/loans/{lent['id']}/fine/").json()["amount"] == "0.00"
    give_back(api, patron, book)
    refused = api.get(f"/loans/{lent['id']}/fine/")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "loan_not_open")


@pytest.mark.parametrize("returned_at", ["yesterday", "2000-01-01T00:00:00Z", "9999-01-01T00:00:00Z"])
def test_a_quote_for_an_impossible_moment_is_refused(api, patron, book, fined, returned_at):
    lent = post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]}).json()
    refused = api.get(f"/loans/{lent['id']}/fine/", {"returned_at": returned_at})
    assert refused.status_code in (400, 422)
    assert refused.json()["error"]["code"] in ("invalid_request", "date_out_of_range")


def test_the_quotes_returned_at_is_documented_as_the_moments_it_accepts():
    """A `returned_at` the document calls valid is never a 400: the parameter carries the pattern of the
    moments the service reads (a UTC offset within ±14:00, years 1000-2999), so a client (or the contract
    fuzzer) is told, as for the book drop's `returned_at`."""
    import re

    from drf_spectacular.generators import SchemaGenerator

    from lending.api.circulation import RETURNED_AT_PATTERN

    schema = SchemaGenerator().get_schema(request=None, public=True)
    [parameter] = [
        p for p in schema["paths"]["/loans/{loan_id}/fine/"]["get"]["parameters"] if p["name"] == "returned_at"
    ]
    assert parameter["schema"]["pattern"] == RETURNED_AT_PATTERN
    assert not re.match(RETURNED_AT_PATTERN, "4689-08-01T21:59:56.4-22:37")  # the fuzzer's 400, now undocumented


def test_a_documented_moment_before_the_loan_is_422_not_400(api, patron, book, fined):
    lent = post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]}).json()
    refused = api.get(f"/loans/{lent['id']}/fine/", {"returned_at": "2000-01-01T00:00:00+14:00"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "date_out_of_range")
    assert refused.json()["error"]["details"] == {"returned_at": ["Must not be before the loan date."]}


def test_the_fine_is_published_as_loan_fine_assessed_with_the_patron_ref_only(api, patron, book, fined, settings):
    settings.EVENTS_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"  # written to the outbox, not published here
    loan = lend_late(api, patron, book, days_late=3)
    give_back(api, patron, book)
    [published] = [
        m.payload
        for m in OutboxMessage.objects.filter(kind=OutboxKind.EVENT)
        if m.payload["type"] == "org.library.lending.loan.fine_assessed.v1"
        or m.payload["type"].endswith("loan.fine_assessed.v1")
    ]
    assessment = FineAssessment.objects.get(loan=loan)
    assert published["data"]["fee"] == {
        "id": str(assessment.id),
        "kind": "overdue",
        "amount": "1.50",
        "currency": "EUR",
        "days_charged": 3,
    }
    assert published["data"]["patron_ref"] == patron_ref(patron) and patron not in str(published)
