"""Every write is accountable: each change of a loan or hold records an event (what, when, which
caller, which request), numbered per subject, in the change's own transaction; `GET
/loans/{id}/history/` and the admin show them; the request log line names the caller's key prefix."""

from __future__ import annotations

import io
import json
import logging
import uuid
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from lending import notices, services
from lending.api.permissions import create_key
from lending.events import history
from lending.models import Event, EventKind, Hold, HoldStatus, Loan, Scope
from lending.observability.logs import json_formatter
from lending.services import return_book
from lending.write_context import WriteContext
from tests.conftest import post_json
from tests.factories import HoldFactory, LoanFactory, days

pytestmark = pytest.mark.django_db


@pytest.fixture
def desk(settings):
    """Keys on; a circulation key named `circulation-desk`."""
    settings.REQUIRE_API_KEY = True
    api_key, key = create_key("circulation-desk", [Scope.CIRCULATION, Scope.PATRON_READ])
    return {"name": "circulation-desk", "prefix": api_key.prefix, "key": key}


@pytest.fixture
def readers(peers):
    return {role: peers.user.add_user(f"{role}-{uuid.uuid4().hex[:8]}@example.com")["email"] for role in ("a", "b")}


def write(api, path: str, email: str, book_id: int, *, key: str | None = None, request_id: str | None = None):
    headers = {}
    if key:
        headers["Authorization"] = f"Api-Key {key}"
    if request_id:
        headers["X-Request-ID"] = request_id
    return post_json(api, path, {"user_email": email, "book_id": book_id}, **headers)


def events(**subject) -> list[tuple[int, str, str, str, str]]:
    return list(
        Event.objects.filter(**subject)
        .order_by("sequence")
        .values_list("sequence", "kind", "caller", "caller_key_prefix", "request_id")
    )


def test_every_api_write_records_its_event_with_the_caller_and_request(api, peers, desk, readers):
    book = peers.book.add_book("Dune", "Herbert", 1)["id"]
    by_desk = (desk["name"], desk["prefix"])
    assert write(api, "/lendBook/", readers["a"], book, key=desk["key"], request_id="req-lend").status_code == 201
    assert write(api, "/renewBook/", readers["a"], book, key=desk["key"], request_id="req-renew").status_code == 200
    assert write(api, "/reserveBook/", readers["b"], book, key=desk["key"], request_id="req-reserve").status_code == 201
    assert write(api, "/returnBook/", readers["a"], book, key=desk["key"], request_id="req-return").status_code == 200
    assert write(api, "/lendBook/", readers["b"], book, key=desk["key"], request_id="req-pickup").status_code == 201

    first_loan, second_loan = Loan.objects.filter(book_id=book).order_by("id")
    hold = Hold.objects.get(book_id=book)
    assert events(loan=first_loan) == [
        (1, EventKind.LENT, *by_desk, "req-lend"),
        (2, EventKind.RENEWED, *by_desk, "req-renew"),
        (3, EventKind.RETURNED, *by_desk, "req-return"),
    ]
    # The return kept the copy for the waiting patron, who then borrowed it: the hold's own history.
    assert events(hold=hold) == [
        (1, EventKind.RESERVED, *by_desk, "req-reserve"),
        (2, EventKind.HOLD_READY, *by_desk, "req-return"),
        (3, EventKind.HOLD_FULFILLED, *by_desk, "req-pickup"),
    ]
    assert events(loan=second_loan) == [(1, EventKind.LENT, *by_desk, "req-pickup")]
    assert Event.objects.get(hold=hold, kind=EventKind.HOLD_FULFILLED).data == {"loan_id": second_loan.pk}
    assert Event.objects.get(loan=second_loan).data["hold_id"] == hold.pk
    renewed = Event.objects.get(loan=first_loan, kind=EventKind.RENEWED)
    # As the API writes the loan's due date.
    assert renewed.data == {"renewals": 1, "date_due": first_loan.date_due.isoformat().replace("+00:00", "Z")}


def test_a_cancellation_is_recorded_with_its_caller(api, peers, desk, readers):
    book = peers.book.add_book("Emma", "Austen", 1)["id"]
    write(api, "/lendBook/", readers["a"], book, key=desk["key"])
    write(api, "/reserveBook/", readers["b"], book, key=desk["key"])
    assert write(api, "/cancelReservation/", readers["b"], book, key=desk["key"], request_id="req-c").status_code == 200
    hold = Hold.objects.get(book_id=book)
    assert events(hold=hold)[-1] == (2, EventKind.CANCELLED, desk["name"], desk["prefix"], "req-c")


def test_with_keys_off_the_caller_is_anonymous(api, peers, settings, readers):
    settings.REQUIRE_API_KEY = False
    book = peers.book.add_book("Ulysses", "Joyce", 1)["id"]
    assert write(api, "/lendBook/", readers["a"], book, request_id="req-anon").status_code == 201
    assert events(loan=Loan.objects.get(book_id=book)) == [(1, EventKind.LENT, "anonymous", "", "req-anon")]


