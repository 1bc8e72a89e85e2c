"""How a peer call travels: libcurl (pycurl), one handle per thread and peer, each keeping its connection
alive between calls.

libcurl is the transport rather than urllib3 because a peer GET is most of a lend's client CPU: counted
with callgrind, one GET with its JSON read costs 0.69 M instructions through urllib3 (whose responses
parse their headers with the `email` package) and 0.09 M through libcurl (tools/bench/REPORT.md, run 13).

What a caller gets: the status and the body, read whole up to `max_body` bytes, or a `TransportFailure`
saying whether the call timed out and whether the peer may have seen the request (what the outbox relay's
retries rely on). Never a proxy from the environment, never a redirect followed, never anything but
HTTP(S).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pycurl


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


class TransportFailure(Exception):
    """The call failed before a whole answer came back."""

    def __init__(self, reason: str, *, timed_out: bool, reached: bool, answered: bool = False) -> None:
        super().__init__(reason)
        self.timed_out = timed_out
        self.reached = reached  # the request may have reached the peer (its outcome is then unknown)
        self.answered = answered  # the status line came back: the answer's body is what failed


class BodyTooBig(TransportFailure):
    """The answer's body is over the caller's limit (it is not read further)."""


class CurlTransport:
    """Calls to one peer (`base_url`, which may end with a path the peer is served under)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._handles = threading.local()  # a libcurl handle is for one thread at a time

    def perform(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None,
        headers: dict[str, str],
        connect_timeout: float,
        read_timeout: float,
        max_body: int,
    ) -> Answer:
        """One request; raises TransportFailure (BodyTooBig for an answer over `max_body` bytes).
        `read_timeout` bounds the whole call (libcurl's limit is for the whole call, not for each read),
        `connect_timeout` the connection within it."""
        curl = self._handle()
        received = _Body(max_body)
        curl.setopt(pycurl.URL, f"{self.base_url}{path}")
        curl.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(connect_timeout * 1000)))
        curl.setopt(pycurl.TIMEOUT_MS, max(1, int(read_timeout * 1000)))
        # `Expect:` left empty: libcurl would otherwise wait for a 100-continue before a larger body.
        curl.setopt(pycurl.HTTPHEADER, [_header_line(name, value) for name, value in headers.items()] + ["Expect:"])
        curl.setopt(pycurl.WRITEFUNCTION, received.write)
        if method == "GET":
            curl.setopt(pycurl.HTTPGET, 1)
        else:
            curl.setopt(pycurl.CUSTOMREQUEST, method)
        if body is not None:  # the caller names its type (Content-Type), or libcurl would say it is a form
            curl.setopt(pycurl.POSTFIELDS, body)
        try:
            curl.perform()
        except pycurl.error as exc:
            raise _failure(curl, exc, received) from None
        return Answer(curl.getinfo(pycurl.RESPONSE_CODE), received.whole())

    def _handle(self) -> pycurl.Curl:
        curl = getattr(self._handles, "curl", None)
        if curl is None:
            curl = self._handles.curl = pycurl.Curl()
        else:
            curl.reset()  # every option back to its default; the kept connection stays
        curl.setopt(pycurl.NOSIGNAL, 1)  # no SIGALRM for timeouts: the process has threads
        curl.setopt(pycurl.PROXY, "")  # no proxy from the environment
        curl.setopt(pycurl.FOLLOWLOCATION, 0)
        # The path as the client built it: libcurl would resolve `.` and `..` segments, `%2E` included
        # (`lending.clients.http.path_segment` escapes them so that a barcode `..` stays one segment).
        curl.setopt(pycurl.PATH_AS_IS, 1)
        curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        return curl


def _header_line(name: str, value: str) -> str:
    """`Name: value`, refused (ValueError, as `http.client` refuses it) when a line break or NUL would let
    the value end the header and write another: libcurl sends what it is given."""
    if any(character in value or character in name for character in "\r\n\x00"):
        raise ValueError(f"Invalid header value for {name!r}")
    return f"{name}: {value}"


class _Body:
    """The answer's body as it arrives, refused past `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.too_big = False

    def write(self, chunk: bytes) -> int | None:
        self.size += len(chunk)
        if self.size > self.limit:
            self.too_big = True
            return 0  # fewer bytes taken than given: libcurl stops the transfer (CURLE_WRITE_ERROR)
        self.parts.append(chunk)
        return None

    def whole(self) -> bytes:
        return b"".join(self.parts)


# libcurl's codes for a call that never connected: the peer cannot have seen it.
_NOT_CONNECTED = frozenset({pycurl.E_COULDNT_RESOLVE_HOST, pycurl.E_COULDNT_CONNECT, pycurl.E_UNSUPPORTED_PROTOCOL})


def _failure(curl: pycurl.Curl, exc: pycurl.error, received: _Body) -> TransportFailure:
    code, message = exc.args[0], exc.args[1] if len(exc.args) > 1 else ""
    # Once libcurl was about to send (PRETRANSFER), the request may have reached the peer.
    reached = code not in _NOT_CONNECTED and curl.getinfo(pycurl.PRETRANSFER_TIME) > 0
    answered = curl.getinfo(pycurl.RESPONSE_CODE) > 0
    if received.too_big:
        return BodyTooBig(f"answered a body over {received.limit} bytes", timed_out=False, reached=True, answered=True)
    if code == pycurl.E_OPERATION_TIMEDOUT:
        return TransportFailure(
            f"timed out: {'read' if reached else 'connect'} ({message})", timed_out=True, reached=reached
        )
    return TransportFailure(f"libcurl error {code}: {message}", timed_out=False, reached=reached, answered=answered)
