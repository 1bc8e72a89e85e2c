"""gunicorn's gthread worker, except that a thread only ever sees a request that has fully arrived.

Stock gthread hands a connection to a thread as soon as its first byte arrives; the thread then
blocks in recv() until the request line, the headers and the body are in. A client that sends half
a request line and waits holds that thread forever: 16 such sockets stopped `make run`, liveness
probe included. Here the worker's event loop (the one that already accepts connections and watches
kept-alive ones) reads each request into memory without blocking, under two deadlines:

- the head (request line and headers) must be complete within GUNICORN_HEADER_TIMEOUT seconds of
  the connection being accepted, or of its first byte after a kept-alive pause;
- the body (Content-Length or chunked) within GUNICORN_BODY_TIMEOUT seconds after the head.

A client past a deadline gets a JSON 408 and is closed, however slowly it trickles. Only then does
the request go to a thread, which parses it with gunicorn's own parser from memory and never waits
on the client. Bodies are small here (MAX_REQUEST_BODY_BYTES, 16 KiB by default), so holding them
costs little; a body announced larger is refused with 413 before it is read.

Whatever the server itself answers (a request line or headers too long, a malformed request, a
timeout, a crash outside Django) is the service's one JSON error shape with a request id, one log
line and a count in `lending_server_rejections_total`, instead of gunicorn's HTML page.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from gunicorn import http, util

if TYPE_CHECKING:
    from prometheus_client import Counter
from gunicorn.workers.gthread import TConn, ThreadWorker

HEAD_END = b"\r\n\r\n"
CRLF = b"\r\n"
# Far above any real client's headers; gunicorn's own per-field and field-count limits still apply.
MAX_HEAD_BYTES = 64 * 1024
RECV_BYTES = 64 * 1024
REQUEST_ID_HEADER = "X-Request-ID"

ERRORS = {
    400: ("bad_request", "The request could not be understood."),
    403: ("forbidden", "The request is not allowed."),
    408: ("request_timeout", "The request did not arrive in time."),
    413: ("payload_too_large", "The request body is too large."),
    414: ("request_line_too_long", "The request line is too long."),
    417: ("expectation_failed", "Only the 100-continue expectation is supported."),
    431: ("request_headers_too_large", "The request headers are too large."),
    501: ("not_implemented", "The transfer coding is not supported."),
}
INTERNAL_ERROR = ("internal_error", "An unexpected error occurred.")


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


# --- What the server answers by itself ---------------------------------------------------------------


def _rejections():
    """The counter, created on first use: prometheus_client must see PROMETHEUS_MULTIPROC_DIR first."""
    global _REJECTIONS
    if _REJECTIONS is None:
        from prometheus_client import Counter

        _REJECTIONS = Counter(
            "lending_server_rejections_total",
            "Requests the web server answered itself, before Django: malformed, too large or too slow.",
            ["status"],
        )
    return _REJECTIONS


_REJECTIONS: Counter | None = None


def error_response(status: int) -> tuple[bytes, str]:
    """The raw HTTP answer in the service's error shape, and the request id it carries."""
    code, message = ERRORS.get(status, INTERNAL_ERROR)
    request_id = uuid.uuid4().hex
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status} {code.replace('_', ' ').title()}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"{REQUEST_ID_HEADER}: {request_id}\r\n"
        "Cache-Control: no-store\r\n\r\n"
    )
    return head.encode("latin-1") + body, request_id


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """Replaces gunicorn.util.write_error (an HTML page) for the errors gunicorn's parser raises."""
    answer, _ = error_response(status_int)
    _rejections().labels(str(status_int)).inc()
    util.write_nonblock(sock, answer)


# gunicorn's worker calls util.write_error for every request it cannot hand to the application.
util.write_error = write_json_error


# --- Is the request all there? ------------------------------------------------------------------------

WAIT_HEAD = "head"
WAIT_BODY = "body"
COMPLETE = "complete"
HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


@dataclass(frozen=True)
class Limits:
    request_line: int
    head: int
    body: int


def assess(data: bytes, limits: Limits) -> str | int:
    """WAIT_HEAD, WAIT_BODY, COMPLETE, or the status to refuse the request with.

    Only framing is looked at here; anything malformed counts as COMPLETE so that gunicorn's parser,
    which knows every rule, rejects it (in JSON) from memory.
    """
    head_end = data.find(HEAD_END)
    if head_end < 0:
        if data.find(CRLF) < 0 and len(data) > limits.request_line:
            return 414
        return 431 if len(data) > limits.head else WAIT_HEAD
    if head_end > limits.head:
        return 431
    framing = _framing(bytes(data[:head_end]))
    body = memoryview(data)[head_end + len(HEAD_END) :]
    if isinstance(framing, str):  # "chunked", the only text _framing answers
        return _chunked_state(body, limits.body)
    if framing is None:
        return COMPLETE
    if framing > limits.body:
        return 413
    return COMPLETE if len(body) >= framing else WAIT_BODY


