"""The service's own Prometheus metrics and the `/metrics` view.

Request metrics (answers by status and view, latency by view) come from request_metrics.py, under
django-prometheus's names. This module adds the domain's:

- `lending_loan_operations_total{operation}`: lends, returns, renewals and holds that succeeded
  (an idempotent replay is not counted again);
- `lending_loan_refusals_total{operation, reason}`: the same writes refused, `reason` being the
  error `code` of the answer (`book_unavailable`, `peer_unavailable`, `invalid_request`...);
- `lending_build_info{version, commit}` (always 1): the project's version and the commit the image
  was built from (GIT_COMMIT, "unknown" without it), on every process's /metrics;
- `lending_peer_request_duration_seconds{peer, method, outcome}`: every call to a peer, with its
  outcome (`ok`, `client_error` for a 4xx answer, `timeout`, `error`, `circuit_open`);
- `lending_peer_circuit_breaker_state{peer}` (0 closed, 1 half-open, 2 open) and
  `lending_peer_circuit_breaker_opened_total{peer}`;
- computed from the database at scrape time: outbox messages pending and dead, the age of the oldest
  pending one (the delivery lag), open and overdue loans;
- from the relay and the scheduler (served by lending/observability/ops_server.py on their own ports):
  `lending_outbox_deliveries_total{channel, peer, message_type, outcome}`,
  `lending_outbox_delivery_lag_seconds{channel, peer, message_type}` (commit to delivery),
  `lending_process_passes_total{process, outcome}`, `lending_process_last_success_timestamp_seconds{process}`,
  `lending_scheduler_job_items_total{scheduler_job}` and `lending_scheduler_job_failures_total{scheduler_job}`.

Under gunicorn, `PROMETHEUS_MULTIPROC_DIR` switches prometheus-client to multi-process mode: each
worker writes its samples there and `/metrics` merges them, whichever worker answers. The database
gauges are computed by a collector registered only for the scrape, so once per scrape, not per worker.

Every label value is snake_case (`peer="book_management"`, `method="get"`, `message_type="loan_lent_v1"`):
`label_value` turns a peer's display name, an HTTP method or an event's type into one, so a query never
quotes a space or guesses at capitals.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import tomllib
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pybreaker
from django.db import DatabaseError
from django.http import HttpResponse
from django.utils import timezone
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric

logger = logging.getLogger(__name__)


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


if multiprocess_dir():
    # prometheus-client writes a file per process there as soon as a sample exists.
    os.makedirs(multiprocess_dir(), exist_ok=True)

_NOT_SNAKE = re.compile(r"[^a-z0-9]+")


def label_value(name: str | None) -> str:
    """`Book Management` -> `book_management`, `RabbitMQ` -> `rabbitmq`, `loan.lent.v1` -> `loan_lent_v1`."""
    return _NOT_SNAKE.sub("_", (name or "").lower()).strip("_") or "unknown"


# --- Loans -------------------------------------------------------------------------------------------
# The operations the write views name (`operation` on each view).
OPERATIONS = ("lend", "return", "renew", "reserve", "cancel_reservation", "checkout", "checkin")

loan_operations = Counter(
    "lending_loan_operations_total", "Loan and hold writes that succeeded, by operation.", ["operation"]
)
loan_refusals = Counter(
    "lending_loan_refusals_total",
    "Loan and hold writes that were refused or failed, by operation and error code.",
    ["operation", "reason"],
)
for _operation in OPERATIONS:
    loan_operations.labels(_operation)


def record_operation(operation: str) -> None:
    loan_operations.labels(operation).inc()


def record_refusal(operation: str, response: Any) -> None:
    """`response` is the error answer; its `{"error": {"code"}}` is the reason."""
    if response is None or getattr(response, "status_code", 500) < 400:
        return
    data = getattr(response, "data", None)
    error = data.get("error") if isinstance(data, dict) else None
    reason = error.get("code") if isinstance(error, dict) else None
    loan_refusals.labels(operation, label_value(str(reason or f"http_{response.status_code}"))).inc()


# --- Peers -------------------------------------------------------------------------------------------
peer_request_duration = Histogram(
    "lending_peer_request_duration_seconds",
    "Calls to peer services: latency by peer, method and outcome.",
    ["peer", "method", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
BREAKER_STATES = {pybreaker.STATE_CLOSED: 0, pybreaker.STATE_HALF_OPEN: 1, pybreaker.STATE_OPEN: 2}
breaker_state = Gauge(
    "lending_peer_circuit_breaker_state",
    "Circuit breaker per peer: 0 closed, 1 half-open, 2 open (the worst of the live workers).",
    ["peer"],
    multiprocess_mode="livemax",
)
breaker_opened = Counter(
    "lending_peer_circuit_breaker_opened_total", "Times a peer's circuit breaker opened.", ["peer"]
)


def observe_peer_call(peer: str, method: str, outcome: str, seconds: float) -> None:
    peer_request_duration.labels(label_value(peer), label_value(method), outcome).observe(seconds)


class _BreakerListener(pybreaker.CircuitBreakerListener):
    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        name = getattr(new_state, "name", str(new_state))
        breaker_state.labels(label_value(cb.name)).set(BREAKER_STATES.get(name, 0))
        if name == pybreaker.STATE_OPEN:
            breaker_opened.labels(label_value(cb.name)).inc()


def watch_breaker(breaker: pybreaker.CircuitBreaker) -> None:
    """Publishes the breaker's state now and on every change."""
    breaker.add_listener(_BreakerListener())
    breaker_state.labels(label_value(breaker.name)).set(BREAKER_STATES.get(breaker.current_state, 0))
    breaker_opened.labels(label_value(breaker.name))


