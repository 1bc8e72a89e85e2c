"""Hostile and odd requests (issue 28): extreme dates, the failed-key lockout on every method, repeated
query parameters, what a dry run tells a key that may not read the patron, and the Content-Security-Policy.

Requests go through the WSGI application as gunicorn serves it (`call` of test_hostile_input)."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth import get_user_model

from lending.api.permissions import create_key
from lending.blocks import PatronBlock
from lending.models import Loan, Scope
from tests.api import test_hostile_input
from tests.api.test_hostile_input import assert_error, call, lend_body
from tests.factories import HoldFactory, LoanFactory

pytestmark = pytest.mark.django_db

# Keys required, at most 3 failed authentications a minute: the fixture of the first hostile tests.
keys_on = test_hostile_input.keys_on

# A UTC offset at both ends of what ISO 8601 parsers accept, at both ends of the calendar: in UTC
# these are outside years 1-9999, or PostgreSQL refuses their offset (more than 15:59).
EXTREME_MOMENTS = [
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59.999999-00:00:01",
    "0001-01-01T00:00:00+00:01",
    "2026-06-01T12:00:00+23:59",
    "2026-06-01T12:00:00-23:59:59",
]


def _post(path: str, body: dict):
    return call("POST", path, body=json.dumps(body).encode())


# --- Dates: every date and date-time a client sends is a 4xx when it is out of range ---------------------


@pytest.mark.parametrize("moment", EXTREME_MOMENTS)
def test_an_extreme_offset_in_a_new_due_date_is_400(moment):
    loan = LoanFactory()
    answer = _post(f"/loans/{loan.pk}/change-due-date/", {"date_due": moment, "reason": "moved"})
    assert_error(answer, 400, "invalid_request")
    assert Loan.objects.get(pk=loan.pk).date_due == loan.date_due


@pytest.mark.parametrize("moment", EXTREME_MOMENTS)
def test_an_extreme_offset_in_returned_at_is_400_and_returns_nothing(peers, patron, book, moment):
    LoanFactory(user_email=patron, book_id=book["id"])
    answer = _post("/returnBook/", {"user_email": patron, "book_id": book["id"], "returned_at": moment})
    assert_error(answer, 400, "invalid_request")
    assert Loan.objects.get(user_email=patron).date_returned is None


@pytest.mark.parametrize("moment", EXTREME_MOMENTS)
def test_an_extreme_offset_in_a_block_expiry_is_400(patron, moment):
    answer = _post(f"/patrons/{patron}/blocks/", {"reason": "x", "blocks": ["borrow"], "expires_at": moment})
    assert_error(answer, 400, "invalid_request")
    assert not PatronBlock.objects.exists()


@pytest.fixture
def staff(client):
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    return client


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/admin/lending/loan/", "date_due"),
        ("/admin/lending/loan/", "date_borrowed"),
        ("/admin/lending/hold/", "pickup_deadline"),
        ("/admin/lending/outboxmessage/", "created_at"),
    ],
)
@pytest.mark.parametrize(
    "query",
    [
        "{field}__gte=9999-12-31T23:59:59-23:59",
        "{field}__lt=0001-01-01T00:00:00%2B23:59",
        "{field}__gte=2026-01-01T00:00:00-20:00",
        "{field}__year=99999",
        "{field}__year=0",
        "{field}__year=9999",
        "{field}__year=9999&{field}__month=12",
        "{field}__year=9999&{field}__month=12&{field}__day=31",
    ],
)
def test_an_admin_date_filter_out_of_range_is_400(staff, path, field, query):
    HoldFactory()
    LoanFactory()
    answer = staff.get(f"{path}?{query.format(field=field)}")
    assert answer.status_code == 400, answer.content[:300]
    assert answer.json()["error"]["code"] == "invalid_request"
    assert field in answer.json()["error"]["message"]


# A date without a time (the admin's own date filters send those) is naive: Django warns and reads it in
# the current time zone, which is what a librarian means.
@pytest.mark.filterwarnings("ignore:DateTimeField Loan.date_due received a naive datetime:RuntimeWarning")
def test_admin_date_filters_in_range_still_filter(staff):
    from datetime import UTC, datetime

    march = LoanFactory(date_due=datetime(2026, 3, 10, 23, 59, tzinfo=UTC))
    earlier = LoanFactory(date_due=datetime(2025, 6, 1, 23, 59, tzinfo=UTC))
    for query in (
        "date_due__gte=2026-01-01T00:00:00%2B02:00",
        "date_due__year=2026&date_due__month=3",
        "date_due__gte=2026-01-01T00:00:00Z",
        "date_due__gte=2026-01-01",
    ):
        page = staff.get(f"/admin/lending/loan/?{query}")
        assert page.status_code == 200, query
        shown = page.content.decode()
        assert f"/admin/lending/loan/{march.pk}/change/" in shown, query
        assert f"/admin/lending/loan/{earlier.pk}/change/" not in shown, query


# --- The failed-key lockout: every method counts, every method is refused --------------------------------


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "GET", "POST", "PUT", "DELETE", "PATCH"])
def test_a_locked_out_address_is_refused_on_every_method(keys_on, method):
    wrong = {"Authorization": "Api-Key wrong.key"}
    for _ in range(3):
        assert call("GET", "/policy/", headers=wrong).status == 401
    good = {"Authorization": f"Api-Key {keys_on}"}
    answer = call(method, "/policy/", headers=good)
    assert answer.status == 429, (method, answer.status)
    assert answer.headers["Retry-After"]
    if method != "HEAD":
        assert_error(answer, 429, "rate_limited")


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS"])
def test_failed_keys_on_head_and_options_count_towards_the_lockout(keys_on, method):
    wrong = {"Authorization": "Api-Key wrong.key"}
    assert [call(method, "/loans/", headers=wrong).status for _ in range(3)] == [401, 401, 401]
    assert_error(call("GET", "/policy/", headers={"Authorization": f"Api-Key {keys_on}"}), 429, "rate_limited")


# --- Repeated query parameters ------------------------------------------------------------------------


def test_a_repeated_dry_run_is_400_and_never_lends(peers, patron, book):
    for query in ("dry_run=true&dry_run=false", "dry_run=false&dry_run=true", "dry_run=true&dry_run=true"):
        error = assert_error(call("POST", "/lendBook/", query, lend_body(patron, book["id"])), 400)
        assert error["code"] == "repeated_query_parameter"
        assert error["details"] == {"dry_run": ["This parameter may be given once."]}
    assert not Loan.objects.filter(user_email=patron).exists()


@pytest.mark.parametrize(
    ("path", "query", "name"),
    [
        ("/loans/", "user_email=a@example.com&user_email=b@example.com", "user_email"),
        ("/loans/", "limit=1&limit=1000", "limit"),
        ("/reservations/", "status=WAITING&status=READY", "status"),
        ("/getExpiredBooks/", "offset=0&offset=5", "offset"),
    ],
)
def test_a_repeated_query_parameter_is_400_naming_it(path, query, name):
    error = assert_error(call("GET", path, query), 400, "repeated_query_parameter")
    assert name in error["message"]


# --- A dry run tells what only a key that may read the patron may know -------------------------------------


@pytest.fixture
def kiosk(settings):
    settings.REQUIRE_API_KEY = True
    return {"Authorization": f"Api-Key {create_key('kiosk', [Scope.CIRCULATION])[1]}"}


def test_a_circulation_key_cannot_learn_a_patrons_titles_by_dry_run(peers, patron, book, kiosk):
    LoanFactory(user_email=patron, book_id=book["id"])
    answer = call("POST", "/lendBook/", "dry_run=true", lend_body(patron, book["id"]), headers=kiosk)
    error = assert_error(answer, 403, "insufficient_scope")
    assert "already" not in answer.content.decode()
    assert error["details"]["accepted_scopes"] == ["patron-read", "reports"]
    # The same answer for a book the patron does not have: nothing to tell them apart.
    other = peers.book.add_book("Another", "Author", 1)
    again = call("POST", "/lendBook/", "dry_run=true", lend_body(patron, other["id"]), headers=kiosk)
    assert (again.status, again.json()) == (answer.status, answer.json())


@pytest.mark.parametrize("scopes", [[Scope.PATRON_READ], [Scope.REPORTS], [Scope.CIRCULATION, Scope.PATRON_READ]])
def test_a_key_that_reads_the_patron_gets_the_dry_runs_refusal(peers, patron, book, settings, scopes):
    LoanFactory(user_email=patron, book_id=book["id"])
    settings.REQUIRE_API_KEY = True
    headers = {"Authorization": f"Api-Key {create_key('desk', scopes)[1]}"}
    answer = call("POST", "/lendBook/", "dry_run=true", lend_body(patron, book["id"]), headers=headers)
    assert answer.status == 200, answer.content
    assert answer.json()["error"]["code"] == "already_borrowed"


def test_a_circulation_key_still_lends(peers, patron, book, kiosk):
    assert call("POST", "/lendBook/", "dry_run=false", lend_body(patron, book["id"]), headers=kiosk).status == 201
    assert Loan.objects.filter(user_email=patron).count() == 1


# --- Content-Security-Policy ------------------------------------------------------------------------------

STRICT = "default-src 'none'; frame-ancestors 'none'"


def _directives(policy: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (part.split() for part in policy.split(";") if part.strip())}


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("GET", "/policy/", ""),
        ("GET", "/loans/", "colour=red"),
        ("GET", "/nothing/", ""),
        ("GET", "/health/live/", ""),
        ("GET", "/api/schema/", ""),
        ("POST", "/lendBook/", ""),
    ],
)
def test_the_apis_answers_carry_the_strict_policy(method, path, query):
    answer = call(method, path, query, body=b"{}" if method == "POST" else b"")
    assert answer.headers["Content-Security-Policy"] == STRICT


def test_a_refusal_made_in_front_of_django_carries_the_strict_policy_too():
    answer = call("GET", "/loans/", content_type="application/json; charset=zlib")
    assert_error(answer, 415, "unsupported_charset")
    assert answer.headers["Content-Security-Policy"] == STRICT


@pytest.mark.parametrize("path", ["/admin/login/", "/api/docs/", "/api/redoc/"])
def test_the_admin_and_the_docs_carry_a_policy_without_inline_scripts_or_other_origins(path):
    answer = call("GET", path)
    assert answer.status == 200, answer.content[:300]
    policy = _directives(answer.headers["Content-Security-Policy"])
    assert policy["default-src"] == ["'self'"] and policy["script-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["object-src"] == ["'none'"]
    assert not any("http" in value or value == "*" for values in policy.values() for value in values)
    # What the policy would block: every script of the page is a file of the service.
    html = answer.content.decode()
    assert html.count("<script") == html.count('<script src="/'), html


def test_swagger_uis_own_script_is_served_as_a_file():
    html = call("GET", "/api/docs/").content.decode()
    [script_url] = [src for src in re.findall(r'<script src="([^"]+)"', html) if "script" in src.split("?")[-1]]
    path, _, query = script_url.partition("?")
    answer = call("GET", path, query)
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in answer.content


# --- Beyond the issue: what else a hostile client or a curious staff URL tried -------------------------------


@pytest.mark.parametrize("key", ["a\x00b.c", "pre\x00fix.secret", "\x00", "ab.c\x00"])
def test_a_key_with_a_nul_character_is_401_and_counted(keys_on, key):
    """PostgreSQL refuses NUL in a string: the key's prefix must not reach the query."""
    answer = call("GET", "/policy/", headers={"Authorization": f"Api-Key {key}"})
    assert_error(answer, 401, "authentication_failed")
    for _ in range(2):
        call("GET", "/policy/", headers={"Authorization": f"Api-Key {key}"})
    assert_error(call("GET", "/policy/", headers={"Authorization": f"Api-Key {keys_on}"}), 429, "rate_limited")


@pytest.mark.parametrize(
    "query",
    [
        "user_email__regex=(((",
        "user_email__iregex=a{99999}",
        "book_title__regex=x",
        "user_email=%00",
        "book_title__contains=a%00b",
        "user_email__startswith=%00",
    ],
)
def test_an_admin_filter_postgresql_would_choke_on_is_400(staff, query):
    LoanFactory()
    answer = staff.get(f"/admin/lending/loan/?{query}")
    assert answer.status_code == 400, answer.content[:300]
    assert answer.json()["error"]["code"] == "invalid_request"
    assert query.split("=")[0] in answer.json()["error"]["message"]


def test_admin_text_filters_still_filter(staff):
    LoanFactory(user_email="kim@example.com")
    answer = staff.get("/admin/lending/loan/?user_email__startswith=kim")
    assert answer.status_code == 200 and b"kim@example.com" in answer.content