def _framing(head: bytes) -> int | str | None:
    """The body's length, "chunked", or None (no body, or framing only gunicorn's parser can judge)."""
    lengths, codings = [], []
    for line in head.split(CRLF)[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            lengths.append(value.strip())
        elif name == b"transfer-encoding":
            codings.append(value.strip().lower())
    if codings:
        return "chunked" if not lengths and codings[-1].endswith(b"chunked") else None
    if len(lengths) == 1 and lengths[0].isdigit():
        return int(lengths[0])
    return None


def _chunked_state(body: memoryview, max_body: int) -> str | int:
    """Walks the chunks that have arrived: COMPLETE at the last chunk and its trailers."""
    raw = body.tobytes()
    position, total = 0, 0
    while True:
        line_end = raw.find(CRLF, position)
        if line_end < 0:
            return WAIT_BODY if len(raw) - position <= 1024 else COMPLETE
        size_text = raw[position:line_end].split(b";", 1)[0].strip()
        if not HEX.fullmatch(size_text):
            return COMPLETE
        size = int(size_text, 16)
        total += size
        if total > max_body:
            return 413
        position = line_end + len(CRLF)
        if size == 0:
            trailers_end = position if raw.startswith(CRLF, position) else raw.find(HEAD_END, position - 2)
            return COMPLETE if trailers_end >= 0 else WAIT_BODY
        position += size + len(CRLF)
        if position > len(raw):
            return WAIT_BODY


def expects_continue(data: bytes) -> bool:
    head = bytes(data[: data.find(HEAD_END)]).lower()
    return b"\r\nexpect:" in head and b"100-continue" in head and not head.split(CRLF, 1)[0].endswith(b"/1.0")


# --- The worker --------------------------------------------------------------------------------------


@dataclass
class Arriving:
    """A request on its way in: what has arrived and when it must be complete."""

    conn: TConn
    deadline: float
    data: bytearray = field(default_factory=bytearray)
    reading_body: bool = False


class BufferingWorker(ThreadWorker):
    """ThreadWorker whose event loop reads each request whole before handing it to a thread."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = _env_float("GUNICORN_HEADER_TIMEOUT", 5.0)
        self.body_timeout = _env_float("GUNICORN_BODY_TIMEOUT", 5.0)
        self.limits = Limits(
            request_line=self.cfg.limit_request_line or MAX_HEAD_BYTES,
            head=MAX_HEAD_BYTES,
            body=_env_int("MAX_REQUEST_BODY_BYTES", 16 * 1024),
        )
        self.arriving: dict[object, Arriving] = {}

    def enqueue_req(self, conn) -> None:
        """Every path to a thread (a new connection, a kept-alive one, pipelined bytes) comes here."""
        pending = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        conn.sock.setblocking(False)
        arriving = Arriving(conn, time.monotonic() + self.header_timeout, bytearray(pending))
        self.arriving[conn] = arriving
        if pending and self._progress(arriving):
            return
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, arriving))

    def _on_readable(self, arriving: Arriving, sock) -> None:
        try:
            chunk = sock.recv(RECV_BYTES)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:  # the client went away
            self._unwatch(arriving)
            self._close(arriving)
            return
        arriving.data += chunk
        self._progress(arriving)

    def _progress(self, arriving: Arriving) -> bool:
        """Hands a complete request to a thread or answers a refused one; True when it did either."""
        verdict = assess(arriving.data, self.limits)
        if verdict == COMPLETE:
            self._unwatch(arriving)
            self.arriving.pop(arriving.conn, None)
            self._to_thread(arriving)
            return True
        if isinstance(verdict, int):
            self._unwatch(arriving)
            self._refuse(arriving, verdict)
            return True
        if verdict == WAIT_BODY and not arriving.reading_body:
            arriving.reading_body = True
            arriving.deadline = time.monotonic() + self.body_timeout
            if expects_continue(arriving.data):
                util.write_nonblock(arriving.conn.sock, b"HTTP/1.1 100 Continue\r\n\r\n")
        return False

    def _to_thread(self, arriving: Arriving) -> None:
        conn = arriving.conn
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        conn.parser.unreader.unread(bytes(arriving.data))
        conn.data_ready = True  # gthread's own wait for a first byte would be pointless now
        super().enqueue_req(conn)

    def _refuse(self, arriving: Arriving, status: int) -> None:
        answer, request_id = error_response(status)
        _rejections().labels(str(status)).inc()
        self.log.warning(
            "Refused request from ip=%s: %s %s (request id %s)",
            arriving.conn.client[0] if arriving.conn.client else "",
            status,
            ERRORS[status][0],
            request_id,
        )
        with contextlib.suppress(OSError):
            arriving.conn.sock.send(answer)
        self._close(arriving)

    def _unwatch(self, arriving: Arriving) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(arriving.conn.sock)

    def _close(self, arriving: Arriving) -> None:
        self.arriving.pop(arriving.conn, None)
        self.nr_conns -= 1
        arriving.conn.close()

    def murder_pending(self) -> None:
        """gthread's run loop calls this about once a second: also drop requests past their deadline."""
        super().murder_pending()
        now = time.monotonic()
        for arriving in [a for a in self.arriving.values() if a.deadline <= now]:
            self._unwatch(arriving)
            self._refuse(arriving, 408)
