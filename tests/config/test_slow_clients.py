"""Slow and stalled clients against the real web server (issue 11, item 2), plus what the server
answers by itself (oversized request lines and headers, chunked bodies, forwarded headers).

A gunicorn process with the deployment's config (`docker/gunicorn.conf.py`: one worker of 4 threads
here) on a free port. Stock gthread gives each connection a thread as soon as its first byte
arrives, so a handful of half-sent requests used to stop it, liveness probe included. No timings
are asserted: only that answers come at all within generous timeouts.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from config.gunicorn_worker import COMPLETE, WAIT_BODY, WAIT_HEAD, Limits, assess
from tests.processes import ROOT, database_url, service_env, wait_until
from tools.harness.processes import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

STALLED = 60
READ_TIMEOUT = 2  # seconds, for the head and for the body: short so the test ends soon


@pytest.fixture(scope="module")
def server(_running_peers, django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        dsn = database_url()
    port = free_port()
    env = service_env(
        _running_peers,
        DATABASE_URL=dsn,
        DJANGO_DEBUG="False",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(32),
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="False",
        REQUIRE_API_KEY="False",
        LOG_LEVEL="WARNING",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="1",
        GUNICORN_THREADS="4",
        GUNICORN_HEADER_TIMEOUT=str(READ_TIMEOUT),
        GUNICORN_BODY_TIMEOUT=str(READ_TIMEOUT),
        GUNICORN_WORKER_TMP_DIR="/tmp",
    )
    for name in ("GUNICORN_WORKER_CLASS", "PROMETHEUS_MULTIPROC_DIR"):  # the deployment's worker; no metric files
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "docker/gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: status_of(f"{base}/health/live/") == 200, timeout=60), "the server did not start"
        yield base, port
    finally:
        process.terminate()
        process.wait(timeout=30)


def status_of(url: str, data: bytes | None = None, timeout: float = 10) -> int | None:
    headers = {"Content-Type": "application/json"}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def raw_exchange(port: int, request: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def split_answer(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def stalled_requests(patron: str, book_id: int) -> list[tuple[bytes, bool]]:
    """Half-sent requests of every kind, each with whether it goes on trickling a byte a second."""
    body = json.dumps({"user_email": patron, "book_id": book_id}).encode()
    head = b"POST /lendBook/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    kinds = [
        (b"GET /health/li", False),  # mid request line
        (b"GET /health/live/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ", False),  # mid headers
        (head + b"Content-Length: %d\r\n\r\n" % len(body) + body[:5], False),  # mid body
        (head + b"Transfer-Encoding: chunked\r\n\r\n5\r\n" + body[:5], False),  # mid chunked body
        (b"GET /health/live/ HTTP/1.1\r\nX-Trickle: ", True),  # a byte a second
    ]
    return [kinds[i % len(kinds)] for i in range(STALLED)]


class Stall:
    """STALLED sockets holding half-sent requests, some trickling; notes which the server closed."""

    def __init__(self, port: int, requests: list[tuple[bytes, bool]]) -> None:
        self.sockets = []
        for payload, trickles in requests:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(payload)
            self.sockets.append((sock, trickles))
        self.stop = threading.Event()
        self.trickler = threading.Thread(target=self._trickle, daemon=True)
        self.trickler.start()

    def _trickle(self) -> None:
        while not self.stop.wait(1.0):
            for sock, trickles in self.sockets:
                if trickles:
                    with contextlib.suppress(OSError):
                        sock.send(b"a")

    def closed_by_server(self) -> int:
        closed = 0
        for sock, _ in self.sockets:
            sock.setblocking(False)
            try:
                data = sock.recv(65536)
                closed += data == b"" or data.startswith(b"HTTP/1.1 408")
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
        return closed

    def close(self) -> None:
        self.stop.set()
        self.trickler.join()
        for sock, _ in self.sockets:
            sock.close()


def test_stalled_clients_leave_the_probe_and_lends_answering_and_are_closed(server, peers, patron):
    base, port = server
    books = [peers.book.add_book("Slow clients", "Test", 1)["id"] for _ in range(3)]
    stall = Stall(port, stalled_requests(patron, books[0]))
    try:
        assert status_of(f"{base}/health/live/", timeout=10) == 200
        lend = json.dumps({"user_email": patron, "book_id": books[1]}).encode()
        assert status_of(f"{base}/lendBook/", data=lend, timeout=10) == 201
        # Every stalled socket is answered 408 and closed after the read timeout, trickling ones too.
        assert wait_until(lambda: stall.closed_by_server() == STALLED, timeout=READ_TIMEOUT + 20)
        assert status_of(f"{base}/health/live/", timeout=10) == 200
    finally:
        stall.close()


def test_a_body_shorter_than_its_length_is_408_json(server):
    _, port = server
    answer = raw_exchange(port, b"POST /lendBook/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 50\r\n\r\n{}")
    status, headers, body = split_answer(answer)
    assert status == 408
    assert headers["content-type"] == "application/json"
    assert headers["x-request-id"]
    assert json.loads(body)["error"]["code"] == "request_timeout"


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 414, "request_line_too_long"),
        (b"GET /health/live/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431, None),
        (b"GET /health/live/ HTTP/1.1\r\n" + b"X-Big: " + b"a" * 70_000, 431, "request_headers_too_large"),
        (b"POST /lendBook/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999\r\n\r\n", 413, None),
        (b"NOT HTTP AT ALL\r\n\r\n", 400, "bad_request"),
    ],
)
def test_what_the_server_refuses_itself_is_json(server, request_bytes, status, code):
    _, port = server
    answered, headers, body = split_answer(raw_exchange(port, request_bytes))
    assert answered == status
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["message"]
    if code:
        assert error["code"] == code


def test_a_chunked_lend_reaches_django(server, peers, patron, book):
    _, port = server
    body = json.dumps({"user_email": patron, "book_id": book["id"]}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:])) + b"0\r\n\r\n"
    request = (
        b"POST /lendBook/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    )
    status, _, answer = split_answer(raw_exchange(port, request))
    assert status == 201, answer


LIMITS = Limits(request_line=100, head=1000, body=100)


@pytest.mark.parametrize(
    ("data", "verdict"),
    [
        (b"GET /a", WAIT_HEAD),
        (b"GET /a HTTP/1.1\r\nHost: x\r\n", WAIT_HEAD),
        (b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", COMPLETE),
        (b"GET /" + b"a" * 200, 414),
        (b"GET /a HTTP/1.1\r\n" + b"X: " + b"a" * 2000, 431),
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", WAIT_BODY),
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde", COMPLETE),
        (b"POST / HTTP/1.1\r\ncontent-length: 500\r\n\r\n", 413),
        (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", COMPLETE),  # gunicorn's parser answers 400
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", WAIT_BODY),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n", WAIT_BODY),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", COMPLETE),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n0\r\nT: 1\r\n\r\n", COMPLETE),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", COMPLETE),  # malformed: parser's 400
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nff\r\n", 413),
    ],
)
def test_assess_tells_when_a_request_has_fully_arrived(data, verdict):
    assert assess(data, LIMITS) == verdict