# --- Background processes: the outbox relay and the scheduler ------------------------------------------
# Labelled by channel (`http` to the peers, `amqp` for the domain events), peer and message type,
# so one panel and one alert cover every way a message leaves the outbox.
outbox_deliveries = Counter(
    "lending_outbox_deliveries_total",
    "Outbox delivery attempts by channel, peer, message type and outcome "
    "(delivered, retry, dead, reopened: the book changed while its state travelled).",
    ["channel", "peer", "message_type", "outcome"],
)
outbox_delivery_lag = Histogram(
    "lending_outbox_delivery_lag_seconds",
    "From a message's commit to its delivery, by channel, peer and message type.",
    ["channel", "peer", "message_type"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0),
)
process_passes = Counter(
    "lending_process_passes_total",
    "Passes of a background loop, by process and outcome (ok, failed).",
    ["process", "outcome"],
)
process_last_success = Gauge(
    "lending_process_last_success_timestamp_seconds",
    "Unix time at which the process last completed a pass (or a relay batch) without error; a scheduler "
    "pass counts even when one of its jobs failed (lending_scheduler_job_failures_total names it).",
    ["process"],
    multiprocess_mode="max",
)
# Labelled `scheduler_job`, not `job`: Prometheus keeps `job` for the scrape target (lending-scheduler)
# and would rename ours to `exported_job`.
scheduler_job_items = Counter(
    "lending_scheduler_job_items_total",
    "Items handled by the scheduler's jobs (loans marked, notices queued...).",
    ["scheduler_job"],
)
scheduler_job_failures = Counter(
    "lending_scheduler_job_failures_total",
    "Scheduler jobs that raised; the pass went on with the next job.",
    ["scheduler_job"],
)

# The peers as the breaker and peer-call series label them (`label_value` of the clients' names).
PEER_OF_KIND = {
    "availability": "book_management",
    "notification": "notification",
    "event": "rabbitmq",
    "fee": "fees",
}


def message_labels(message: Any, channel: str = "http") -> tuple[str, str, str]:
    """(channel, peer, message type) of an outbox message: a notification's type is its payload's
    `message_type`, an availability update is `availability`, a domain event its CloudEvent type
    without the prefix every type shares (`org.library.lending.loan.lent.v1` -> `loan_lent_v1`)."""
    from lending.events.domain_events import TYPE_PREFIX

    payload = message.payload if isinstance(message.payload, dict) else {}
    message_type = payload.get("message_type") if message.kind == "notification" else message.kind
    if message.kind == "event":  # a domain event: on the broker, by CloudEvent type
        channel, message_type = "amqp", str(payload.get("type") or "").removeprefix(f"{TYPE_PREFIX}.")
    peer = PEER_OF_KIND.get(message.kind, label_value(message.kind))
    return channel, peer, label_value(message_type or message.kind)


