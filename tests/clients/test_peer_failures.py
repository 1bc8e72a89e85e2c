"""Peers failing never corrupts us: down, hanging, broken or garbage-speaking peers give a fast 503
with Retry-After; the circuit breaker stops calling a dead peer and recovers without a restart; the
correlation id travels to the peers."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lending.clients import books, users
from lending.clients.http import peer_client
from lending.errors import PeerUnavailable
from lending.models import Loan
from tests.conftest import post_json
from tools.reference_peers import UserPeer

pytestmark = pytest.mark.django_db


def lend(api, email, book_id, **headers):
    return post_json(api, "/lendBook/", {"user_email": email, "book_id": book_id}, **headers)


def assert_503(response) -> None:
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "peer_unavailable"
    assert int(response["Retry-After"]) >= 1


@pytest.fixture
def own_user_peer(peers, settings):
    """A User peer of this test's own (so it can be stopped and restarted on its port), with a
    fresh client and breaker: the client is keyed by URL."""
    peer = UserPeer().start()
    peer.add_user("reader@example.com")
    settings.USER_MANAGEMENT_URL = peer.url
    peer_client(users.PEER, peer.url).breaker.close()
    yield peer
    peer.stop()


@contextlib.contextmanager
def recording_headers(peer):
    """Records the headers of every request the peer routes."""
    seen: list[dict] = []
    original = list(peer.router.routes)

    def wrap(handler):
        def recorded(request):
            seen.append({k.lower(): v for k, v in request.headers.items()})
            return handler(request)

        return recorded

    peer.router.routes = [(method, pattern, wrap(handler)) for method, pattern, handler in original]
    try:
        yield seen
    finally:
        peer.router.routes = original


@contextlib.contextmanager
def answering(write_answer, *, keep_alive: bool = False):
    """A peer (its URL) that answers every GET with what `write_answer(handler)` writes; with
    `keep_alive`, over HTTP/1.1 connections it keeps open (else each answer closes its connection)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

        def do_GET(self):
            write_answer(self)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def raw_server(status: int, body: bytes, content_type: str = "text/html"):
    """A peer that answers every request with the given bytes."""

    def write(handler):
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    with answering(write) as url:
        yield url


def test_user_peer_down_breaker_opens_returns_work_and_lending_resumes(api, peers, own_user_peer, settings):
    settings.PEER_CONNECT_TIMEOUT = 5.0
    book = peers.book.add_book("Kept", "A", 5)
    before_outage = lend(api, "reader@example.com", book["id"])
    assert before_outage.status_code == 201
    own_user_peer.stop()
    client = peer_client(users.PEER, own_user_peer.url)

    for _ in range(settings.PEER_BREAKER_FAIL_MAX):
        assert_503(lend(api, "reader@example.com", book["id"]))
    assert client.breaker.current_state == "open"

    calls = []
    real_request = client.transport.perform
    client.transport.perform = lambda *a, **k: calls.append(a) or real_request(*a, **k)
    try:
        started = time.monotonic()
        fast = lend(api, "reader@example.com", book["id"])
        elapsed = time.monotonic() - started
    finally:
        client.transport.perform = real_request
    assert_503(fast)
    assert calls == [], "an open breaker does not call the peer"
    assert elapsed < settings.PEER_CONNECT_TIMEOUT / 2

    returned = post_json(api, "/returnBook/", {"user_email": "reader@example.com", "book_id": book["id"]})
    assert returned.status_code == 200 and returned.json()["status"] == "RETURNED"

    own_user_peer.start()  # the same port again
    deadline = time.monotonic() + 30
    while (response := lend(api, "reader@example.com", book["id"])).status_code == 503:
        assert time.monotonic() < deadline, "lending never resumed after the peer came back"
        time.sleep(0.1)
    assert response.status_code == 201
    assert client.breaker.current_state == "closed"
    assert Loan.objects.filter(book_id=book["id"], date_returned__isnull=True).count() == 1


def test_a_hanging_peer_gives_503_within_the_read_timeout(api, peers, patron, book, settings):
    settings.PEER_READ_TIMEOUT = 0.3
    peers.user.faults.latency = 5

    started = time.monotonic()
    response = lend(api, patron, book["id"])
    elapsed = time.monotonic() - started

    assert_503(response)
    assert elapsed < 3, "the worker waited for the hanging peer instead of timing out"
    assert not Loan.objects.exists()


def test_the_call_that_opens_the_breaker_is_still_one_whose_outcome_is_unknown(peers, settings):
    """pybreaker answers the failure that trips it with its own error: that call was made all the
    same, so a timed-out write may still be applied by the peer (the relay then leaves a re-check)."""
    from lending.clients import books

    settings.PEER_READ_TIMEOUT = 0.3
    book = peers.book.add_book("Hung", "A", 1)
    breaker = peer_client(books.PEER, settings.BOOK_MANAGEMENT_URL).breaker
    fail_max, breaker.fail_max = breaker.fail_max, 1
    peers.book.faults.latency = 1
    try:
        with pytest.raises(PeerUnavailable) as tripping:
            books.publish_availability(book["id"], False, idempotency_key="trips-the-breaker")
        assert tripping.value.outcome_unknown and "circuit breaker opened" in tripping.value.reason
        with pytest.raises(PeerUnavailable) as refused:
            books.publish_availability(book["id"], False, idempotency_key="meets-the-open-breaker")
        assert not refused.value.outcome_unknown, "an open breaker sends nothing"
    finally:
        breaker.fail_max = fail_max


