"""Request-level concerns that sit before the views: the WSGI guard in front of Django, the
correlation id, the probes and metrics served ahead of host validation, the body size limit, and
the checks every API request passes before its view (declared query parameters only, and the
lockout of an address that failed to authenticate too often)."""

from __future__ import annotations

import codecs
import io
import json
import logging
import re
import threading
import uuid
from dataclasses import dataclass
from functools import lru_cache

import structlog
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import JsonResponse
from django.utils.http import parse_header_parameters

from lending import csp, errors
from lending.api import throttling
from lending.api.errors import refusal
from lending.api.proxies import client_address, drop_untrusted_forwarded_headers
from lending.api.schema import IDEMPOTENCY_KEY_PATTERN
from lending.request_context import request_id_var

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept when it is short and plain; anything else is replaced, so it is safe to log.
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def request_id_from(incoming: str) -> str:
    return incoming if VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # The WSGI guard did it already under a server; Django's test client has no guard.
        drop_untrusted_forwarded_headers(request.META)
        # Resolved once, for the request's log line (lending.observability.logs), the throttles and lockouts.
        request.client_address = client_address(request.META)
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER, ""))
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
        from lending.api import health
        from lending.observability import metrics

        self.views = {}
        for route, view in (
            ("/health", health.health),
            ("/health/live", health.live),
            ("/health/ready", health.ready),
            ("/metrics", metrics.metrics_view),
        ):
            self.views[route] = self.views[f"{route}/"] = view

    def __call__(self, request):
        view = self.views.get(request.path_info)
        if view is None:
            return self.get_response(request)
        if request.method not in PROBE_METHODS:
            response = refusal(
                errors.METHOD_NOT_ALLOWED,
                f'Method "{request.method}" not allowed.',
                headers={"Allow": ", ".join(PROBE_METHODS)},
            )
            log_refusal(request.method, request.path_info, response)
            return response
        return view(request)


PROBE_METHODS = ("GET", "HEAD")


class BodySizeLimitMiddleware:
    """Refuses bodies over MAX_REQUEST_BODY_BYTES with 413 before anything reads them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        refused = body_length_refusal(request.META.get("CONTENT_LENGTH"))
        return refused or self.get_response(request)


class AllowedHostMiddleware:
    """Refuses a Host not in ALLOWED_HOSTS with the one JSON error shape. Django would raise
    DisallowedHost later, and under DEBUG (`make run`) answer it with its HTML debug page, settings
    included; checked here, the answer is the same JSON 400 in every mode."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            request.get_host()
        except DisallowedHost:
            return refusal(errors.DISALLOWED_HOST)
        return self.get_response(request)


def body_length_refusal(content_length: str | None) -> JsonResponse | None:
    """400 for a Content-Length that is not a decimal number, 413 above MAX_REQUEST_BODY_BYTES."""
    if not content_length:
        return None
    if not content_length.isascii() or not content_length.isdigit():
        return refusal(errors.BAD_REQUEST, "Invalid Content-Length.")
    if int(content_length) > settings.MAX_REQUEST_BODY_BYTES:
        return too_large()
    return None


def too_large() -> JsonResponse:
    message = errors.PAYLOAD_TOO_LARGE.message.format(max_bytes=settings.MAX_REQUEST_BODY_BYTES)
    return refusal(errors.PAYLOAD_TOO_LARGE, message)


# --- Before each API view -------------------------------------------------------------------------------