def record_delivery(messages: Iterable[Any], outcome: str) -> None:
    now = timezone.now()
    for message in messages:
        labels = message_labels(message)
        outbox_deliveries.labels(*labels, outcome).inc()
        if outcome == "delivered" and message.created_at:
            outbox_delivery_lag.labels(*labels).observe(max(0.0, (now - message.created_at).total_seconds()))


def record_pass(process: str, ok: bool) -> None:
    process_passes.labels(process, "ok" if ok else "failed").inc()


def record_progress(process: str) -> None:
    process_last_success.labels(process).set_to_current_time()


# --- The build, computed at scrape time ------------------------------------------------------------------
_PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


@functools.cache
def project_version() -> str:
    """The installed package's version, else pyproject.toml's (the image and a checkout run from source)."""
    try:
        return metadata.version("lending-service")
    except metadata.PackageNotFoundError:
        pass
    try:
        return tomllib.loads(_PYPROJECT.read_text())["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


class BuildInfoCollector:
    """`lending_build_info{version, commit} 1`, from a collector rather than a Gauge: in multi-process
    mode every worker would otherwise need a file for one constant."""

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "lending_build_info",
            "Always 1: the version of the service and the commit its image was built from (GIT_COMMIT).",
            labels=["version", "commit"],
        )
        info.add_metric([project_version(), os.environ.get("GIT_COMMIT", "").strip() or "unknown"], 1)
        yield info


# --- Database state, computed at scrape time -------------------------------------------------------------
class DomainStateCollector:
    """Outbox and loan gauges from a few indexed queries (partial indexes on pending outbox messages
    and open loans). A database that does not answer sets `lending_domain_state_up` to 0 instead of
    failing the scrape."""

    def collect(self) -> Iterator[Metric]:
        from django.db.models import Count, Min

        from lending.models import Loan, OutboxMessage, OutboxStatus

        up = GaugeMetricFamily("lending_domain_state_up", "1 when the database answered the scrape's queries.")
        now = timezone.now()
        try:
            pending = OutboxMessage.objects.filter(status=OutboxStatus.PENDING).aggregate(
                count=Count("id"), oldest=Min("created_at")
            )
            dead = OutboxMessage.objects.filter(status=OutboxStatus.DEAD).count()
            open_loans = Loan.objects.open().count()
            overdue = Loan.objects.overdue(now).count()
        except DatabaseError as exc:
            logger.warning("metrics: database state unavailable: %s", exc.__class__.__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        lag = (now - pending["oldest"]).total_seconds() if pending["oldest"] else 0.0
        yield _gauge("lending_outbox_pending_messages", "Outbox messages not delivered yet.", pending["count"])
        yield _gauge("lending_outbox_dead_messages", "Outbox messages parked as dead letters.", dead)
        yield _gauge(
            "lending_outbox_oldest_pending_age_seconds",
            "Age of the oldest undelivered outbox message (delivery lag); 0 when none is pending.",
            max(0.0, lag),
        )
        yield _gauge("lending_loans_open", "Loans not returned yet (active and overdue).", open_loans)
        yield _gauge("lending_loans_overdue", "Loans not returned and past their due date.", overdue)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class _Scrape:
    """Several collectors (or registries) exposed as one."""

    def __init__(self, sources: Iterable[Any]) -> None:
        self.sources = list(sources)

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source.collect()


def scrape(*, domain_state: bool = True) -> bytes:
    """The whole exposition: every worker's samples in multi-process mode, this process's otherwise,
    the build's info, and the database gauges once (unless `domain_state` is false)."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        source: Any = registry
    else:
        source = REGISTRY
    collectors = [source, BuildInfoCollector(), *([DomainStateCollector()] if domain_state else [])]
    return generate_latest(_Scrape(collectors))


def metrics_view(request) -> HttpResponse:
    return HttpResponse(scrape(), content_type=CONTENT_TYPE_LATEST)