@pytest.mark.parametrize("peer_name", ["user", "book"])
def test_a_peer_answering_500_is_503_never_4xx(api, peers, patron, book, peer_name):
    getattr(peers, peer_name).faults.status = 500
    assert_503(lend(api, patron, book["id"]))
    assert not Loan.objects.exists()


@pytest.mark.parametrize(
    "status, body, content_type",
    [
        (200, b"<html>oops</html>", "text/html"),
        (200, b"{not json", "application/json"),
        (200, b"[1, 2, 3]", "application/json"),
        (200, b'{"id": 1, "quantity": "many"}', "application/json"),
        (200, b'{"id": 1, "quantity": -1}', "application/json"),
        (502, b"Bad Gateway", "text/plain"),
        (418, b"teapot", "text/plain"),
    ],
)
@pytest.mark.parametrize("peer_name", ["user", "book"])
def test_a_peer_answering_garbage_is_503_never_400_or_404(
    api, peers, patron, book, settings, peer_name, status, body, content_type
):
    with raw_server(status, body, content_type) as url:
        setattr(settings, "USER_MANAGEMENT_URL" if peer_name == "user" else "BOOK_MANAGEMENT_URL", url)
        response = lend(api, patron, book["id"])
    if peer_name == "user" and body.startswith(b'{"id"'):
        # A dict is a valid user answer (`active` defaults to true): the book peer decides.
        assert response.status_code == 201
        return
    assert_503(response)
    assert not Loan.objects.exists()


def test_the_request_id_is_echoed_and_forwarded_to_every_peer(api, peers, patron, book):
    with recording_headers(peers.user) as user_seen, recording_headers(peers.book) as book_seen:
        response = lend(api, patron, book["id"], **{"X-Request-ID": "trace-42.abc"})

    assert response.status_code == 201
    assert response["X-Request-ID"] == "trace-42.abc"
    assert [h.get("x-request-id") for h in user_seen] == ["trace-42.abc"]
    assert [h.get("x-request-id") for h in book_seen] == ["trace-42.abc"]


@pytest.mark.parametrize("incoming", [None, "", "has spaces", "x" * 129, "new\nline"])
def test_a_missing_or_unsafe_request_id_is_replaced_by_a_generated_one(api, peers, patron, book, incoming):
    headers = {} if incoming is None else {"X-Request-ID": incoming}
    with recording_headers(peers.user) as user_seen:
        response = lend(api, patron, book["id"], **headers)

    generated = response["X-Request-ID"]
    assert generated and generated != incoming and len(generated) == 32
    assert user_seen[0]["x-request-id"] == generated


def test_error_responses_carry_the_request_id_too(api):
    response = post_json(api, "/lendBook/", {}, **{"X-Request-ID": "bad-input-1"})
    assert response.status_code == 400 and response["X-Request-ID"] == "bad-input-1"


def test_the_relay_forwards_a_correlation_id_and_the_idempotency_key(api, peers, patron, book):
    from lending.models import OutboxMessage
    from lending.outbox import relay

    lend(api, patron, book["id"])
    with recording_headers(peers.notification) as seen:
        relay.run_once()
    key = str(OutboxMessage.objects.get(kind="notification").key)
    assert [(h["idempotency-key"], h["x-request-id"]) for h in seen] == [(key, f"outbox-{key}")]


def test_idempotent_gets_are_retried_once_on_a_transient_failure(peers, settings):
    calls = []
    with raw_server(503, b"busy", "text/plain") as url:
        client = peer_client("retry-probe", url)
        real_request = client.transport.perform
        client.transport.perform = lambda *a, **k: calls.append(a) or real_request(*a, **k)
        with pytest.raises(PeerUnavailable):
            client.get("/anything")
        client.transport.perform = real_request
    assert len(calls) == 2


def test_concurrent_calls_to_one_peer_run_side_by_side(peers, settings):
    """A slow answer must not make the other threads of a worker queue behind it."""
    settings.PEER_READ_TIMEOUT = 20
    in_flight, peak, lock = 0, 0, threading.Lock()
    both_in = threading.Event()
    original = list(peers.user.router.routes)

    def slow(handler):
        def wrapped(request):
            nonlocal in_flight, peak
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
                if in_flight >= 2:
                    both_in.set()
            both_in.wait(8)  # wait for a second concurrent call, or give up
            with lock:
                in_flight -= 1
            return handler(request)

        return wrapped

    peers.user.router.routes = [(m, p, slow(h)) for m, p, h in original]
    errors = []

    def call():
        try:
            users.ensure_active_user("alice@example.com")
        except Exception as exc:  # recorded, asserted below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=call) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        peers.user.router.routes = original
    assert errors == []
    assert peak >= 2, "peer calls were serialised"


def test_a_peer_served_under_a_path_is_called_there(peers, settings):
    """A peer URL with a path (behind a gateway, `http://gateway/books-service`): each call's path follows it."""
    asked: list[str] = []

    def write(handler):
        asked.append(handler.path)
        body = json.dumps({"id": 7, "title": "Under a path", "author": "A", "quantity": 1}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    with answering(write) as url:
        settings.BOOK_MANAGEMENT_URL = f"{url}/books-service/"
        assert books.get_book(7).title == "Under a path"
    assert asked == ["/books-service/getBooks/7"]


def test_a_redirect_is_not_followed(peers, settings):
    """A peer answering 302 elsewhere is not followed there (the answer is the peer's, and it is not one)."""
    followed: list[str] = []

    def write(handler):
        followed.append(handler.path)
        handler.send_response(302)
        handler.send_header("Location", "/elsewhere")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    with answering(write) as url:
        settings.BOOK_MANAGEMENT_URL = url
        with pytest.raises(PeerUnavailable):
            books.get_book(7)
    assert followed == ["/getBooks/7"]