class ApiRequestMiddleware:
    """For the API's paths (those of the OpenAPI schema): an address that failed to authenticate
    AUTH_FAILURES_PER_MINUTE times in this minute is refused with 429 before its key is even looked
    at, whatever the method (HEAD and OPTIONS too: none may answer while the others are refused).
    For the API's operations, a query parameter the schema does not declare is a 400 naming it (a
    misspelt `dry_run` must not lend; `format` must not pick a renderer), and so is one given twice
    (`?dry_run=true&dry_run=false`: Django would take the last)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        operations = declared_parameters().get(_schema_path(request) or "")
        if operations is None:
            return None  # not an API path (the admin, the docs)
        locked_out = _auth_lockout(request)
        if locked_out is not None:
            return locked_out
        # HEAD is answered by the GET handler: the same parameters.
        method = "get" if request.method == "HEAD" else (request.method or "").lower()
        declared = operations.get(method)
        if declared is None:
            return None  # a method DRF answers 405 for (or OPTIONS, which takes no parameter)
        if not request.META.get("QUERY_STRING"):  # a write nearly always: no query to parse
            return _invalid_idempotency_key(request, declared)
        return (
            _undeclared_or_empty_query_parameters(request, declared)
            or _repeated_query_parameters(request, declared)
            or _invalid_idempotency_key(request, declared)
        )


def _auth_lockout(request) -> JsonResponse | None:
    if not getattr(settings, "REQUIRE_API_KEY", False):
        return None
    wait = throttling.auth_lockout_seconds(request)
    if wait is None:
        return None
    message = f"Too many failed authentications from this address; retry in {int(wait) + 1} seconds."
    return refusal(errors.RATE_LIMITED, message, headers={"Retry-After": str(max(1, int(wait) + 1))})


def _undeclared_or_empty_query_parameters(request, declared: Declared) -> JsonResponse | None:
    unknown = sorted(set(request.GET) - declared.query)
    if unknown:
        return refusal(
            errors.UNKNOWN_QUERY_PARAMETER,
            errors.UNKNOWN_QUERY_PARAMETER.message.format(names=", ".join(unknown)),
            details={name: ["Unknown query parameter."] for name in unknown},
        )
    # `?user_email=` would otherwise mean "no filter" (DRF reads an empty query value as absent).
    empty = sorted(name for name, values in request.GET.lists() if any(value == "" for value in values))
    if empty:
        details = {name: ["This parameter may not be empty."] for name in empty}
        return refusal(errors.INVALID_REQUEST, details=details)
    return None


def _repeated_query_parameters(request, declared: Declared) -> JsonResponse | None:
    """A parameter meant once, given more than once. The schema's array parameters (`declared.lists`)
    are the allow-list of those that may repeat."""
    repeated = sorted(name for name, values in request.GET.lists() if len(values) > 1 and name not in declared.lists)
    if not repeated:
        return None
    return refusal(
        errors.REPEATED_QUERY_PARAMETER,
        errors.REPEATED_QUERY_PARAMETER.message.format(names=", ".join(repeated)),
        details={name: ["This parameter may be given once."] for name in repeated},
    )


def _invalid_idempotency_key(request, declared: Declared) -> JsonResponse | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None or IDEMPOTENCY_HEADER not in declared.headers or VALID_IDEMPOTENCY_KEY.match(key):
        return None
    return refusal(errors.INVALID_IDEMPOTENCY_KEY)


IDEMPOTENCY_HEADER = "Idempotency-Key"
# The schema's rule for the header (lending/api/schema.py), enforced for every operation declaring it.
VALID_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


_ROUTE_PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")


def _schema_path(request) -> str | None:
    """The request's route as the schema writes it: `loans/<int:loan_id>` -> `/loans/{loan_id}/`."""
    match = getattr(request, "resolver_match", None)
    if match is None or not match.route:
        return None
    return _schema_path_of(match.route)


@lru_cache(maxsize=256)  # one per route of the URLconf
def _schema_path_of(route: str) -> str:
    return "/" + _ROUTE_PARAMETER.sub(r"{\1}", route).strip("/") + "/"


@dataclass(frozen=True)
class Declared:
    """The parameters one operation declares, by name."""

    query: frozenset[str]
    headers: frozenset[str]
    # The query parameters that may be given more than once (the schema's arrays).
    lists: frozenset[str] = frozenset()


_declared_parameters_built = threading.Lock()


def declared_parameters() -> dict[str, dict[str, Declared]]:
    """{path: {method: Declared}}, from the OpenAPI schema the code generates (the one `openapi.yaml`
    is a copy of): what is documented is exactly what is accepted. Built once per process, by one
    thread: drf-spectacular's generator is not thread-safe, and where nothing built it at boot
    (config/wsgi.py does) a threaded worker's first requests arrive together. Once built, read
    without the lock."""
    global _declared
    if _declared is None:
        with _declared_parameters_built:
            if _declared is None:
                _declared = _declared_in_schema()
    return _declared


_declared: dict[str, dict[str, Declared]] | None = None


def _declared_in_schema() -> dict[str, dict[str, Declared]]:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {
        path: {
            method: Declared(_names(operation, "query"), _names(operation, "header"), _array_names(operation))
            for method, operation in operations.items()
            if isinstance(operation, dict)
        }
        for path, operations in schema["paths"].items()
    }


def _names(operation: dict, location: str) -> frozenset[str]:
    return frozenset(p["name"] for p in operation.get("parameters", []) if p.get("in") == location)


