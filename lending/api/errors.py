"""One error shape for every 4xx and 5xx: `{"error": {"code", "message", "details"?}}`."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import OperationalError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import Counter
from rest_framework import exceptions
from rest_framework.response import Response

from lending import errors
from lending.api import throttling
from lending.errors import ErrorCode, LendingError

logger = logging.getLogger(__name__)

# Requests refused before any view ran (by the WSGI guard or a middleware), by error code. What the
# views refuse is counted by the request metrics (by status: lending.observability.request_metrics) and
# lending_loan_refusals_total.
requests_refused = Counter(
    "lending_requests_refused_total", "Requests refused before reaching a view, by error code.", ["code"]
)

DRF_CODES = {
    exceptions.ParseError: "malformed_json",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.ValidationError: "invalid_request",
    exceptions.NotFound: "not_found",
    exceptions.Throttled: "rate_limited",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
}


def error_body(code: str, message: str, details: Any = None) -> dict:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def refusal(error: ErrorCode, message: str | None = None, *, details: Any = None, headers=None) -> JsonResponse:
    """A refusal made outside the views, in the one shape, counted; the catalogue's status and message
    (unless another `message` is given)."""
    requests_refused.labels(error.code).inc()
    response = JsonResponse(error_body(error.code, message or error.message, details), status=error.status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def lending_error_response(exc: LendingError) -> Response:
    return Response(error_body(exc.code, exc.message, exc.details), status=exc.status, headers=exc.headers)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, LendingError):
        return lending_error_response(exc)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or "Permission denied.")
    if isinstance(exc, exceptions.AuthenticationFailed):
        request = context.get("request")
        if request is not None:
            throttling.record_auth_failure(request)
    if isinstance(exc, exceptions.APIException):
        return _drf_error_response(exc)
    if isinstance(exc, OperationalError):
        return _database_unavailable(exc)
    logger.exception("unhandled error")
    return Response(error_body(errors.INTERNAL_ERROR.code, errors.INTERNAL_ERROR.message), status=500)


def _database_unavailable(exc: OperationalError) -> Response:
    """The database could not serve the request in time: a moment of overload or contention, not a bug.
    Its transaction was rolled back (or, failing at COMMIT, its outcome is for a retry with the same
    Idempotency-Key to tell), so the caller retries, as after a peer failure."""
    reason = type(exc.__cause__ or exc).__name__  # psycopg's: LockNotAvailable, QueryCanceled, ...
    logger.warning("database unavailable: %s", reason, exc_info=exc)
    error = errors.DATABASE_UNAVAILABLE
    return Response(
        error_body(error.code, error.message.format(reason=reason)),
        status=error.status,
        headers={"Retry-After": str(errors.DATABASE_RETRY_AFTER_SECONDS)},
    )


def _drf_error_response(exc: exceptions.APIException) -> Response:
    code = next((c for cls, c in DRF_CODES.items() if isinstance(exc, cls)), "bad_request")
    headers = {}
    wait = getattr(exc, "wait", None)  # Throttled's; the DRF stubs do not declare it
    if isinstance(exc, exceptions.Throttled) and wait is not None:
        headers["Retry-After"] = str(max(1, int(wait)))  # DRF has rounded the wait up already
    # Set by DRF on NotAuthenticated/AuthenticationFailed when the authenticator names a scheme (401).
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = auth_header
    if isinstance(exc, exceptions.ValidationError):
        return Response(error_body(code, "The request is invalid.", exc.detail), status=exc.status_code)
    message = str(exc.detail) if not isinstance(exc.detail, (list, dict)) else "The request is invalid."
    return Response(error_body(code, message), status=exc.status_code, headers=headers)


# Django-level handlers, for what never reaches a DRF view (unknown paths, crashes in middleware).
# The catch-all route of unknown paths needs no CSRF token: a POST to a misspelt path is a 404.
@csrf_exempt
def json_404(request, exception=None) -> JsonResponse:
    return _answer(errors.NOT_FOUND, path=request.path)


def json_500(request) -> JsonResponse:
    return _answer(errors.INTERNAL_ERROR)


def json_400(request, exception=None) -> JsonResponse:
    return _answer(errors.BAD_REQUEST)


def json_403(request, exception=None) -> JsonResponse:
    return _answer(errors.PERMISSION_DENIED)


def csrf_failure(request, reason: str = "") -> JsonResponse:
    """CSRF_FAILURE_VIEW: the admin's forms without a valid token (the API itself is exempt)."""
    return _answer(errors.CSRF_FAILED, reason=reason)


def _answer(error: ErrorCode, **values: Any) -> JsonResponse:
    return JsonResponse(error_body(error.code, error.message.format(**values)), status=error.status)
