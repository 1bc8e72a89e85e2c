"""Hostile input and hostile clients (issue 11): every request gets the service's one JSON error shape,
a 4xx (or 503 for a dependency), never a 500 and never a write.

These requests go through the WSGI guard and Django's WSGI handler, as `config.wsgi.application` (what
gunicorn serves) does, rather than Django's test client: several defects were in front of Django's
middleware (the declared charset, chunked bodies), and the test client also skips the CSRF checks."""

from __future__ import annotations

import io
import json
import logging
import sys
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
import yaml
from django.core import signals
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from prometheus_client import REGISTRY
from rest_framework_api_key.models import APIKey

from config.wsgi import application
from lending.api.middleware import RequestGuard
from lending.models import Loan
from tests.clients.test_peer_failures import raw_server

pytestmark = pytest.mark.django_db


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    content: bytes

    def json(self):
        return json.loads(self.content)


def call(
    method: str,
    path: str,
    query: str | bytes = "",
    body: bytes = b"",
    *,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
    chunked: bool = False,
    remote_addr: str = "127.0.0.1",
    content_length: str | None = None,
) -> Answer:
    """One request through the WSGI application, as a server would pass it on. `chunked`: the server
    has removed the chunked framing, so the body has no CONTENT_LENGTH and is read until EOF."""
    raw_query = query if isinstance(query, bytes) else query.encode()
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": raw_query.decode("latin-1"),
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": remote_addr,
        "HTTP_HOST": "localhost",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if content_type:
        environ["CONTENT_TYPE"] = content_type
    if chunked:
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    elif body:
        environ["CONTENT_LENGTH"] = str(len(body))
    if content_length is not None:
        environ["CONTENT_LENGTH"] = content_length
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    started: dict = {}

    def start_response(status, response_headers, exc_info=None):
        started["status"] = int(status.split()[0])
        started["headers"] = dict(response_headers)

    # As Django's test client does: the request's start and end must not close the test's transaction.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        # A fresh handler: Django's middleware reads some settings once (SECURE_SSL_REDIRECT...).
        result = RequestGuard(WSGIHandler())(environ, start_response)
        try:
            content = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    return Answer(started["status"], started["headers"], content)


def assert_error(answer: Answer, status: int, code: str | None = None) -> dict:
    """The one error shape, with the request id."""
    assert answer.status == status, (answer.status, answer.content[:300])
    assert answer.headers["Content-Type"].startswith("application/json"), answer.headers
    assert answer.headers.get("X-Request-ID"), answer.headers
    error = answer.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    if code:
        assert error["code"] == code, error
    return error


def lend_body(email: str, book_id: int, encoding: str = "utf-8") -> bytes:
    return json.dumps({"user_email": email, "book_id": book_id}).encode(encoding)