def _array_names(operation: dict) -> frozenset[str]:
    return frozenset(
        p["name"]
        for p in operation.get("parameters", [])
        if p.get("in") == "query" and p.get("schema", {}).get("type") == "array"
    )


# --- In front of Django --------------------------------------------------------------------------------

refusal_log = structlog.get_logger("lending.api.refusals")


def log_refusal(method: str, path: str, response: JsonResponse) -> None:
    code = _error_code(response)
    refusal_log.warning("request_refused", method=method, path=path, status=response.status_code, code=code)


def _error_code(response: JsonResponse) -> str:
    try:
        return json.loads(response.content)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return ""


class RequestGuard:
    """WSGI middleware around Django's handler, for what Django would crash on or misread before any
    of its middleware runs:

    - a `charset` other than UTF-8 (or an alias) in Content-Type is 415: Django decodes the query
      string with the body's charset, so `utf-16` or `cp500` turned `?dry_run=true` into noise (a real
      lend) and `zlib` or `rot13` into an exception (an HTML 500 from the server). Refusing them
      keeps the query string always UTF-8;
    - a chunked body (no Content-Length; the server removed the framing) is read to its end, at most
      MAX_REQUEST_BODY_BYTES (413 beyond), and handed on with its length: Django reads a body only
      as far as Content-Length says, so it saw none;
    - X-Forwarded-* from a peer that is not in TRUSTED_PROXIES is dropped;
    - whatever still escapes Django's handler (it happens only while the request is built) is a 400.

    Each refusal is the one JSON error shape with the request id, one log line and a count in
    `lending_requests_refused_total`."""

    def __init__(self, application):
        self.application = application

    def __call__(self, environ, start_response):
        drop_untrusted_forwarded_headers(environ)
        refused = unsupported_charset(environ.get("CONTENT_TYPE", "")) or body_length_refusal(
            environ.get("CONTENT_LENGTH")
        )
        if refused is None and _is_chunked(environ):
            refused = _buffer_chunked_body(environ)
        if refused is not None:
            return self._answer(environ, start_response, refused, _request_id(environ))
        try:
            return self.application(environ, start_response)
        except Exception:
            request_id = _request_id(environ)
            token = request_id_var.set(request_id)
            try:
                refusal_log.exception("request_not_understood")
            finally:
                request_id_var.reset(token)
            refused = refusal(errors.BAD_REQUEST)
            return self._answer(environ, start_response, refused, request_id)

    @staticmethod
    def _answer(environ, start_response, response: JsonResponse, request_id: str):
        response[REQUEST_ID_HEADER] = request_id
        # Django's middleware never sees this answer: the API's strict policy, as it would have set.
        response[csp.HEADER] = csp.STRICT_POLICY
        token = request_id_var.set(request_id)
        try:
            log_refusal(environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""), response)
        finally:
            request_id_var.reset(token)
        status = f"{response.status_code} {response.reason_phrase}"
        start_response(status, list(response.items()))
        return [response.content]


def _request_id(environ) -> str:
    """The id of a request this guard answers itself (Django's middleware gives the others theirs)."""
    return request_id_from(environ.get("HTTP_X_REQUEST_ID", ""))


def unsupported_charset(content_type: str) -> JsonResponse | None:
    if not content_type:
        return None
    _, params = parse_header_parameters(content_type)
    charset = params.get("charset")
    if charset is None:
        return None
    try:
        name = codecs.lookup(charset).name
    except (LookupError, ValueError):
        name = None
    if name == "utf-8":
        return None
    return refusal(errors.UNSUPPORTED_CHARSET, errors.UNSUPPORTED_CHARSET.message.format(charset=charset[:40]))


def _is_chunked(environ) -> bool:
    return "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower() and not environ.get("CONTENT_LENGTH")


def _buffer_chunked_body(environ) -> JsonResponse | None:
    limit = settings.MAX_REQUEST_BODY_BYTES
    stream, body = environ["wsgi.input"], bytearray()
    while len(body) <= limit:
        chunk = stream.read(min(64 * 1024, limit + 1 - len(body)))
        if not chunk:
            break
        body += chunk
    if len(body) > limit:
        return too_large()
    environ["wsgi.input"] = io.BytesIO(bytes(body))
    environ["CONTENT_LENGTH"] = str(len(body))
    del environ["HTTP_TRANSFER_ENCODING"]
    return None