def test_a_key_sent_while_keys_are_off_is_not_the_caller(api, peers, settings, readers):
    """With keys off the header is ignored: an unverified key must not name the caller."""
    settings.REQUIRE_API_KEY = False
    book = peers.book.add_book("Ulysses", "Joyce", 1)["id"]
    write(api, "/lendBook/", readers["a"], book, key="forged.key")
    assert events(loan=Loan.objects.get(book_id=book))[0][2:4] == ("anonymous", "")


def test_scheduled_changes_are_made_by_the_scheduler(api, peers, settings, readers):
    settings.REQUIRE_API_KEY = False
    book = peers.book.add_book("Middlemarch", "Eliot", 1)["id"]
    write(api, "/lendBook/", readers["a"], book)
    write(api, "/reserveBook/", readers["b"], book)
    write(api, "/returnBook/", readers["a"], book)
    loan = Loan.objects.get(book_id=book)
    hold = Hold.objects.get(book_id=book)
    assert hold.status == HoldStatus.READY

    later = max(hold.pickup_deadline, loan.date_due) + timedelta(minutes=1)
    with time_machine.travel(later):
        call_command("send_notices", stdout=StringIO())
    assert events(hold=hold)[-1][1:4] == (EventKind.HOLD_EXPIRED, "system:scheduler", "")

    # A loan that falls overdue, and its notice.
    write(api, "/lendBook/", readers["b"], peers.book.add_book("Persuasion", "Austen", 1)["id"])
    overdue = Loan.objects.get(user_email=readers["b"], date_returned__isnull=True)
    with time_machine.travel(overdue.date_due + timedelta(hours=1)):
        call_command("send_notices", stdout=StringIO())
    kinds = [(kind, caller) for _, kind, caller, _, _ in events(loan=overdue)]
    assert kinds == [
        (EventKind.LENT, "anonymous"),
        (EventKind.MARKED_OVERDUE, "system:scheduler"),
        (EventKind.NOTICE_QUEUED, "system:scheduler"),
    ]
    assert Event.objects.get(loan=overdue, kind=EventKind.NOTICE_QUEUED).data["notice_type"] == "overdue_notice"


def test_a_due_soon_reminder_is_recorded_too(settings):
    loan = LoanFactory(user_email="soon@example.com", book_id=1, due_in=days(1))
    assert notices.send_due_soon_reminders() == 1
    assert events(loan=loan) == [(1, EventKind.NOTICE_QUEUED, "system:scheduler", "", "")]


def test_a_job_run_by_a_named_caller_keeps_that_caller():
    loan = LoanFactory(user_email="late@example.com", book_id=2, borrowed_ago=days(90), due_in=days(-1))
    notices.mark_overdue_loans(context=WriteContext(caller=history.Caller("system:retention")))
    assert events(loan=loan)[0][2] == "system:retention"


def test_a_refused_write_records_nothing(api, peers, desk, readers):
    book = peers.book.add_book("Dune", "Herbert", 1)["id"]
    write(api, "/lendBook/", readers["a"], book, key=desk["key"])
    before = Event.objects.count()
    assert write(api, "/lendBook/", readers["b"], book, key=desk["key"]).status_code == 409  # no copy
    assert write(api, "/renewBook/", readers["b"], book, key=desk["key"]).status_code == 404  # no loan
    assert write(api, "/cancelReservation/", readers["b"], book, key=desk["key"]).status_code == 404
    assert Event.objects.count() == before


def test_the_event_commits_or_rolls_back_with_its_change(api, peers, settings, readers, monkeypatch):
    """A return whose outbox write fails (in the database, after the loan was closed) leaves the loan
    open and no `returned` event behind."""
    settings.REQUIRE_API_KEY = False
    book = peers.book.add_book("Dune", "Herbert", 1)["id"]
    write(api, "/lendBook/", readers["a"], book)

    def failing_insert(messages):  # a row the table refuses: no kind, no key
        return "INSERT INTO lending_outboxmessage (book_id) VALUES (%s)", [book]

    monkeypatch.setattr(return_book, "messages_insert", failing_insert)
    with pytest.raises(IntegrityError):
        services.loan_return(user_email=readers["a"], book_id=book)
    loan = Loan.objects.get(book_id=book)
    assert loan.date_returned is None
    assert [kind for _, kind, *_ in events(loan=loan)] == [EventKind.LENT]


