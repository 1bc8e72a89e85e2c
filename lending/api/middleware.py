"""Request-level concerns that sit before the views: the correlation id, the probes and metrics
served ahead of host validation, and the body size limit."""

from __future__ import annotations

import logging
import re
import uuid

from django.conf import settings
from django.http import JsonResponse

from lending.api.errors import error_body
from lending.request_context import request_id_var

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept when it is short and plain; anything else is replaced, so it is safe to log.
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


class RequestIdLogFilter(logging.Filter):
    """Puts the current request id on every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class ProbeMiddleware:
    """Serves the health probes and `/metrics` before anything validates the Host header or redirects
    to HTTPS: Kubernetes probes send `Host: localhost` and Prometheus scrapes with the pod's IP as Host,
    neither of which belongs in DJANGO_ALLOWED_HOSTS, and neither speaks TLS to the pod. These answers
    carry no personal data and are not logged (a probe every few seconds would drown the request log)."""

    def __init__(self, get_response):
        self.get_response = get_response
        from lending import metrics
        from lending.api import health

        self.views = {}
        for route, view in (
            ("/health", health.health),
            ("/health/live", health.live),
            ("/health/ready", health.ready),
            ("/metrics", metrics.metrics_view),
        ):
            self.views[route] = self.views[f"{route}/"] = view

    def __call__(self, request):
        view = self.views.get(request.path_info) if request.method in ("GET", "HEAD") else None
        if view is None:
            return self.get_response(request)
        return view(request)


class BodySizeLimitMiddleware:
    """Refuses bodies over MAX_REQUEST_BODY_BYTES with 413 before anything reads them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse(error_body("bad_request", "Invalid Content-Length."), status=400)
        if length > settings.MAX_REQUEST_BODY_BYTES:
            message = f"Request bodies are limited to {settings.MAX_REQUEST_BODY_BYTES} bytes."
            return JsonResponse(error_body("payload_too_large", message), status=413)
        return self.get_response(request)
