"""Fuzzing every endpoint with hypothesis: arbitrary JSON and raw bodies, wrong types, huge numbers,
odd strings, odd query strings and headers. Whatever comes in: never a 5xx, a JSON error
`{"error": {"code", "message"}}` on every 4xx, and the documented shape on every 2xx."""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import pytest
from django.urls import get_resolver
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

LOAN_FIELDS = {"id", "user_email", "book_id", "date_borrowed", "date_due", "date_returned", "status"}
HOLD_FIELDS = {"id", "user_email", "book_id", "status"}
# POST endpoints taking `{user_email, book_id}`, and the shape of their 2xx answer.
WRITES = {
    "/lendBook/": LOAN_FIELDS,
    "/returnBook/": LOAN_FIELDS,
    "/renewBook/": LOAN_FIELDS,
    "/reserveBook/": HOLD_FIELDS,
    "/cancelReservation/": HOLD_FIELDS,
}
READS = [
    "/getExpiredBooks/",
    "/loans/",
    "/loans/1/",
    "/loans/1/history/",
    "/reservations/",
    "/policy/",
    "/calendar/",
    "/health/",
    "/health/live/",
    "/health/ready/",
]
KNOWN_PATRONS = ["alice@example.com", "bob@example.com", "inactive@example.com", "nobody@example.com"]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**31 - 2, max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
emails = (
    st.sampled_from(KNOWN_PATRONS)
    | st.emails()
    | st.text(max_size=300)
    | st.builds(
        lambda local, domain: f"{local}@{domain}", st.text(min_size=1, max_size=80), st.text(min_size=1, max_size=80)
    )
    | json_values
)
book_ids = (
    st.integers(min_value=1, max_value=6) | st.integers() | st.integers(min_value=2**31, max_value=2**80) | json_values
)
write_bodies = (
    st.fixed_dictionaries(
        {"user_email": emails, "book_id": book_ids}, optional={"extra": json_values, "dry_run": json_values}
    )
    | st.dictionaries(st.sampled_from(["user_email", "book_id", "email", "id", ""]), json_values, max_size=3)
    | json_values
)
odd_text = st.text(max_size=300) | st.sampled_from(["", " ", "x" * 256, "x" * 5000, "💥", "\u202e", "a\tb", "\\"])
headers = st.fixed_dictionaries(
    {},
    optional={
        "Idempotency-Key": odd_text,
        "X-Request-ID": odd_text,
        "Accept": st.sampled_from(["application/json", "text/html", "*/*", "application/xml", ""]),
        "Authorization": odd_text,
    },
)
query = st.dictionaries(
    st.sampled_from(["limit", "offset", "user_email", "book_id", "status", "dry_run", "overdue", "x"]),
    st.text(max_size=30) | st.integers().map(str) | st.sampled_from(["-1", "0", "99999999999999999999", "true"]),
    max_size=3,
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "",
    ]
)


def encode(body) -> bytes:
    return json.dumps(body, allow_nan=True).encode()


def header_kwargs(values: dict) -> dict:
    # A header value the WSGI server could deliver: latin-1 text without line breaks.
    return {k: v for k, v in values.items() if v.isprintable() and all(ord(c) < 256 for c in v)}


def check(response) -> None:
    status = response.status_code
    assert status < 500, (status, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    if 400 <= status < 500:
        assert set(body) == {"error"}, body
        error = body["error"]
        assert isinstance(error.get("code"), str) and error["code"]
        assert isinstance(error.get("message"), str) and error["message"]
    return body


def check_write(path: str, response) -> None:
    body = check(response)
    dry_run = path == "/lendBook/" and "dry_run" in response.request["QUERY_STRING"]
    if 200 <= response.status_code < 300 and not dry_run:
        assert isinstance(body, dict) and set(body) >= WRITES[path], body
        assert isinstance(body["id"], int) and isinstance(body["book_id"], int)
        assert isinstance(body["user_email"], str)
        if WRITES[path] is LOAN_FIELDS:
            assert body["status"] in {"ACTIVE", "OVERDUE", "RETURNED"}


@pytest.mark.parametrize("path", list(WRITES))
@FUZZ
@given(body=write_bodies, extra_headers=headers)
def test_writes_with_arbitrary_json(peers, path, body, extra_headers):
    response = APIClient().post(
        path, encode(body), content_type="application/json", headers=header_kwargs(extra_headers)
    )
    check_write(path, response)


@pytest.mark.parametrize("path", list(WRITES))
@FUZZ
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode), content_type=content_types, params=query)
def test_writes_with_raw_bodies_and_query_strings(peers, path, raw, content_type, params):
    response = APIClient().generic("POST", f"{path}?{urlencode(params)}", raw, content_type=content_type)
    check_write(path, response)


