"""Issue 14 item 2: the relay and the scheduler serve /metrics (delivery outcomes by channel, peer and
message type, lag, pending and dead counts, breaker states, last successful pass) and a liveness check
that fails once their loop stalls."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from lending import services
from lending.management.commands.send_notices import Command as SendNotices
from lending.models import OutboxMessage, OutboxStatus
from lending.observability import ops_server
from lending.outbox import relay
from tools.harness.processes import free_port as _free_port


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback only
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _samples(body: bytes) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def _value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def serve():
    servers = []

    def start(heartbeat, *, domain_state=True):
        port = _free_port()
        servers.append(ops_server.start(heartbeat, port, address="127.0.0.1", domain_state=domain_state))
        return f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_port_zero_starts_no_server():
    assert ops_server.start(ops_server.Heartbeat("relay", 60), 0, address="127.0.0.1", domain_state=True) is None


def test_liveness_fails_once_no_pass_completed_within_the_stall_limit(serve):
    clock = FakeClock()
    heartbeat = ops_server.Heartbeat("relay", stall_after=120, clock=clock)
    base = serve(heartbeat, domain_state=False)

    assert _get(f"{base}/health/live")[0] == 200, "the start counts as a pass"
    clock.now += 121
    status, body = _get(f"{base}/health/live")
    assert status == 503
    assert json.loads(body) == {
        "status": "stalled",
        "process": "relay",
        "seconds_since_last_pass": 121.0,
        "stall_after_seconds": 120,
    }
    heartbeat.beat(ok=False)
    assert _get(f"{base}/health/live")[0] == 503, "a failed pass is no progress"
    heartbeat.progress()
    assert _get(f"{base}/health/live")[0] == 200
    assert _get(f"{base}/elsewhere")[0] == 404


@pytest.mark.django_db(transaction=True)
def test_relay_metrics_count_outcomes_by_peer_and_message_type(peers, patron, book, serve):
    base = serve(ops_server.Heartbeat("relay", stall_after=120))
    before = _samples(_get(f"{base}/metrics")[1])
    deliveries = "lending_outbox_deliveries_total"
    notification = {"channel": "http", "peer": "notification", "message_type": "lending_confirmation"}
    availability = {"channel": "http", "peer": "book_management", "message_type": "availability"}

    services.loan_lend(user_email=patron, book_id=book["id"])
    peers.notification.faults.status = 503
    relay.run_once()
    failed = _samples(_get(f"{base}/metrics")[1])
    assert _value(failed, deliveries, **notification, outcome="retry") == (
        _value(before, deliveries, **notification, outcome="retry") + 1
    )
    assert _value(failed, deliveries, **availability, outcome="delivered") == (
        _value(before, deliveries, **availability, outcome="delivered") + 1
    )
    assert _value(failed, "lending_outbox_pending_messages") == 1, "read from the database at scrape time"
    assert _value(failed, "lending_outbox_oldest_pending_age_seconds") >= 0
    assert ("lending_outbox_dead_messages", ()) in failed
    assert _value(failed, "lending_peer_circuit_breaker_state", peer="notification") == 0

    peers.notification.faults.status = 400  # a refusal: dead at once
    OutboxMessage.objects.filter(status=OutboxStatus.PENDING).update(next_attempt_at=timezone.now())  # no backoff
    relay.run_once()
    dead = _samples(_get(f"{base}/metrics")[1])
    assert _value(dead, deliveries, **notification, outcome="dead") == (
        _value(before, deliveries, **notification, outcome="dead") + 1
    )
    assert _value(dead, "lending_outbox_dead_messages") == 1
    lag = "lending_outbox_delivery_lag_seconds_count"
    assert _value(dead, lag, **availability) == _value(before, lag, **availability) + 1


# The loop closes the connection a failed pass may have broken, which touches the database whenever an
# earlier test of this process left a connection open: allowed here, whatever ran before.
@pytest.mark.django_db(transaction=True)
def test_relay_loop_reports_each_pass(monkeypatch):
    heartbeat = ops_server.Heartbeat("relay", stall_after=120)
    stop = threading.Event()
    passes = []

    def one_pass(pool=None, on_batch=None):
        passes.append(1)
        on_batch()
        if len(passes) == 2:
            stop.set()
            raise RuntimeError("database blip")
        return 1

    monkeypatch.setattr(relay, "run_once", one_pass)
    monkeypatch.setattr(relay.settings, "OUTBOX_POLL_INTERVAL_SECONDS", 0, raising=False)
    before = _samples(ops_server.metrics.scrape(domain_state=False))
    relay.run_forever(stop, heartbeat)
    after = _samples(ops_server.metrics.scrape(domain_state=False))
    passes_total = "lending_process_passes_total"
    assert _value(after, passes_total, process="relay", outcome="ok") == (
        _value(before, passes_total, process="relay", outcome="ok") + 1
    )
    assert _value(after, passes_total, process="relay", outcome="failed") == (
        _value(before, passes_total, process="relay", outcome="failed") + 1
    )
    assert _value(after, "lending_process_last_success_timestamp_seconds", process="relay") > 0


@pytest.mark.django_db
def test_scheduler_counts_each_job_items(peers):
    before = _samples(ops_server.metrics.scrape(domain_state=False))
    SendNotices().run_pass()
    after = _samples(ops_server.metrics.scrape(domain_state=False))
    for job in ("mark_overdue_loans", "send_due_soon_reminders", "send_overdue_notices", "expire_ready_holds"):
        assert ("lending_scheduler_job_items_total", (("scheduler_job", job),)) in after
    assert after.keys() >= before.keys()


def test_the_dashboard_shows_the_relay_and_scheduler_series():
    dashboard = json.loads((Path(__file__).resolve().parents[2] / "deploy/grafana/lending-dashboard.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    for series in (
        "lending_outbox_deliveries_total",
        "lending_outbox_delivery_lag_seconds_bucket",
        "lending_process_last_success_timestamp_seconds",
        "lending_process_passes_total",
        "lending_scheduler_job_items_total",
        "lending_peer_circuit_breaker_state",
    ):
        assert series in exprs, f"no panel shows {series}"
