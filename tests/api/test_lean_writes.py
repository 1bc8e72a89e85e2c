"""The writes' lean path (`lending.api.lean_writes`): which requests take it, and that it answers them
exactly as the DRF view does (status, body, headers), refusals and replays included."""

from __future__ import annotations

import re
import time
import uuid
from types import SimpleNamespace

import pytest

from lending.api import lean_writes, throttling
from lending.api.permissions import create_key
from lending.models import Loan, Scope
from tests.conftest import post_json

pytestmark = pytest.mark.django_db

# The headers a view sets (the middleware's are alike on both paths, and the request id differs).
VIEW_HEADERS = ("Content-Type", "Cache-Control", "Allow", "Idempotent-Replayed", "Retry-After", "WWW-Authenticate")


@pytest.fixture
def lean_calls(monkeypatch) -> list:
    """The requests the lean path wrote (or refused) itself."""
    calls: list = []
    write = lean_writes._write

    def counted(*args, **kwargs):
        calls.append(args[1].path)
        return write(*args, **kwargs)

    monkeypatch.setattr(lean_writes, "_write", counted)
    return calls


@pytest.fixture
def keyed(api, peers, settings):
    """Keys required; `api` holds a `circulation` key this process has verified already (the DRF path
    verifies a key on its first call and keeps it for API_KEY_CACHE_SECONDS)."""
    settings.REQUIRE_API_KEY = True
    settings.API_KEY_CACHE_SECONDS = 60
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {create_key('desk', [Scope.CIRCULATION])[1]}")
    assert api.get("/policy/").status_code == 200
    return api


def new_patron(peers) -> str:
    return peers.user.add_user(f"Lean-{uuid.uuid4().hex[:8]}@Example.com")["email"]


def test_a_plain_lend_and_return_take_the_lean_path(keyed, peers, book, lean_calls):
    patron = new_patron(peers)

    lent = post_json(keyed, "/lendBook/", {"user_email": patron, "book_id": book["id"]})
    returned = post_json(keyed, "/returnBook", {"book_id": book["id"], "user_email": patron})

    assert (lent.status_code, returned.status_code) == (201, 200), (lent.content, returned.content)
    assert lean_calls == ["/lendBook/", "/returnBook"]
    loan = Loan.objects.get(pk=lent.json()["id"])
    # Lower-cased as the serializer stores it, and made by the key's caller, as through DRF.
    assert loan.user_email == patron.lower() and loan.date_returned is not None
    assert {event.caller for event in loan.events.all()} == {"desk"}


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/lendBook/?dry_run=false", None, {}),  # a query: DRF reads it
        ("/lendBook/", {"override": {"reason": "x"}}, {}),  # an override: its own checks
        ("/returnBook/", {"returned_at": None}, {}),  # a field beyond the two
        ("/lendBook/", {"user_email": " spaced@example.com "}, {}),  # DRF trims it
        ("/lendBook/", {"user_email": "ünïcode@example.com"}, {}),
        ("/lendBook/", {"book_id": "7"}, {}),  # DRF refuses strings, booleans and fractions
        ("/lendBook/", {"book_id": True}, {}),
        ("/lendBook/", {"book_id": 7.0}, {}),
        ("/lendBook/", {"book_id": 2**31}, {}),
        ("/lendBook/", None, {"Accept": "application/json; indent=4"}),
        ("/lendBook/", None, {"Accept": "application/xml"}),
    ],
)
def test_any_other_request_goes_through_drf(keyed, peers, book, lean_calls, path, body, headers):
    request = {"user_email": new_patron(peers), "book_id": book["id"], **(body or {})}

    post_json(keyed, path, request, **headers)

    assert lean_calls == []


def test_a_key_not_verified_yet_an_expired_one_or_one_without_the_scope_goes_through_drf(
    api, peers, book, settings, lean_calls
):
    settings.REQUIRE_API_KEY = True
    settings.API_KEY_CACHE_SECONDS = 60
    api_key, key = create_key("desk", [Scope.CIRCULATION])
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    first = post_json(api, "/lendBook/", {"user_email": new_patron(peers), "book_id": book["id"]})
    assert first.status_code == 201 and lean_calls == []  # verified (and kept) by DRF's authenticator

    reader = create_key("reader", [Scope.PATRON_READ])[1]
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {reader}")
    assert api.get("/policy/").status_code == 200  # verified, but may not lend
    refused = post_json(api, "/lendBook/", {"user_email": new_patron(peers), "book_id": book["id"]})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"
    assert lean_calls == []


def test_an_expired_key_is_refused_by_drf_even_when_verified_before(api, peers, book, settings, lean_calls):
    from datetime import timedelta

    from django.utils import timezone

    settings.REQUIRE_API_KEY = True
    settings.API_KEY_CACHE_SECONDS = 60
    expiring, key = create_key("desk", [Scope.CIRCULATION], expiry_date=timezone.now() + timedelta(seconds=60))
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert api.get("/policy/").status_code == 200
    verified = lean_writes.auth.verified_keys.get(key)
    verified.expiry_date = timezone.now() - timedelta(seconds=1)  # the cached key has expired since

    response = post_json(api, "/lendBook/", {"user_email": new_patron(peers), "book_id": book["id"]})

    assert response.status_code == 401 and response.json()["error"]["code"] == "authentication_failed"
    assert lean_calls == [] and not Loan.objects.filter(book_id=book["id"]).exists()


