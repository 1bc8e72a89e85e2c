"""What the current request is, readable from any layer (logs, peer calls, the outbox, the relay): its
correlation id, and its trace (`lending.observability.tracing` starts and continues the spans)."""

import contextvars

from opentelemetry import propagate, trace

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def current_request_id() -> str:
    return request_id_var.get()


def current_traceparent() -> str:
    """The W3C traceparent of the current span, or "" when no span is recording (tracing off): what an
    outbox message keeps of the change that wrote it (`OutboxMessage.traceparent`'s default)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return ""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", "")