def test_sequences_are_per_subject_and_a_reused_number_is_refused():
    now = timezone.now()
    loans = [LoanFactory(user_email=f"s{i}@example.com", book_id=i) for i in (1, 2)]
    history.record(
        history.loan_event(loans[0], EventKind.LENT, at=now, caller=history.SYSTEM),
        history.loan_event(loans[1], EventKind.LENT, at=now, caller=history.SYSTEM),
        history.loan_event(loans[0], EventKind.RENEWED, at=now, caller=history.SYSTEM),
    )
    history.record(history.loan_event(loans[0], EventKind.RETURNED, at=now, caller=history.SYSTEM))
    assert [seq for seq, *_ in events(loan=loans[0])] == [1, 2, 3]
    assert [seq for seq, *_ in events(loan=loans[1])] == [1]
    with pytest.raises(IntegrityError), transaction.atomic():
        Event.objects.create(loan=loans[0], sequence=2, kind=EventKind.RENEWED, occurred_at=now, caller="x")
    with pytest.raises(IntegrityError), transaction.atomic():  # one subject, never two
        HoldFactory(user_email="h@example.com", book_id=1)
        Event.objects.create(
            loan=loans[0], hold=Hold.objects.get(), sequence=9, kind=EventKind.LENT, occurred_at=now, caller="x"
        )


def test_events_never_hold_the_patrons_email(api, peers, settings, readers):
    settings.REQUIRE_API_KEY = False
    book = peers.book.add_book("Dune", "Herbert", 1)["id"]
    for path, reader in (("/lendBook/", "a"), ("/reserveBook/", "b"), ("/returnBook/", "a"), ("/lendBook/", "b")):
        write(api, path, readers[reader], book)
    stored = json.dumps(list(Event.objects.values()), default=str)
    assert readers["a"] not in stored and readers["b"] not in stored


def test_the_history_endpoint_lists_a_loans_events_with_their_callers(api, peers, desk, readers):
    book = peers.book.add_book("Dune", "Herbert", 1)["id"]
    write(api, "/lendBook/", readers["a"], book, key=desk["key"], request_id="req-h1")
    other = create_key("returns-kiosk", [Scope.CIRCULATION])
    write(api, "/returnBook/", readers["a"], book, key=other[1], request_id="req-h2")
    loan = Loan.objects.get(book_id=book)

    reader = create_key("patron-app", [Scope.PATRON_READ])[1]
    response = api.get(f"/loans/{loan.pk}/history/", headers={"Authorization": f"Api-Key {reader}"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["count"] == 2 and response["X-Total-Count"] == "2"
    assert [
        (e["sequence"], e["kind"], e["caller"], e["caller_key_prefix"], e["request_id"]) for e in body["results"]
    ] == [
        (1, "lent", "circulation-desk", desk["prefix"], "req-h1"),
        (2, "returned", "returns-kiosk", other[0].prefix, "req-h2"),
    ]
    assert body["results"][0]["subject"] == f"loan/{loan.pk}"
    assert desk["key"] not in response.content.decode() and other[1] not in response.content.decode()

    paged = api.get(f"/loans/{loan.pk}/history/?limit=1&offset=1", headers={"Authorization": f"Api-Key {reader}"})
    assert [e["kind"] for e in paged.json()["results"]] == ["returned"]


@pytest.mark.parametrize("loan_id", ["999999", str(2**63)])
def test_the_history_of_no_loan_is_404(api, settings, loan_id):
    settings.REQUIRE_API_KEY = False
    response = api.get(f"/loans/{loan_id}/history/")
    assert response.status_code == 404 and response.json()["error"]["code"] == "loan_not_found"


def test_the_admin_shows_a_loans_history_read_only(client, api, peers, desk, readers):
    book = peers.book.add_book("Dune", "Herbert", 1)["id"]
    write(api, "/lendBook/", readers["a"], book, key=desk["key"], request_id="req-admin")
    loan = Loan.objects.get(book_id=book)
    staff = get_user_model().objects.create_superuser("librarian", "librarian@example.com", "pw")
    client.force_login(staff)
    page = client.get(reverse("admin:lending_loan_change", args=[loan.pk])).content.decode()
    assert "circulation-desk" in page and desk["prefix"] in page and "req-admin" in page
    assert 'name="events-TOTAL_FORMS"' in page  # the inline, with no editable field
    assert 'name="events-0-kind"' not in page


def test_the_request_line_names_the_callers_key_prefix(api, peers, desk, readers):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    logging.getLogger().addHandler(handler)
    try:
        book = peers.book.add_book("Dune", "Herbert", 1)["id"]
        write(api, "/lendBook/", readers["a"], book, key=desk["key"], request_id="req-log-key")
        api.get("/policy/", headers={"X-Request-ID": "req-log-nokey"})  # 401: no key
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    finished = {line["request_id"]: line for line in lines if line["event"] == "request_finished"}
    assert finished["req-log-key"]["api_key_prefix"] == desk["prefix"]
    assert finished["req-log-nokey"]["api_key_prefix"] is None
    assert desk["key"] not in stream.getvalue()
