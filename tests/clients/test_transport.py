"""`lending.clients.transport`: what a peer call through libcurl answers, and how it fails: whether it timed
out, and whether the peer may have seen the request (the relay's retries rely on it)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from lending.clients.transport import Answer, BodyTooBig, CurlTransport, TransportFailure
from tests.clients.test_peer_failures import answering


def call(url: str, path: str = "/x", *, read_timeout: float = 2.0, max_body: int = 1000) -> Answer:
    return CurlTransport(url).perform(
        "GET",
        path,
        body=None,
        headers={"Accept": "application/json"},
        connect_timeout=1.0,
        read_timeout=read_timeout,
        max_body=max_body,
    )


@contextlib.contextmanager
def silent_peer():
    """A peer that accepts connections and never answers (its URL), and how many it accepted."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept():
        with contextlib.suppress(OSError):
            while True:
                accepted.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        listener.close()
        for connection in accepted:
            connection.close()


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]  # closed again on leaving: nothing listens there


def test_a_refused_connection_leaves_no_doubt_about_the_outcome():
    with pytest.raises(TransportFailure) as refused:
        call(f"http://127.0.0.1:{closed_port()}")
    assert not refused.value.reached and not refused.value.timed_out and not refused.value.answered


def test_a_peer_that_never_answers_times_out_within_the_read_timeout_and_may_have_seen_the_request():
    with silent_peer() as (url, accepted):
        started = time.monotonic()
        with pytest.raises(TransportFailure) as silent:
            call(url, read_timeout=0.3)
        elapsed = time.monotonic() - started
    assert silent.value.timed_out and silent.value.reached and "timed out: read" in str(silent.value)
    assert elapsed < 1.5, "the call waited past its read timeout"
    assert len(accepted) == 1


def test_a_thread_keeps_its_connection_and_another_thread_has_its_own():
    connections: set[int] = set()

    def write(handler):
        connections.add(handler.client_address[1])  # the client's port: one per connection
        handler.send_response(200)
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        handler.wfile.write(b"{}")

    with answering(write, keep_alive=True) as url:
        transport = CurlTransport(url)

        def ask() -> Answer:
            return transport.perform(
                "GET", "/x", body=None, headers={}, connect_timeout=1.0, read_timeout=2.0, max_body=100
            )

        assert [ask(), ask(), ask()] == [Answer(200, b"{}")] * 3
        assert len(connections) == 1, "one connection, kept alive"
        other = threading.Thread(target=ask)
        other.start()
        other.join()
    assert len(connections) == 2, "a thread of its own, a connection of its own"


def test_no_proxy_from_the_environment_is_used(monkeypatch):
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")

    def write(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        handler.wfile.write(b"[]")

    with answering(write) as url:
        assert call(url) == Answer(200, b"[]")


def test_a_body_over_the_limit_is_refused_as_soon_as_it_passes_it():
    def write(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", "5000")
        handler.end_headers()
        handler.wfile.write(b"x" * 5000)

    with answering(write) as url, pytest.raises(BodyTooBig, match="over 1000 bytes") as too_big:
        call(url, max_body=1000)
    assert too_big.value.reached and too_big.value.answered


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\x00b"])
def test_a_header_value_that_would_write_another_header_is_refused(value):
    seen: list = []

    def write(handler):
        seen.append(dict(handler.headers))
        handler.send_response(200)
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        handler.wfile.write(b"{}")

    with answering(write) as url, pytest.raises(ValueError, match="Invalid header value"):
        CurlTransport(url).perform(
            "GET",
            "/x",
            body=None,
            headers={"Idempotency-Key": value},
            connect_timeout=1.0,
            read_timeout=2.0,
            max_body=100,
        )
    assert seen == [], "nothing was sent"