def metric(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- Charsets: anything but UTF-8 is 415; the query string is always UTF-8 ------------------------------


@pytest.mark.parametrize("charset", ["zlib", "rot13", "base64", "bz2", "hex"])
def test_a_bytes_codec_as_charset_is_415_not_a_crash(charset, caplog):
    before = metric("lending_requests_refused_total", code="unsupported_charset")
    with caplog.at_level(logging.WARNING, logger="lending.api.refusals"):
        answer = call(
            "GET", "/loans/", "user_email=bob@example.com", content_type=f"application/json; charset={charset}"
        )
    assert_error(answer, 415, "unsupported_charset")
    assert metric("lending_requests_refused_total", code="unsupported_charset") == before + 1
    lines = [r for r in caplog.records if r.name == "lending.api.refusals"]
    assert len(lines) == 1 and "request_refused" in str(lines[0].msg), [r.msg for r in lines]
    assert answer.headers["X-Request-ID"] in str(lines[0].msg)


@pytest.mark.parametrize("charset", ["utf-16", "cp500", "latin-1", "utf-32", "nonsense"])
def test_a_dry_run_in_another_charset_never_lends(peers, patron, book, charset):
    encoding = charset if charset != "nonsense" else "utf-8"
    answer = call(
        "POST",
        "/lendBook/",
        "dry_run=true",
        lend_body(patron, book["id"], encoding),
        content_type=f"application/json; charset={charset}",
    )
    assert_error(answer, 415, "unsupported_charset")
    assert not Loan.objects.filter(user_email=patron).exists()


@pytest.mark.parametrize("charset", ["utf-8", "UTF8", "utf_8", "U8"])
def test_utf8_and_its_aliases_are_accepted(peers, patron, book, charset):
    answer = call(
        "POST",
        "/lendBook/",
        "dry_run=true",
        lend_body(patron, book["id"]),
        content_type=f"application/json; charset={charset}",
    )
    assert answer.status == 200, answer.content
    assert answer.json()["would_succeed"] is True
    assert not Loan.objects.filter(user_email=patron).exists()


@pytest.mark.parametrize("charset", ["utf-16", "cp500"])
def test_a_filter_in_another_charset_never_lists_everyone(peers, patron, book, charset):
    answer = call("GET", "/loans/", f"user_email={patron}", content_type=f"text/plain; charset={charset}")
    assert_error(answer, 415, "unsupported_charset")
    bogus = call("GET", "/loans/", b"status=BOGUS", content_type=f"text/plain; charset={charset}")
    assert bogus.status in (400, 415)


def test_a_bogus_status_is_400():
    assert_error(call("GET", "/loans/", "status=BOGUS", content_type=""), 400, "invalid_request")


# --- Unknown query parameters and formats -----------------------------------------------------------------


def test_an_unknown_format_is_400_not_500():
    error = assert_error(call("GET", "/loans/", "format=xml"), 400, "unknown_query_parameter")
    assert "format" in error["message"]


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/loans/", "colour=red"),
        ("/getExpiredBooks/", "page=2"),
        ("/reservations/", "user=bob@example.com"),
        ("/policy/", "x=1"),
        ("/loans/1/", "expand=all"),
    ],
)
def test_unknown_query_parameters_are_400_naming_them(path, query):
    error = assert_error(call("GET", path, query), 400, "unknown_query_parameter")
    assert query.split("=")[0] in error["message"]
    assert error["details"] == {query.split("=")[0]: ["Unknown query parameter."]}


def test_a_misspelt_dry_run_never_lends(peers, patron, book):
    assert_error(
        call("POST", "/lendBook/", "dryrun=true", lend_body(patron, book["id"])), 400, "unknown_query_parameter"
    )
    assert not Loan.objects.filter(user_email=patron).exists()


def test_known_query_parameters_still_work(peers, patron, book):
    assert call("GET", "/loans/", f"user_email={patron}&status=ACTIVE&limit=5&offset=0").status == 200
    assert call("GET", "/getExpiredBooks/", "limit=1").status == 200


# --- Strict JSON ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [990, 5000, 40])
def test_deeply_nested_json_is_400(depth):
    body = ("[" * depth + "]" * depth).encode()
    assert len(body) < 16 * 1024
    assert_error(call("POST", "/lendBook/", body=body), 400, "malformed_json")


def test_nesting_within_the_limit_is_parsed(peers, patron, book):
    body = json.dumps({"user_email": patron, "book_id": book["id"], "note": [[[[{"a": [1]}]]]]}).encode()
    assert call("POST", "/lendBook/", "dry_run=true", body).status == 200


def test_duplicate_keys_are_400_and_write_nothing(peers, patron, book):
    body = f'{{"user_email": "x@example.com", "user_email": "{patron}", "book_id": {book["id"]}}}'.encode()
    error = assert_error(call("POST", "/lendBook/", body=body), 400, "malformed_json")
    assert "user_email" in error["message"]
    assert not Loan.objects.filter(user_email=patron).exists()


