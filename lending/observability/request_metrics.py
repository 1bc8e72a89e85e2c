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

# The labelled children, by their labels: a handful of views, methods and statuses.
_response_counters: dict[tuple[str, str, str], Counter] = {}
_latency_histograms: dict[tuple[str, str], Histogram] = {}


def view_name(request) -> str:
    match = getattr(request, "resolver_match", None)
    return (match.view_name if match is not None else None) or UNNAMED_VIEW


def record(request, status: int, seconds: float) -> None:
    view = view_name(request)
    method = request.method if request.method in KNOWN_METHODS else "<invalid method>"
    counter_key = (str(status), view, method)
    counter = _response_counters.get(counter_key)
    if counter is None:
        counter = _response_counters[counter_key] = responses_by_status_view_method.labels(*counter_key)
    counter.inc()
    histogram_key = (view, method)
    histogram = _latency_histograms.get(histogram_key)
    if histogram is None:
        histogram = _latency_histograms[histogram_key] = latency_by_view_method.labels(*histogram_key)
    histogram.observe(seconds)


class RequestMetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        record(request, response.status_code, time.perf_counter() - started)
        return response