@pytest.mark.parametrize("path", READS)
@FUZZ
@given(params=query, extra_headers=headers)
def test_reads_with_odd_query_strings_and_headers(peers, path, params, extra_headers):
    response = APIClient().get(path, params, headers=header_kwargs(extra_headers))
    body = check(response)
    if response.status_code == 200 and path == "/getExpiredBooks/":
        assert isinstance(body, list) and all(set(loan) >= LOAN_FIELDS for loan in body)


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
    path=st.sampled_from([*WRITES, *READS]) | st.text(max_size=60).map(lambda s: "/" + s.lstrip("/")),
    body=json_values,
)
def test_any_method_on_any_path(peers, method, path, body):
    response = APIClient().generic(method, path, encode(body), content_type="application/json")
    if method == "OPTIONS" and response.status_code == 200:
        return  # DRF's metadata answer
    check(response)


@FUZZ
@given(
    method=st.sampled_from(["POST", "GET", "DELETE"]),
    email=st.sampled_from(KNOWN_PATRONS) | st.emails() | st.text(max_size=80),
    body=json_values,
)
def test_erasure_with_any_email(peers, method, email, body):
    path = f"/patrons/{quote(email, safe='@')}/anonymize/"
    response = APIClient().generic(method, path, encode(body), content_type="application/json")
    check(response)


@FUZZ
@given(
    method=st.sampled_from(["POST", "GET", "PUT", "DELETE"]),
    email=st.sampled_from(KNOWN_PATRONS) | st.emails() | st.text(max_size=80),
    tail=st.sampled_from(["blocks/", "blocks/1/", f"blocks/{2**64}/", "status/"]),
    body=json_values | st.fixed_dictionaries({"reason": json_values, "blocks": json_values}),
)
def test_patron_blocks_and_status_with_any_email_and_body(peers, method, email, tail, body):
    path = f"/patrons/{quote(email, safe='@')}/{tail}"
    response = APIClient().generic(method, path, encode(body), content_type="application/json")
    check(response)


@FUZZ
@given(body=json_values | st.fixed_dictionaries({"closed_weekdays": json_values, "closed_dates": json_values}))
def test_setting_the_calendar_with_any_body(peers, body):
    check(APIClient().generic("PUT", "/calendar/", encode(body), content_type="application/json"))


@FUZZ
@given(
    loan_id=st.sampled_from(["1", "0", str(2**63), str(2**64)]),
    body=json_values | st.fixed_dictionaries({"date_due": json_values | odd_text, "reason": json_values}),
)
def test_changing_a_due_date_with_any_body(peers, loan_id, body):
    check(
        APIClient().generic("POST", f"/loans/{loan_id}/change-due-date/", encode(body), content_type="application/json")
    )


@FUZZ
@given(
    loan_id=st.sampled_from(["1", "0", str(2**63), str(2**64)]),
    action=st.sampled_from(["declare-lost", "claim-returned", "resolve"]),
    body=json_values | st.fixed_dictionaries({"outcome": json_values | odd_text, "note": json_values | odd_text}),
)
def test_lost_and_claimed_returned_with_any_body(peers, loan_id, action, body):
    check(APIClient().generic("POST", f"/loans/{loan_id}/{action}/", encode(body), content_type="application/json"))


barcodes = st.sampled_from(["3900000101", "3900000201", "3900000501", "2100000001", "no-such-item"]) | odd_text


@FUZZ
@given(
    path=st.sampled_from(["/checkouts/", "/checkins/"]),
    body=json_values
    | st.fixed_dictionaries(
        {"item_barcode": barcodes | json_values},
        optional={
            "patron_barcode": st.sampled_from(["2100000001", "2100000002", "2100000004"]) | barcodes | json_values,
            "user_email": emails,
            "returned_at": odd_text | json_values,
        },
    ),
    extra_headers=headers,
)
def test_checking_out_and_in_with_any_body(peers, path, body, extra_headers):
    response = APIClient().post(
        path, encode(body), content_type="application/json", headers=header_kwargs(extra_headers)
    )
    body = check(response)
    if response.status_code == 201:
        assert set(body) >= LOAN_FIELDS | {"item_barcode"}, body
    elif response.status_code == 200:
        assert set(body) == {"loan", "route"}, body