@pytest.mark.parametrize("raw", [b'{"user_email": "\xff\xfe@example.com", "book_id": 1}', b'{"a": "\xc3"}'])
def test_invalid_utf8_is_400(raw):
    assert_error(call("POST", "/lendBook/", body=raw), 400, "malformed_json")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_are_400(peers, patron, book, constant):
    body = f'{{"user_email": "{patron}", "book_id": {book["id"]}, "note": {constant}}}'.encode()
    assert_error(call("POST", "/lendBook/", "dry_run=true", body), 400, "malformed_json")


# --- CSRF on unknown paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/returnbook/", "/lendBooks/", "/lendBook//", "/nothing"])
def test_writes_to_unknown_paths_are_the_json_404(method, path):
    assert_error(call(method, path, body=b'{"a": 1}'), 404, "not_found")


# --- Chunked bodies ---------------------------------------------------------------------------------------


def test_a_chunked_lend_is_read(peers, patron, book):
    answer = call("POST", "/lendBook/", body=lend_body(patron, book["id"]), chunked=True)
    assert answer.status == 201, answer.content
    assert Loan.objects.filter(user_email=patron).count() == 1


def test_a_chunked_body_over_the_limit_is_413(settings, peers, patron, book):
    body = json.dumps({"user_email": patron, "book_id": book["id"], "pad": "x" * settings.MAX_REQUEST_BODY_BYTES})
    assert_error(call("POST", "/lendBook/", body=body.encode(), chunked=True), 413, "payload_too_large")
    assert not Loan.objects.filter(user_email=patron).exists()


@pytest.mark.parametrize("length", ["-1", "abc", "1e3"])
def test_an_invalid_content_length_is_400(length):
    assert_error(call("POST", "/returnBook/", body=b"{}", content_length=length), 400)


# --- Health: declared methods only ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "TRACE", "OPTIONS"])
@pytest.mark.parametrize("path", ["/health/", "/health", "/health/live/", "/health/ready/", "/metrics"])
def test_probes_answer_only_get_and_head(method, path):
    answer = call(method, path)
    assert_error(answer, 405, "method_not_allowed")
    assert answer.headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_probes_answer_get_and_head(method):
    assert call(method, "/health/live/").status == 200


# --- A failing dependency ----------------------------------------------------------------------------------

DOWN_REDIS = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
}


def test_throttling_fails_open_when_the_cache_is_down(settings, caplog):
    settings.CACHES = DOWN_REDIS
    settings.THROTTLE_RATE_PER_IP = "100/min"
    before = metric("lending_throttle_cache_errors_total")
    with caplog.at_level(logging.WARNING):
        answer = call("GET", "/policy/")
    assert answer.status == 200, answer.content
    assert metric("lending_throttle_cache_errors_total") > before
    assert any("throttl" in record.getMessage().lower() for record in caplog.records)


def test_readiness_reports_the_cache(settings):
    answer = call("GET", "/health/ready/")
    assert answer.json()["checks"]["cache"] == "ok"
    settings.CACHES = DOWN_REDIS
    answer = call("GET", "/health/ready/")
    body = answer.json()
    assert body["checks"]["cache"].startswith("unavailable")
    # The service still works without its cache (throttling fails open): the pod stays ready.
    assert answer.status == 200 and body["status"] == "degraded"


@pytest.mark.parametrize(
    "book_json",
    [
        {"id": 1, "title": "Huge", "quantity": 2**70},
        {"id": 1, "title": "Huge", "copies": 2**40},
        {"id": 1, "title": ["not", "a", "string"], "quantity": 1},
        {"id": 1, "title": "Float", "quantity": 1.5},
        {"id": 1, "title": "Text", "quantity": "3"},
    ],
)
def test_a_book_peer_answering_absurd_values_is_503(peers, patron, settings, book_json):
    with raw_server(200, json.dumps(book_json).encode(), "application/json") as url:
        settings.BOOK_MANAGEMENT_URL = url
        answer = call("POST", "/lendBook/", body=lend_body(patron, 1))
    assert_error(answer, 503, "peer_unavailable")
    assert not Loan.objects.filter(user_email=patron).exists()


