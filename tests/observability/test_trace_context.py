"""Issue 27 point 4: each role's spans name their service, and every log line written inside a span
carries its trace: `trace_id` and `span_id` in hex, as OTLP and the W3C traceparent spell them.

The service name is fixed once per process (the tracer provider's resource), so it is read from a fresh
Python process that starts Django the way each role does (`manage.py relay_outbox`, `send_notices`,
gunicorn)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import structlog
from django.db import connection
from opentelemetry import trace

from lending.models import OutboxKind, OutboxMessage
from lending.observability import tracing
from tests.conftest import post_json
from tests.observability.test_tracing import EXPORTER as TRACING_TESTS_EXPORTER

ROOT = Path(__file__).resolve().parents[2]

# Starts Django as `argv` would, then prints the service name on the tracer provider's resource.
SERVICE_NAME_SCRIPT = """
import sys
sys.argv = sys.argv[1:]
import django
django.setup()
from opentelemetry import trace
print(trace.get_tracer_provider().resource.attributes["service.name"])
"""


def service_name_of(argv: list[str], tmp_path: Path, **environ: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "LOG_", "OTEL_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_NAME=str(tmp_path / "db.sqlite3"),
        # Tracing on; nothing is exported (no span ends before the process does).
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
        **environ,
    )
    proc = subprocess.run(
        [sys.executable, "-c", SERVICE_NAME_SCRIPT, *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["manage.py", "relay_outbox"], "lending-relay"),
        (["manage.py", "send_notices", "--loop"], "lending-scheduler"),
        (["gunicorn", "--config", "docker/gunicorn.conf.py"], "lending-web"),
        (["manage.py", "runserver"], "lending-web"),
    ],
)
def test_each_role_reports_its_own_service_name(argv, expected, tmp_path):
    assert service_name_of(argv, tmp_path) == expected


def test_otel_service_name_wins_over_the_role_default(tmp_path):
    assert service_name_of(["manage.py", "relay_outbox"], tmp_path, OTEL_SERVICE_NAME="outbox-eu") == "outbox-eu"


# --- trace_id and span_id on log lines ------------------------------------------------------------------


@pytest.fixture
def tracing_on():
    # A process sets its tracer provider once, with the first exporter it is given: the one
    # test_tracing.py reads its spans from (these tests read span contexts only).
    tracing.setup(TRACING_TESTS_EXPORTER)
    yield trace.get_tracer("tests.trace_context")
    tracing.teardown()
    if not connection.in_atomic_block:
        connection.close()  # its statements would stay traced


def test_stdlib_and_structlog_lines_inside_a_span_carry_its_ids(tracing_on, log_lines):
    with tracing_on.start_as_current_span("a job") as span:
        logging.getLogger("lending.test").warning("inside, stdlib")
        structlog.get_logger("lending.test").warning("inside, structlog")
    logging.getLogger("lending.test").warning("outside")

    trace_id = f"{span.get_span_context().trace_id:032x}"
    span_id = f"{span.get_span_context().span_id:016x}"
    lines = {line["event"]: line for line in log_lines()}
    for event in ("inside, stdlib", "inside, structlog"):
        assert (lines[event].get("trace_id"), lines[event].get("span_id")) == (trace_id, span_id), lines[event]
    assert "trace_id" not in lines["outside"] and "span_id" not in lines["outside"]


@pytest.mark.django_db
def test_a_requests_log_line_carries_the_trace_its_outbox_message_continues(tracing_on, log_lines, api, patron, book):
    """The request line and the traceparent stored with the lend's notification name one span."""
    response = post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})
    assert response.status_code == 201, response.content

    _, trace_id, span_id, _ = OutboxMessage.objects.get(kind=OutboxKind.NOTIFICATION).traceparent.split("-")
    (request_line,) = [line for line in log_lines() if line["event"] == "request_finished"]
    assert (request_line.get("trace_id"), request_line.get("span_id")) == (trace_id, span_id)


def test_without_tracing_no_line_carries_trace_fields(log_lines):
    logging.getLogger("lending.test").warning("untraced")
    structlog.get_logger("lending.test").warning("untraced too")
    assert all("trace_id" not in line for line in log_lines())
