"""How `lending.clients.http` reads a peer's answer: whole when it is within MAX_PEER_BODY_BYTES, whether
the peer sends a Content-Length or chunks; refused (the peer unavailable) when over it or cut short."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pytest

from lending.clients import http
from lending.errors import PeerUnavailable
from tests.clients.test_peer_failures import answering

LIMIT = 1000


@contextmanager
def peer_sending(write_answer):
    """A client of a peer whose every answer `write_answer(wfile)` writes, raw (status line and headers
    included), on a connection it then closes."""

    def write(handler):
        write_answer(handler.wfile)
        handler.close_connection = True

    with answering(write) as url:
        yield http.PeerClient("test_peer", url)


def chunked(body: bytes, size: int = 100):
    def write(wfile):
        wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        for start in range(0, len(body), size):
            piece = body[start : start + size]
            wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        wfile.write(b"0\r\n\r\n")

    return write


def with_length(body: bytes, declared: int | None = None):
    def write(wfile):
        length = len(body) if declared is None else declared
        wfile.write(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n".encode())
        wfile.write(body)

    return write


@pytest.fixture(autouse=True)
def _small_limit(monkeypatch, settings):
    monkeypatch.setattr(http, "MAX_PEER_BODY_BYTES", LIMIT)
    settings.PEER_READ_TIMEOUT = 2.0


def padded(size: int) -> bytes:
    """A JSON object of exactly `size` bytes."""
    skeleton = json.dumps({"pad": ""}).encode()
    return json.dumps({"pad": "x" * (size - len(skeleton))}).encode()


@pytest.mark.parametrize("answer", [with_length, chunked], ids=["content-length", "chunked"])
def test_a_body_up_to_the_limit_is_read_whole(answer):
    body = padded(LIMIT)
    with peer_sending(answer(body)) as client:
        assert client.get("/x").data == json.loads(body)


@pytest.mark.parametrize("answer", [with_length, chunked], ids=["content-length", "chunked"])
def test_a_body_one_byte_over_the_limit_is_the_peer_unavailable(answer):
    with peer_sending(answer(padded(LIMIT + 1))) as client, pytest.raises(PeerUnavailable, match="over 1000 bytes"):
        client.get("/x")


def test_a_body_cut_short_is_the_peer_unavailable_with_an_unknown_outcome():
    cut = peer_sending(with_length(b'{"pad": "xx', declared=200))
    with cut as client, pytest.raises(PeerUnavailable, match="unreadable answer") as refused:
        client.get("/x")
    assert refused.value.outcome_unknown