def test_a_title_longer_than_we_store_is_cut(peers, patron, settings):
    with raw_server(
        200, json.dumps({"id": 1, "title": "x" * 100_000, "quantity": 1}).encode(), "application/json"
    ) as url:
        settings.BOOK_MANAGEMENT_URL = url
        answer = call("POST", "/lendBook/", body=lend_body(patron, 1))
    assert answer.status == 201, answer.content
    assert len(Loan.objects.get(user_email=patron).book_title) == 500


def test_a_peer_answering_a_huge_body_is_503(peers, patron, settings):
    huge = json.dumps({"id": 1, "title": "t", "quantity": 1, "pad": "x" * 10_000_000}).encode()
    with raw_server(200, huge, "application/json") as url:
        settings.BOOK_MANAGEMENT_URL = url
        answer = call("POST", "/lendBook/", body=lend_body(patron, 1))
    assert_error(answer, 503, "peer_unavailable")


def test_a_peer_answering_deep_json_is_503(peers, patron, settings):
    with raw_server(200, b"[" * 100_000 + b"]" * 100_000, "application/json") as url:
        settings.USER_MANAGEMENT_URL = url
        answer = call("POST", "/lendBook/", body=lend_body(patron, 1))
    assert_error(answer, 503, "peer_unavailable")


@pytest.mark.parametrize("user_json", [{"email": "a@example.com", "active": "no"}, {"active": None}])
def test_a_user_peer_answering_wrong_types_is_503(peers, patron, book, settings, user_json):
    with raw_server(200, json.dumps(user_json).encode(), "application/json") as url:
        settings.USER_MANAGEMENT_URL = url
        answer = call("POST", "/lendBook/", body=lend_body(patron, book["id"]))
    assert_error(answer, 503, "peer_unavailable")


# --- Authentication abuse -------------------------------------------------------------------------------


@pytest.fixture
def keys_on(settings):
    settings.REQUIRE_API_KEY = True
    settings.AUTH_FAILURES_PER_MINUTE = 3
    cache.clear()
    yield APIKey.objects.create_key(name="hostile-tests")[1]
    cache.clear()


def test_failed_authentications_are_throttled_per_address(keys_on):
    wrong = {"Authorization": "Api-Key wrong.key"}
    assert [call("GET", "/policy/", headers=wrong).status for _ in range(3)] == [401, 401, 401]
    answer = call("GET", "/policy/", headers=wrong)
    assert_error(answer, 429, "rate_limited")
    assert 1 <= int(answer.headers["Retry-After"]) <= 60
    # Even the right key is refused from that address for the rest of the window: guessing stops.
    assert call("GET", "/policy/", headers={"Authorization": f"Api-Key {keys_on}"}).status == 429
    # Another address is unaffected.
    good = call("GET", "/policy/", headers={"Authorization": f"Api-Key {keys_on}"}, remote_addr="10.9.9.9")
    assert good.status == 200


def test_forwarded_for_from_an_untrusted_client_does_not_dodge_the_auth_throttle(keys_on):
    wrong = {"Authorization": "Api-Key wrong.key"}
    for n in range(3):
        call("GET", "/policy/", headers={**wrong, "X-Forwarded-For": f"10.0.0.{n}"})
    assert call("GET", "/policy/", headers={**wrong, "X-Forwarded-For": "10.0.0.99"}).status == 429


