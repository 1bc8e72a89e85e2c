"""Issue 27 point 4: `lending_build_info{version,commit}` on every process's /metrics, and every label
value of the service's own series in snake_case (`peer="book_management"`, not "Book Management"), so
queries and alert rules never quote spaces or guess at capitals."""

from __future__ import annotations

import re
import socket
import tomllib
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lending.models import OutboxKind, OutboxMessage
from lending.observability import metrics
from lending.outbox import relay
from tests.conftest import post_json

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
SNAKE_CASE = re.compile(r"[a-z0-9]+(_[a-z0-9]+)*")
# What a build is named by: a version and a commit are what they are.
FREE_FORM_LABELS = {("lending_build_info", "version"), ("lending_build_info", "commit")}


def samples_of(exposition: bytes) -> list:
    return [sample for family in text_string_to_metric_families(exposition.decode()) for sample in family.samples]


def build_info(exposition: bytes) -> list[dict[str, str]]:
    return [sample.labels for sample in samples_of(exposition) if sample.name == "lending_build_info"]


def test_build_info_names_the_projects_version_and_the_commit_of_the_image(api, monkeypatch):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    monkeypatch.setenv("GIT_COMMIT", "3f2c1ab")
    assert build_info(api.get("/metrics").content) == [{"version": version, "commit": "3f2c1ab"}]
    # The relay's and the scheduler's own /metrics (lending/observability/ops_server.py) say the same.
    assert build_info(metrics.scrape(domain_state=False)) == [{"version": version, "commit": "3f2c1ab"}]


def test_without_a_commit_the_build_says_unknown(api, monkeypatch):
    monkeypatch.delenv("GIT_COMMIT", raising=False)
    [labels] = build_info(api.get("/metrics").content)
    assert labels["commit"] == "unknown"


def test_every_label_value_of_the_services_series_is_snake_case(api, peers, patron, book, settings):
    """After lends, a refusal, a return, the relay's deliveries (HTTP to the peers, and domain events
    to a broker that does not answer), the breakers and the scheduler's counters."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nothing listens there once closed
    settings.EVENTS_BROKER_URL = f"amqp://guest:guest@127.0.0.1:{port}/%2F"
    other = peers.user.add_user("labels-patron@example.com")["email"]
    assert post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]}).status_code == 201
    assert post_json(api, "/lendBook/", {"user_email": other, "book_id": book["id"]}).status_code == 409
    assert post_json(api, "/returnBook/", {"user_email": patron, "book_id": book["id"]}).status_code == 200
    relay.run_once()
    assert OutboxMessage.objects.filter(kind=OutboxKind.EVENT).exists()
    from lending.management.commands import send_notices  # noqa: F401 - its per-job series

    seen, offending = set(), set()
    for sample in samples_of(api.get("/metrics").content) + samples_of(metrics.scrape(domain_state=False)):
        if not sample.name.startswith("lending_"):
            continue
        for label, label_value in sample.labels.items():
            if label == "le" or (sample.name, label) in FREE_FORM_LABELS:
                continue
            seen.add((label, label_value))
            if not SNAKE_CASE.fullmatch(label_value):
                offending.add((sample.name, label, label_value))
    assert not offending, sorted(offending)
    # The test saw what it means to check: the peers, both channels, an event's type.
    assert {("peer", "book_management"), ("peer", "user_management"), ("peer", "notification")} <= seen
    assert {("channel", "http"), ("channel", "amqp"), ("peer", "rabbitmq")} <= seen
    assert ("message_type", "loan_lent_v1") in seen


def test_no_label_of_the_service_is_one_prometheus_sets_on_the_target():
    """Prometheus renames a scraped `job` (or `instance`, `namespace`, `pod`) label to `exported_job`,
    because the PodMonitor sets the target's own: a rule or panel on `job` would read the wrong one."""
    from lending.management.commands import send_notices  # noqa: F401 - registers the per-job series

    target_labels = {"job", "instance", "namespace", "pod", "container"}
    clashing = {
        (sample.name, label)
        for sample in samples_of(metrics.scrape(domain_state=False))
        if sample.name.startswith("lending_")
        for label in sample.labels
        if label in target_labels
    }
    assert not clashing, sorted(clashing)