@FUZZ
@given(barcode=barcodes, params=query)
def test_a_copys_status_with_any_barcode(peers, barcode, params):
    response = APIClient().get(f"/items/{quote(barcode, safe='')}/circulation/", params)
    body = check(response)
    if response.status_code == 200:
        assert body["status"] in {"available", "checked_out", "on_hold_shelf", "lost", "claimed_returned"}


policy_values = st.fixed_dictionaries(
    {"loan_days": json_values | st.integers(min_value=-5, max_value=5000)},
    optional={
        name: json_values | st.sampled_from(["0.50", "-1", "1e9", "NaN", "", "0.001"]) | st.integers()
        for name in ("renewals_max", "max_loans", "loanable", "fine_per_day", "fine_max", "renewal_days")
    },
)


@FUZZ
@given(name=odd_text, body=policy_values | json_values, method=st.sampled_from(["PUT", "DELETE", "GET"]))
def test_loan_policies_with_any_name_and_body(peers, name, body, method):
    path = f"/loan-policies/{quote(name, safe='')}/" if name else "/loan-policies/"
    body = check(APIClient().generic(method, path, encode(body), content_type="application/json"))
    if isinstance(body, dict) and "loan_days" in body:
        assert isinstance(body["fine_per_day"], str)


rule = st.fixed_dictionaries(
    {"patron_category": st.none() | odd_text, "item_type": st.none() | odd_text, "loan_policy": odd_text | json_values}
)


@FUZZ
@given(body=st.fixed_dictionaries({"rules": st.lists(rule, max_size=4) | json_values}) | json_values)
def test_circulation_rules_with_any_body(peers, body):
    check(APIClient().generic("PUT", "/circulation-rules/", encode(body), content_type="application/json"))
    rules = APIClient().get("/circulation-rules/").json()["rules"]
    assert {"patron_category": None, "item_type": None} in [
        {k: r[k] for k in ("patron_category", "item_type")} for r in rules
    ]  # whatever was sent, the fallback stays


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["user_email", "item_barcode", "book_id", "x"]), odd_text | st.integers().map(str), max_size=3
    )
)
def test_explaining_with_any_query(peers, params):
    check(APIClient().get("/circulation-rules/explain/", params))


@FUZZ
@given(
    loan_id=st.sampled_from(["1", "0", str(2**63), str(2**64)]),
    params=st.dictionaries(st.sampled_from(["returned_at", "x"]), odd_text, max_size=2),
)
def test_quoting_a_fine_with_any_query(peers, loan_id, params):
    check(APIClient().get(f"/loans/{loan_id}/fine/", params))


@FUZZ
@given(body=json_values | st.fixed_dictionaries({"patron_barcode": odd_text | json_values}))
def test_a_patron_by_card_with_any_body(peers, body):
    check(APIClient().generic("POST", "/patrons/by-card/", encode(body), content_type="application/json"))


def test_the_fuzzed_routes_are_every_route():
    """A new endpoint must be added to the fuzz lists above."""
    routes = {str(p.pattern) for p in get_resolver("lending.api.urls").url_patterns}
    fuzzed = {p.strip("/") for p in [*WRITES, *READS]} | {"loans/<int:loan_id>", "loans/<int:loan_id>/history"}
    fuzzed.add("patrons/<str:email>/anonymize")  # test_erasure_with_any_email
    # test_patron_blocks_and_status_with_any_email_and_body
    fuzzed |= {"patrons/<str:email>/blocks", "patrons/<str:email>/blocks/<int:block_id>", "patrons/<str:email>/status"}
    fuzzed.add("loans/<int:loan_id>/change-due-date")  # test_changing_a_due_date_with_any_body
    # test_lost_and_claimed_returned_with_any_body
    fuzzed |= {f"loans/<int:loan_id>/{action}" for action in ("declare-lost", "claim-returned", "resolve")}
    # test_checking_out_and_in_with_any_body, test_a_copys_status_with_any_barcode
    fuzzed |= {"checkouts", "checkins", "items/<str:barcode>/circulation"}
    # test_loan_policies_with_any_name_and_body, test_circulation_rules_with_any_body, test_explaining_with_any_query
    fuzzed |= {"loan-policies", "loan-policies/<str:name>", "circulation-rules", "circulation-rules/explain"}
    fuzzed.add("loans/<int:loan_id>/fine")  # test_quoting_a_fine_with_any_query
    fuzzed.add("patrons/by-card")  # test_a_patron_by_card_with_any_body
    assert {r.strip("/") for r in routes} - fuzzed - {"loans/1", "loans/1/history"} == set()