def test_a_trusted_proxy_names_the_client(keys_on, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    wrong = {"Authorization": "Api-Key wrong.key"}
    for _ in range(3):
        call("GET", "/policy/", headers={**wrong, "X-Forwarded-For": "203.0.113.7"}, remote_addr="10.1.1.1")
    blocked = call("GET", "/policy/", headers={**wrong, "X-Forwarded-For": "203.0.113.7"}, remote_addr="10.1.1.1")
    assert blocked.status == 429
    other = call("GET", "/policy/", headers={**wrong, "X-Forwarded-For": "203.0.113.8"}, remote_addr="10.1.1.1")
    assert other.status == 401


def test_forwarded_proto_from_an_untrusted_client_does_not_skip_the_https_redirect(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    spoofed = call("GET", "/policy/", headers={"X-Forwarded-Proto": "https"}, remote_addr="198.51.100.4")
    assert spoofed.status == 301, spoofed.content
    settings.TRUSTED_PROXIES = ["198.51.100.0/24"]
    proxied = call("GET", "/policy/", headers={"X-Forwarded-Proto": "https"}, remote_addr="198.51.100.4")
    assert proxied.status == 200, proxied.content


def test_every_refusal_carries_the_request_id_sent():
    answer = call(
        "GET", "/loans/", "a=1", content_type="application/json; charset=zlib", headers={"X-Request-ID": "abc-1"}
    )
    assert answer.headers["X-Request-ID"] == "abc-1"
    assert call("GET", "/loans/", "a=1", headers={"X-Request-ID": "abc-2"}).headers["X-Request-ID"] == "abc-2"


def test_query_strings_are_decoded_as_utf8():
    answer = call("GET", "/loans/", urlencode({"user_email": "zoe@exämple.com"}))
    assert answer.status == 200, answer.content


def test_the_served_application_is_guarded():
    assert isinstance(application, RequestGuard)


# --- The schema states the limits the server enforces ----------------------------------------------------


@pytest.fixture(scope="module")
def published():
    from tests.api.test_openapi import COMMITTED

    return yaml.safe_load(COMMITTED.read_text())


def _parameter(published, path: str, method: str, name: str) -> dict:
    return next(p for p in published["paths"][path][method]["parameters"] if p["name"] == name)


@pytest.mark.parametrize("path", ["/loans/", "/reservations/", "/getExpiredBooks/"])
def test_the_schema_states_the_paging_limits_the_server_enforces(published, settings, path):
    limit = _parameter(published, path, "get", "limit")["schema"]
    offset = _parameter(published, path, "get", "offset")["schema"]
    assert (limit["minimum"], limit["maximum"]) == (1, settings.API_MAX_PAGE_SIZE)
    assert (offset["minimum"], offset["maximum"]) == (0, 2**31 - 1)
    for name, bounds in (("limit", limit), ("offset", offset)):
        assert call("GET", path, f"{name}={bounds['maximum']}").status == 200
        assert call("GET", path, f"{name}={bounds['minimum']}").status == 200
        assert_error(call("GET", path, f"{name}={bounds['maximum'] + 1}"), 400, "invalid_request")
        assert_error(call("GET", path, f"{name}={bounds['minimum'] - 1}"), 400, "invalid_request")


def test_the_schema_states_the_idempotency_key_rule_the_server_enforces(published, peers, patron, book):
    key = _parameter(published, "/lendBook/", "post", "Idempotency-Key")["schema"]
    assert (key["minLength"], key["maxLength"]) == (1, 255)
    body = lend_body(patron, book["id"])
    assert call("POST", "/lendBook/", "dry_run=true", body, headers={"Idempotency-Key": "k" * 255}).status == 200
    for bad in ("k" * 256, "with space", "caf\xe9", "tab\there"):
        answer = call("POST", "/lendBook/", "dry_run=true", body, headers={"Idempotency-Key": bad})
        assert_error(answer, 400, "invalid_idempotency_key")


def test_the_schema_states_the_body_limit(published, settings):
    lend = published["paths"]["/lendBook/"]["post"]["responses"]["413"]["content"]["application/json"]
    assert str(settings.MAX_REQUEST_BODY_BYTES) in str(lend["examples"])


def test_an_empty_filter_is_400_not_no_filter():
    error = assert_error(call("GET", "/loans/", "user_email="), 400, "invalid_request")
    assert set(error["details"]) == {"user_email"}


def test_the_schema_declares_every_error_code_the_guard_answers(published):
    lend = published["paths"]["/lendBook/"]["post"]["responses"]
    assert "unsupported_charset" in str(lend["415"]) and "unknown_query_parameter" in str(lend["400"])
    health = published["paths"]["/health/ready/"]
    assert set(health) == {"get"} and "405" in health["get"]["description"]