def answers(api, peers, settings) -> list:
    """One of each answer a write gives, on a fresh patron and books: what the view sets of each."""
    patron, other = new_patron(peers), new_patron(peers)
    book, spare = peers.book.add_book("Lean", "Author", 1), peers.book.add_book("Spare", "Author", 1)
    key = {"Idempotency-Key": f"key-{uuid.uuid4().hex}"}
    calls = [
        ("/lendBook/", {"user_email": patron, "book_id": book["id"]}, {}),  # 201
        ("/lendBook/", {"user_email": patron, "book_id": book["id"]}, {}),  # 409 already_borrowed
        ("/lendBook/", {"user_email": other, "book_id": book["id"]}, {}),  # 409 no_copy_available
        ("/lendBook/", {"user_email": other, "book_id": 999_999_999}, {}),  # 404 book_not_found
        ("/reserveBook/", {"user_email": other, "book_id": book["id"]}, {}),  # 201 a hold
        ("/renewBook/", {"user_email": patron, "book_id": book["id"]}, {}),  # 409 someone waits
        ("/cancelReservation/", {"user_email": other, "book_id": book["id"]}, {}),  # 200
        ("/returnBook/", {"user_email": patron, "book_id": book["id"]}, {}),  # 200
        ("/returnBook/", {"user_email": patron, "book_id": book["id"]}, {}),  # 404 loan_not_found
        ("/lendBook/", {"user_email": other, "book_id": spare["id"]}, key),  # 201
        ("/lendBook/", {"user_email": other, "book_id": spare["id"]}, key),  # replay
        ("/lendBook/", {"user_email": patron, "book_id": spare["id"]}, key),  # 422
    ]
    seen = [_seen(post_json(api, path, body, **headers)) for path, body, headers in calls]
    peers.book.faults.status = 503
    seen.append(_seen(post_json(api, "/lendBook/", {"user_email": patron, "book_id": spare["id"]})))  # 503
    peers.book.faults.status = None
    settings.THROTTLE_RATE_PER_KEY = "1/min"
    for _ in range(2):  # the second in the minute: 429
        throttled = post_json(api, "/lendBook/", {"user_email": patron, "book_id": spare["id"]})
    seen.append(_seen(throttled))
    return seen


def _seen(response) -> tuple:
    body = response.json()
    if "id" in body:  # a new row: its id and moments differ from one run to the other
        body = {name: value for name, value in body.items() if name not in ("id",) and not name.startswith("date_")}
    headers = {name: response.headers.get(name) for name in VIEW_HEADERS}
    if headers["Retry-After"] is not None and response.status_code == 429:
        headers["Retry-After"] = "(the window's rest)"
    return response.status_code, body, headers


def test_the_lean_path_answers_every_write_as_drf_does(keyed, peers, settings, monkeypatch, lean_calls):
    # Off the wall clock: each run's key stays verified however slow the machine, and the throttled
    # pair never straddles two of the rate's one-minute windows.
    settings.API_KEY_CACHE_SECONDS = 3600
    this_minute = time.time()
    monkeypatch.setattr(throttling, "time", SimpleNamespace(time=lambda: this_minute, monotonic=time.monotonic))
    settings.THROTTLE_RATE_PER_KEY = None
    lean = answers(keyed, peers, settings)
    requests_made = len(lean_calls)
    assert requests_made == len(lean) + 1  # every one of them (and the throttle's first)

    settings.THROTTLE_RATE_PER_KEY = None
    monkeypatch.setattr(lean_writes, "_loan_request", lambda request: None)
    keyed.credentials(HTTP_AUTHORIZATION=f"Api-Key {create_key('desk', [Scope.CIRCULATION])[1]}")
    through_drf = answers(keyed, peers, settings)

    assert len(lean_calls) == requests_made  # the second run did not take it
    statuses = [status for status, _, _ in lean]
    assert statuses == [201, 409, 409, 404, 201, 409, 200, 200, 404, 201, 201, 422, 503, 429]
    assert lean[10][2]["Idempotent-Replayed"] == "true"
    for lean_answer, drf_answer in zip(lean, through_drf, strict=True):
        assert _without_names(lean_answer) == _without_names(drf_answer)


def _without_names(answer: tuple) -> tuple:
    """The answer with the run's own patrons and books left out of messages and bodies."""
    status, body, headers = answer
    text = repr(body)
    for marker in ("lean-", "@example.com"):
        text = text.replace(marker, "")
    return status, re.sub(r"[0-9a-f]{8}|\d+", "N", text), headers


def test_the_lean_path_needs_no_csrf_token_as_the_api_never_did(peers, book, lean_calls):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)  # as a browser-less service calls it, with Django's CSRF check on
    answer = client.post(
        "/lendBook/", {"user_email": new_patron(peers), "book_id": book["id"]}, content_type="application/json"
    )

    assert answer.status_code == 201, answer.content
    assert lean_calls == ["/lendBook/"]


def test_a_retry_on_the_other_path_replays_the_first_answer(api, peers, book, settings, lean_calls):
    """The first try through DRF (its key not verified yet), the retry on the lean path (verified since): one
    loan, the stored answer replayed. The Idempotency-Key's fingerprint is the body as both paths parse it."""
    settings.REQUIRE_API_KEY = True
    settings.API_KEY_CACHE_SECONDS = 60
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {create_key('desk', [Scope.CIRCULATION])[1]}")
    body = {"user_email": new_patron(peers), "book_id": book["id"]}  # an address with capitals, stored lower-case
    headers = {"Idempotency-Key": f"retry-{uuid.uuid4().hex}"}

    first = post_json(api, "/lendBook/", body, **headers)
    retried = post_json(api, "/lendBook/", body, **headers)

    assert lean_calls == ["/lendBook/"]  # the retry only
    assert (first.status_code, retried.status_code) == (201, 201)
    assert retried.headers["Idempotent-Replayed"] == "true" and retried.json() == first.json()
    assert Loan.objects.filter(book_id=book["id"]).count() == 1
