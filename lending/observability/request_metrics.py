"""The request metrics the alerts and the dashboard read, under django-prometheus's names.

`django_http_responses_total_by_status_view_method_total{status, view, method}` (the 5xx ratio alert,
the answers-by-status panel) and `django_http_requests_latency_seconds_by_view_method{view, method}`
(the p99 alert, the latency panels), with django-prometheus's labels and buckets. Its two middleware
classes kept some twenty other series that nothing reads, at some ten `labels()` look-ups per request;
here a request costs one look-up per metric, cached by its labels.

Timed around the view and the middleware inside this one (the place of django-prometheus's "after"
middleware); an exception the view raised is counted with the 500 that Django's handler made of it.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram

# django-prometheus's default latency buckets: the alert and the panels' quantiles assume them.
LATENCY_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    25.0,
    50.0,
    75.0,
    float("inf"),
)
# As django-prometheus labels the answers (and now the latencies too): any other method is one label
# value, not a new series each.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "CONNECT", "PATCH"})
UNNAMED_VIEW = "<unnamed view>"

responses_by_status_view_method = Counter(
    "django_http_responses_total_by_status_view_method",
    "Count of responses by status, view, method.",
    ["status", "view", "method"],
)
latency_by_view_method = Histogram(
    "django_http_requests_latency_seconds_by_view_method",
    "Histogram of request processing time labelled by view.",
    ["view", "method"],
    buckets=LATENCY_BUCKETS,
)

# The labelled children, by metric and labels: a handful of views, methods and statuses.
_children: dict[tuple[object, tuple[str, ...]], Any] = {}


def _child(metric: Counter | Histogram, *labels: str) -> Any:
    """`metric.labels(*labels)`, looked up once per process and kept."""
    key = (metric, labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def view_name(request) -> str:
    match = getattr(request, "resolver_match", None)
    return (match.view_name if match is not None else None) or UNNAMED_VIEW


def record(request, status: int, seconds: float) -> None:
    view = view_name(request)
    method = request.method if request.method in KNOWN_METHODS else "<invalid method>"
    _child(responses_by_status_view_method, str(status), view, method).inc()
    _child(latency_by_view_method, view, method).observe(seconds)


class RequestMetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        record(request, response.status_code, time.perf_counter() - started)
        return response
