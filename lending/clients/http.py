"""The shared machinery for calling peers: keep-alive connections to each peer (libcurl,
`lending.clients.transport`), explicit connect and read timeouts, one jittered retry for idempotent GETs,
a circuit breaker, the correlation id and the trace context.

Every failure (connection refused, timeout, 5xx, a body that is not the JSON we expect) becomes
`PeerUnavailable`, which the API answers with 503 and `Retry-After`. So does an answer we refuse to
read: a body over MAX_PEER_BODY_BYTES, JSON that is not strict (duplicate keys, NaN, deeper than
the parser allows; lending/strict_json.py). A 4xx from the peer is an answer,
not a failure: callers decide what it means (404 = no such book, for instance).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pybreaker
from django.conf import settings

from lending.clients.transport import Answer, BodyTooBig, CurlTransport, TransportFailure
from lending.errors import PeerUnavailable
from lending.observability import metrics, tracing
from lending.request_context import current_request_id
from lending.strict_json import loads_strict

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({502, 503, 504})
# Far more than any answer of the peers' contracts (one book, one user); a bigger body is not read.
MAX_PEER_BODY_BYTES = 1024 * 1024


class PeerFailure(Exception):
    """Counted by the circuit breaker; turned into PeerUnavailable for callers."""

    def __init__(self, reason: str, *, outcome_unknown: bool = False) -> None:
        super().__init__(reason)
        self.outcome_unknown = outcome_unknown


def _outcome_of(failure: PeerFailure) -> str:
    """The `outcome` label of the peer-call metrics."""
    return "timeout" if str(failure).startswith("timed out") else "error"


@dataclass(frozen=True)
class PeerResponse:
    status: int
    data: Any


class ConcurrentCircuitBreaker(pybreaker.CircuitBreaker):
    """pybreaker's `call` holds the breaker's lock for the whole guarded call, so every thread of a
    process calling one peer would queue behind the slowest call (gthread workers, the relay's
    threads). Here only the state changes take the lock (pybreaker does that inside `open`,
    `half_open` and `close`); the peer calls themselves run side by side."""

    def call(self, func, *args, **kwargs):
        return self.state.call(func, *args, **kwargs)


class PeerClient:
    """HTTP access to one peer service."""

    def __init__(self, name: str, base_url: str) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        # Peers are called directly (no proxy), never redirected, retried only here; each thread keeps its
        # own connection to the peer alive.
        self.transport = CurlTransport(self.base_url)
        self.breaker = ConcurrentCircuitBreaker(
            fail_max=settings.PEER_BREAKER_FAIL_MAX,
            reset_timeout=settings.PEER_BREAKER_RESET_SECONDS,
            name=name,
        )
        metrics.watch_breaker(self.breaker)

    def get(self, path: str) -> PeerResponse:
        """GET is idempotent: one retry, after a short jittered pause, on a transient failure."""
        return self._through_breaker("GET", path, None, None, retries=1)

    def send(self, method: str, path: str, body: dict, *, idempotency_key: str) -> PeerResponse:
        """A write is never retried here; the outbox relay owns retries, with the same key."""
        return self._through_breaker(method, path, body, idempotency_key, retries=0)

    def _through_breaker(
        self, method: str, path: str, body: dict | None, key: str | None, *, retries: int
    ) -> PeerResponse:
        started, outcome = time.perf_counter(), "error"
        try:
            response = self.breaker.call(self._request, method, path, body, key, retries)
            outcome = "ok" if response.status < 400 else "client_error"
            return response
        except pybreaker.CircuitBreakerError as exc:
            # The call that trips the breaker comes back as CircuitBreakerError too, raised while
            # handling its own failure: that call was made, and may have reached the peer.
            tripped_by = exc.__context__ if isinstance(exc.__context__, PeerFailure) else None
            outcome = "circuit_open" if tripped_by is None else _outcome_of(tripped_by)
            reason = "circuit breaker open" if tripped_by is None else f"{tripped_by}; circuit breaker opened"
            raise PeerUnavailable(
                self.name,
                reason,
                retry_after=self._retry_after(),
                outcome_unknown=tripped_by is not None and tripped_by.outcome_unknown,
            ) from None
        except PeerFailure as failure:
            outcome = _outcome_of(failure)
            raise PeerUnavailable(
                self.name, str(failure), retry_after=self._retry_after(), outcome_unknown=failure.outcome_unknown
            ) from None
        finally:
            metrics.observe_peer_call(self.name, method, outcome, time.perf_counter() - started)

    def _retry_after(self) -> int:
        opened_at = self.breaker._state_storage.opened_at  # set when the breaker last opened
        if self.breaker.current_state != pybreaker.STATE_OPEN or opened_at is None:
            return 1
        elapsed = (datetime.now(UTC) - opened_at.replace(tzinfo=UTC)).total_seconds()
        return int(max(1.0, settings.PEER_BREAKER_RESET_SECONDS - elapsed) + 0.999)

    def _request(self, method: str, path: str, body: dict | None, key: str | None, retries: int) -> PeerResponse:
        headers = {"X-Request-ID": current_request_id(), "Accept": "application/json"}
        if key:
            headers["Idempotency-Key"] = key
        payload = None
        if body is not None:
            payload = json.dumps(body, allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        with tracing.peer_call(method, self.base_url, path, headers):
            for attempt in range(retries + 1):
                last_try = attempt == retries
                try:
                    answer = self.transport.perform(
                        method,
                        path,
                        body=payload,
                        headers=headers,
                        connect_timeout=settings.PEER_CONNECT_TIMEOUT,
                        read_timeout=settings.PEER_READ_TIMEOUT,
                        max_body=MAX_PEER_BODY_BYTES,
                    )
                except BodyTooBig as too_big:
                    raise PeerFailure(str(too_big), outcome_unknown=True) from None
                except TransportFailure as failure:
                    if failure.timed_out:
                        # A timeout (connect or read) is not retried: a slow or unreachable peer would double
                        # our latency.
                        raise PeerFailure(str(failure), outcome_unknown=failure.reached) from None
                    if failure.answered:  # the status line came, the body was cut or stalled
                        raise PeerFailure(f"unreadable answer: {failure}", outcome_unknown=True) from None
                    if last_try:
                        raise PeerFailure(f"unreachable: {failure}", outcome_unknown=failure.reached) from None
                    self._pause_before_retry()
                    continue
                if answer.status in RETRYABLE_STATUSES and not last_try:
                    self._pause_before_retry()
                    continue
                return _decoded(answer)
        raise AssertionError("unreachable")  # the loop always returns or raises

    @staticmethod
    def _pause_before_retry() -> None:
        time.sleep(random.uniform(0.05, 0.15))


def _decoded(answer: Answer) -> PeerResponse:
    if answer.status >= 500:
        raise PeerFailure(f"answered HTTP {answer.status}")
    if answer.status >= 400 or not answer.body:
        return PeerResponse(answer.status, None)
    try:
        return PeerResponse(answer.status, loads_strict(answer.body))
    except ValueError as exc:
        raise PeerFailure(f"answered a body that is not strict JSON ({exc})") from None


_clients: dict[tuple[str, str], PeerClient] = {}
_clients_lock = threading.Lock()


def peer_client(name: str, base_url: str) -> PeerClient:
    """One client (connection pool and breaker) per peer and URL, shared by every thread of the process."""
    with _clients_lock:
        client = _clients.get((name, base_url))
        if client is None:
            client = _clients[(name, base_url)] = PeerClient(name, base_url)
        return client


def all_peer_clients() -> list[PeerClient]:
    with _clients_lock:
        return list(_clients.values())


def is_sendable_key(value: str, max_length: int) -> bool:
    """Whether an opaque key (a barcode) can be asked about and stored: 1 to `max_length` characters,
    no lone surrogate (UTF-8 cannot carry it), no NUL (PostgreSQL's text cannot hold it)."""
    if not 0 < len(value) <= max_length or "\x00" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def shown_key(value: str, max_length: int) -> str:
    """A key as an error message may quote it: cut to `max_length`, lone surrogates escaped."""
    return value[:max_length].encode(errors="backslashreplace").decode()


def path_segment(value: str) -> str:
    """`value` as one path segment, whatever it holds: every reserved character is escaped (`/`, `?`,
    `#`, `%`, spaces, non-ASCII as UTF-8), and so are the dot segments `.` and `..`, which an HTTP
    client would otherwise resolve (`/items/..` would call `/`)."""
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if quoted in {".", ".."} else quoted


def unexpected_answer(peer: str, response: PeerResponse) -> PeerUnavailable:
    """A peer that answers something outside its contract is treated as unavailable, not as our
    client's mistake (never a misleading 400 or 404)."""
    shown = repr(response.data)[:300]  # the answer may be large; the start tells what went wrong
    logger.warning("%s answered outside its contract: HTTP %s %s", peer, response.status, shown)
    return PeerUnavailable(peer, f"unexpected answer (HTTP {response.status})")
