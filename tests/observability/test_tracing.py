"""Tracing: a lend's request span and the relay's peer calls for it are one trace (in-memory exporter).

The outbox message stores the request's traceparent; the relay delivers inside a span of that trace,
so the instrumented `requests` call to the Notification peer is a span of the lend's trace too."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from lending.models import OutboxKind, OutboxMessage
from lending.observability import tracing
from lending.outbox import broker, relay
from tests.conftest import post_json

pytestmark = pytest.mark.django_db

EXPORTER = InMemorySpanExporter()  # a process sets its tracer provider once: one exporter for the session


@pytest.fixture
def spans():
    tracing.setup(EXPORTER)
    EXPORTER.clear()
    yield EXPORTER
    tracing.teardown()
    EXPORTER.clear()
    if not connection.in_atomic_block:
        connection.close()  # its statements would stay traced


def test_the_relays_peer_calls_join_the_trace_of_the_lend(spans, api, patron, book):
    response = post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})
    assert response.status_code == 201, response.content
    [request_span] = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    lend_trace = request_span.context.trace_id

    notification = OutboxMessage.objects.get(kind=OutboxKind.NOTIFICATION)
    assert notification.traceparent.split("-")[1] == f"{lend_trace:032x}"

    spans.clear()
    relay.run_once()
    finished = spans.get_finished_spans()
    deliveries = [s for s in finished if s.name.startswith("deliver ")]
    peer_calls = [s for s in finished if s.kind == SpanKind.CLIENT and s.name in {"POST", "PUT"}]
    assert {s.name for s in deliveries} == {"deliver notification", "deliver availability"}
    assert len(peer_calls) >= 2, [s.name for s in finished]
    assert {s.context.trace_id for s in deliveries + peer_calls} == {lend_trace}


@pytest.mark.postgres  # the statements' spans come from the psycopg instrumentation: PostgreSQL's driver
@pytest.mark.django_db(transaction=True)
def test_database_statements_are_spans_of_the_request(spans, api, patron, book):
    """Connections opened once tracing is on (all of them, in a process that sets it up at start)."""
    connection.close()
    post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})
    finished = spans.get_finished_spans()
    [request_span] = [s for s in finished if s.kind == SpanKind.SERVER]
    statements = [s for s in finished if s.attributes.get("db.system") == "postgresql"]
    assert statements and {s.context.trace_id for s in statements} == {request_span.context.trace_id}


def test_the_cloudevent_carries_the_requests_traceparent(spans, api, patron, book, settings):
    settings.EVENTS_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"  # written only; not published here
    post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})
    [request_span] = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    event = json.loads(broker.body(OutboxMessage.objects.get(kind=OutboxKind.EVENT)))
    assert event["traceparent"].split("-")[1] == f"{request_span.context.trace_id:032x}"


def test_without_tracing_messages_carry_no_trace_context(api, patron, book):
    post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})
    assert set(OutboxMessage.objects.values_list("traceparent", flat=True)) == {""}
