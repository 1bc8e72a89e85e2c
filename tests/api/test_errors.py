"""Invariant 5: bad input gets a clear 4xx JSON error — never a 500, an HTML page or a partial write."""

import pytest

from lending.models import Loan, OutboxMessage

pytestmark = pytest.mark.django_db

VALID = {"user_email": "alice@example.com", "book_id": 1}


def assert_json_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    if code:
        assert error["code"] == code
    return error


@pytest.mark.parametrize("path", ["/lendBook/", "/returnBook/"])
@pytest.mark.parametrize(
    "body",
    [
        {},
        {"user_email": "alice@example.com"},
        {"book_id": 1},
        {"user_email": None, "book_id": 1},
        {"user_email": "alice@example.com", "book_id": None},
        {"user_email": "alice@example.com", "book_id": "1"},
        {"user_email": "alice@example.com", "book_id": True},
        {"user_email": "alice@example.com", "book_id": 1.5},
        {"user_email": "alice@example.com", "book_id": 0},
        {"user_email": "alice@example.com", "book_id": -3},
        {"user_email": "alice@example.com", "book_id": 2**31},
        {"user_email": "alice@example.com", "book_id": 10**40},
        {"user_email": "alice@example.com", "book_id": [1]},
        {"user_email": "not-an-email", "book_id": 1},
        {"user_email": "", "book_id": 1},
        {"user_email": 42, "book_id": 1},
        {"user_email": ["alice@example.com"], "book_id": 1},
        {"user_email": "a" * 65 + "@example.com", "book_id": 1},
        {"user_email": "a@" + "b" * 250 + ".com", "book_id": 1},
    ],
)
def test_invalid_fields_are_400_with_details(api, peers, path, body):
    error = assert_json_error(api.post(path, body, format="json"), 400, "invalid_request")
    assert error["details"]
    assert not Loan.objects.exists() and not OutboxMessage.objects.exists()


@pytest.mark.parametrize("path", ["/lendBook/", "/returnBook/"])
@pytest.mark.parametrize("raw", [b"{bad json", b"[1, 2]", b'"text"', b"42", b"null", b"\xff\xfe"])
def test_malformed_or_non_object_json_is_400(api, path, raw):
    response = api.generic("POST", path, raw, content_type="application/json")
    assert_json_error(response, 400)
    assert not Loan.objects.exists()


def test_empty_body_is_400(api):
    assert_json_error(api.generic("POST", "/lendBook/", b"", content_type="application/json"), 400)


def test_wrong_content_type_is_415(api):
    response = api.generic(
        "POST", "/lendBook/", "user_email=a@b.com&book_id=1", content_type="application/x-www-form-urlencoded"
    )
    assert_json_error(response, 415, "unsupported_media_type")


def test_body_over_the_limit_is_413(api, settings):
    settings.MAX_REQUEST_BODY_BYTES = 1024
    body = {**VALID, "padding": "x" * 2048}
    assert_json_error(api.post("/lendBook/", body, format="json"), 413, "payload_too_large")


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/lendBook/"), ("PUT", "/returnBook/"), ("DELETE", "/lendBook"), ("POST", "/getExpiredBooks/")],
)
def test_wrong_method_is_405(api, method, path):
    assert_json_error(api.generic(method, path), 405, "method_not_allowed")


@pytest.mark.parametrize("path", ["/nope", "/lendBook/extra/", "/getBooks/1", "/"])
def test_unknown_path_is_404_json(api, path):
    assert_json_error(api.get(path), 404, "not_found")


def test_post_without_trailing_slash_is_not_redirected(api, peers, patron, book):
    response = api.post("/lendBook", {"user_email": patron, "book_id": book["id"]}, format="json")
    assert response.status_code == 201


def test_invalid_idempotency_key_is_400(api, peers, patron, book):
    response = api.post(
        "/lendBook/",
        {"user_email": patron, "book_id": book["id"]},
        format="json",
        headers={"Idempotency-Key": "k" * 256},
    )
    assert_json_error(response, 400, "invalid_idempotency_key")
    assert not Loan.objects.exists()


@pytest.mark.parametrize("fault", [{"status": 500}, {"status": 503}, {"status": 502}])
def test_book_peer_failure_is_503_with_retry_after_not_a_404(api, peers, patron, book, fault):
    peers.book.faults.status = fault["status"]
    response = api.post("/lendBook/", {"user_email": patron, "book_id": book["id"]}, format="json")
    assert_json_error(response, 503, "peer_unavailable")
    assert int(response["Retry-After"]) >= 1
    assert not Loan.objects.exists()


def test_user_peer_timeout_is_503_within_the_timeouts(api, peers, patron, book, settings):
    settings.PEER_READ_TIMEOUT = 0.3
    peers.user.faults.latency = 1.5
    response = api.post("/lendBook/", {"user_email": patron, "book_id": book["id"]}, format="json")
    assert_json_error(response, 503, "peer_unavailable")
    assert not Loan.objects.exists()
