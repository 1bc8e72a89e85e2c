"""OpenTelemetry tracing, on when OTEL_EXPORTER_OTLP_ENDPOINT is set (spans exported over OTLP/HTTP).

`setup()` instruments Django (a span per request) and psycopg (a span per statement); the peer clients
make a span per call (`peer_call`) and send its trace context. It runs once per process, from the app's
`ready()`.

A change's trace continues in the relay: every outbox message stores the W3C `traceparent` current
when it was written (`lending.request_context.current_traceparent`, the model field's default, so each
message written in a
request carries the request's trace), and the relay delivers it inside `continuing(traceparent)`, so
the peer calls it makes are spans of that same trace. A domain event carries it in its CloudEvent.

With tracing off, `current_traceparent()` is "" and `continuing` does nothing: no cost per request.

Each process names its service after its role (`service_name`): `lending-web`, `lending-relay`,
`lending-scheduler`, unless OTEL_SERVICE_NAME says otherwise.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from opentelemetry import context, propagate, trace

logger = logging.getLogger(__name__)

_setup_lock = threading.Lock()
_instrumented = False

SERVICE_NAMES = {"web": "lending-web", "relay": "lending-relay", "scheduler": "lending-scheduler"}
# The management command each background role runs. Every other process (gunicorn, runserver, a
# one-off command such as `migrate`) serves or changes what the web serves: it is the web's.
_ROLE_OF_COMMAND = {"relay_outbox": "relay", "send_notices": "scheduler"}


def role_of(argv: Sequence[str]) -> str:
    """The role of the process started with `argv`: `web`, `relay` or `scheduler`."""
    command = argv[1] if len(argv) > 1 else ""
    return _ROLE_OF_COMMAND.get(command, "web")


def service_name(role: str, environ: Mapping[str, str] = os.environ) -> str:
    """OTEL_SERVICE_NAME when set (the OpenTelemetry convention), else the role's own name."""
    return environ.get("OTEL_SERVICE_NAME", "").strip() or SERVICE_NAMES[role]


@contextmanager
def peer_call(method: str, base_url: str, path: str, headers: dict[str, str]) -> Iterator[None]:
    """A client span for one call to a peer (its retries included), named by its method as OpenTelemetry's
    HTTP conventions name it, whose W3C trace context goes into the call's `headers`. With tracing off,
    nothing (not even the URL is built)."""
    if not _instrumented:
        yield
        return
    tracer = trace.get_tracer("lending.clients")
    attributes = {"http.request.method": method, "url.full": f"{base_url}{path}"}
    with tracer.start_as_current_span(method, kind=trace.SpanKind.CLIENT, attributes=attributes):
        propagate.inject(headers)
        yield


@contextmanager
def continuing(traceparent: str, name: str, **attributes: str) -> Iterator[None]:
    """A span named `name` in the trace `traceparent` names (a new trace when it is empty)."""
    if not _instrumented:
        yield
        return
    parent = propagate.extract({"traceparent": traceparent}) if traceparent else context.Context()
    tracer = trace.get_tracer("lending.outbox")
    with tracer.start_as_current_span(name, context=parent, kind=trace.SpanKind.PRODUCER, attributes=attributes):
        yield


def setup(exporter=None, *, service: str | None = None) -> bool:
    """Instruments Django and psycopg and exports spans to `exporter` (default: OTLP over
    HTTP to OTEL_EXPORTER_OTLP_ENDPOINT, read by the exporter itself) as `service` (default: the web's,
    or OTEL_SERVICE_NAME). Idempotent; True if on."""
    global _instrumented
    with _setup_lock:
        if not _instrumented:
            service = service or service_name("web")
            _set_provider(exporter, service)
            for instrumentor in _instrumentors():
                instrumentor.instrument()
            _instrumented = True
            logger.info("tracing on: spans exported over OTLP/HTTP as %s", service)
        return True


def teardown() -> None:
    """Undoes `setup`'s instrumentation (tests); the tracer provider, set once per process, stays."""
    global _instrumented
    with _setup_lock:
        if _instrumented:
            for instrumentor in _instrumentors():
                instrumentor.uninstrument()
            _instrumented = False


def _set_provider(exporter, service: str) -> None:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return  # a process sets its provider once (a test's second setup keeps the first exporter)
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:  # tests: every span is in the exporter as soon as it ends
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def _instrumentors() -> list:
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    return [DjangoInstrumentor(), PsycopgInstrumentor()]


def enabled() -> bool:
    return _instrumented
