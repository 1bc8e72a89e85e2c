"""`/metrics`: the domain's metrics move with lends, returns and refusals; peer calls, breaker state and
the database gauges are exported; probes and metrics get through host validation and the HTTPS
redirect."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from lending.clients import users
from lending.errors import PeerUnavailable
from lending.models import Loan, OutboxMessage, OutboxStatus
from tests.conftest import post_json
from tests.factories import LoanFactory

pytestmark = pytest.mark.django_db

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "lending-dashboard.json"


def scrape(api) -> dict[tuple[str, tuple], float]:
    response = api.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def lend(api, email, book_id):
    return post_json(api, "/lendBook/", {"user_email": email, "book_id": book_id})


def test_domain_metrics_move_after_a_lend_a_refusal_and_a_return(api, peers, patron, book):
    other = peers.user.add_user("second-patron@example.com")["email"]
    before = scrape(api)

    assert lend(api, patron, book["id"]).status_code == 201
    after_lend = scrape(api)
    assert lend(api, other, book["id"]).status_code == 409  # the only copy is out
    after_refusal = scrape(api)
    assert post_json(api, "/returnBook/", {"user_email": patron, "book_id": book["id"]}).status_code == 200
    after_return = scrape(api)

    ops = "lending_loan_operations_total"
    assert value(after_lend, ops, operation="lend") == value(before, ops, operation="lend") + 1
    assert value(after_lend, "lending_loans_open") == value(before, "lending_loans_open") + 1
    assert value(after_lend, "lending_outbox_pending_messages") >= value(before, "lending_outbox_pending_messages") + 2

    refusals = "lending_loan_refusals_total"
    assert value(after_refusal, refusals, operation="lend", reason="no_copy_available") == (
        value(before, refusals, operation="lend", reason="no_copy_available") + 1
    )
    assert value(after_refusal, ops, operation="lend") == value(after_lend, ops, operation="lend")

    assert value(after_return, ops, operation="return") == value(before, ops, operation="return") + 1
    assert value(after_return, "lending_loans_open") == value(before, "lending_loans_open")

    # The peers were asked: the user check and the book lookup, timed by peer and outcome.
    calls = "lending_peer_request_duration_seconds_count"
    for peer in ("user_management", "book_management"):
        assert value(after_return, calls, peer=peer, method="get", outcome="ok") > value(
            before, calls, peer=peer, method="get", outcome="ok"
        ), peer
    # The request series under django-prometheus's names are there too (lending.observability.request_metrics).
    assert any(name.startswith("django_http_requests_latency_seconds_by_view_method") for name, _ in after_return)


def test_request_metrics_count_each_answer_by_status_view_and_method(api, patron, book):
    """The series the 5xx alert, the p99 alert and the dashboard read, under django-prometheus's names."""
    before = scrape(api)
    assert lend(api, patron, book["id"]).status_code == 201
    after = scrape(api)
    answers = "django_http_responses_total_by_status_view_method_total"
    labels = {"status": "201", "view": "lend-book", "method": "POST"}
    assert value(after, answers, **labels) == value(before, answers, **labels) + 1
    latency = "django_http_requests_latency_seconds_by_view_method_count"
    assert value(after, latency, view="lend-book", method="POST") == (
        value(before, latency, view="lend-book", method="POST") + 1
    )
    buckets = {dict(key)["le"] for name, key in after if name == f"{latency[:-6]}_bucket"}
    assert {"0.01", "1.0", "75.0", "+Inf"} <= buckets


def test_an_idempotent_replay_is_not_counted_twice(api, patron, book):
    before = scrape(api)
    for _ in range(2):
        response = post_json(
            api, "/lendBook/", {"user_email": patron, "book_id": book["id"]}, **{"Idempotency-Key": f"metrics-{patron}"}
        )
        assert response.status_code == 201
    after = scrape(api)
    ops = "lending_loan_operations_total"
    assert value(after, ops, operation="lend") == value(before, ops, operation="lend") + 1


def test_a_refusal_for_invalid_input_is_counted_with_its_code(api):
    before = scrape(api)
    assert post_json(api, "/lendBook/", {"user_email": "not-an-email", "book_id": 1}).status_code == 400
    after = scrape(api)
    name = "lending_loan_refusals_total"
    assert value(after, name, operation="lend", reason="invalid_request") == (
        value(before, name, operation="lend", reason="invalid_request") + 1
    )


def test_outbox_and_overdue_gauges_come_from_the_database(api):
    now = timezone.now()
    LoanFactory(
        user_email="late@example.com", book_id=990001, borrowed_ago=timedelta(days=70), due_in=timedelta(days=-10)
    )
    OutboxMessage.objects.create(kind="notification", book_id=990001, status=OutboxStatus.DEAD, next_attempt_at=now)
    old = OutboxMessage.objects.create(kind="notification", book_id=990001, next_attempt_at=now)
    OutboxMessage.objects.filter(pk=old.pk).update(created_at=now - timedelta(minutes=5))

    samples = scrape(api)
    assert value(samples, "lending_domain_state_up") == 1
    assert (
        value(samples, "lending_loans_overdue")
        == Loan.objects.filter(date_returned__isnull=True, date_due__lt=timezone.now()).count()
        >= 1
    )
    assert value(samples, "lending_outbox_dead_messages") == OutboxMessage.objects.filter(status="DEAD").count()
    assert value(samples, "lending_outbox_pending_messages") == OutboxMessage.objects.filter(status="PENDING").count()
    assert value(samples, "lending_outbox_oldest_pending_age_seconds") >= 300


def test_peer_failures_and_the_circuit_breaker_state_are_exported(api, peers):
    client = users.client()
    peer = "user_management"  # the client's name (User Management) as a label value
    before = scrape(api)
    peers.user.faults.status = 500
    with pytest.raises(PeerUnavailable):
        users.ensure_active_user("breaker@example.com")
    client.breaker.open()
    with pytest.raises(PeerUnavailable):
        users.ensure_active_user("breaker@example.com")
    opened = scrape(api)

    def calls(samples, outcome):
        return value(samples, "lending_peer_request_duration_seconds_count", peer=peer, method="get", outcome=outcome)

    assert calls(opened, "error") == calls(before, "error") + 1
    assert calls(opened, "circuit_open") == calls(before, "circuit_open") + 1
    assert value(opened, "lending_peer_circuit_breaker_state", peer=peer) == 2
    assert value(opened, "lending_peer_circuit_breaker_opened_total", peer=peer) == (
        value(before, "lending_peer_circuit_breaker_opened_total", peer=peer) + 1
    )
    client.breaker.close()
    assert value(scrape(api), "lending_peer_circuit_breaker_state", peer=peer) == 0


@pytest.mark.parametrize("path", ["/metrics", "/health/live/", "/health/ready/", "/health/", "/health/live"])
def test_probes_and_metrics_bypass_host_validation_and_the_https_redirect(settings, path):
    settings.ALLOWED_HOSTS = ["lending.library.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    client = Client()
    # Prometheus scrapes with the pod IP as Host; the kubelet's probes with `Host: localhost`.
    for host in ("10.42.0.17:8000", "localhost"):
        assert client.get(path, HTTP_HOST=host).status_code == 200, (path, host)
    # Everything else is still validated and redirected.
    assert client.get("/getExpiredBooks/", HTTP_HOST="10.42.0.17:8000").status_code == 400
    redirect = client.get("/getExpiredBooks/", HTTP_HOST="lending.library.example.com")
    assert redirect.status_code == 301 and redirect["Location"].startswith("https://")


def test_production_security_headers(settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    response = Client().get("/getExpiredBooks/", secure=True)
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"


def test_the_grafana_dashboard_uses_only_exported_metrics(api):
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {m for expr in exprs for m in re.findall(r"\b((?:lending|django_http)_[a-z_]+)\b", expr)}

    def base(name: str) -> str:
        return re.sub(r"_(total|bucket|count|sum)$", "", name)

    response = api.get("/metrics")
    exported = {base(family.name) for family in text_string_to_metric_families(response.content.decode())}
    assert {base(name) for name in used} <= exported
    assert len(used) >= 10
