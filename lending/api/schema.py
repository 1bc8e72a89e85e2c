"""The OpenAPI description of the API (drf-spectacular): the shared error component, the error
responses built from the catalogue in `lending.errors`, the common headers, the API key scheme, and
the schema hooks.

Each endpoint's description (`lending.api.docs`) is made of the pieces defined here. `openapi.yaml` at the repository
root is generated from them (`make openapi`); a test fails when it is stale.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

from lending.api.serializers import LoanDetailSerializer, LoanSerializer
from lending.errors import CATALOGUE

# --- The error shape --------------------------------------------------------------------------------


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable error code, e.g. `no_copy_available`.")
    message = serializers.CharField(help_text="Human-readable explanation.")
    details = serializers.JSONField(
        required=False, help_text="Per-field problems for `invalid_request`; absent otherwise."
    )


class ErrorResponseSerializer(serializers.Serializer):
    """Every 4xx and 5xx answer: `{"error": {"code", "message", "details"?}}`."""

    error = ErrorDetailSerializer()


# code -> (HTTP status, example message, example details or None): the catalogue's (`lending.errors`).
ERRORS: dict[str, tuple[int, str, Any]] = {
    entry.code: (entry.status, entry.example, entry.example_details) for entry in CATALOGUE.values()
}

STATUS_DESCRIPTIONS = {
    400: "Invalid request",
    401: "Missing, wrong, revoked or expired API key (only when API keys are required)",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Body too large",
    415: "Body is not JSON, or a charset other than UTF-8 is declared",
    422: "Idempotency-Key reused with another request",
    429: "Rate limit exceeded, or too many failed authentications from the address; retry after `Retry-After` seconds",
    503: "A peer service is unavailable; retry after `Retry-After` seconds",
}

# Every operation: undeclared or repeated query parameters, a declared charset other than UTF-8, API keys and limits.
AUTH_ERRORS = (
    "unknown_query_parameter",
    "repeated_query_parameter",
    "unsupported_charset",
    "not_authenticated",
    "authentication_failed",
    "rate_limited",
)
WRITE_ERRORS = (
    "invalid_request",
    "malformed_json",
    "invalid_idempotency_key",
    "payload_too_large",
    "unsupported_media_type",
    "idempotency_request_in_progress",
    "idempotency_key_in_use",
    "idempotency_key_reused",
    *AUTH_ERRORS,
    "insufficient_scope",
)
READ_ERRORS = AUTH_ERRORS
LISTING_ERRORS = ("invalid_request", *AUTH_ERRORS, "insufficient_scope")


def error_responses(*codes: str) -> dict[int, OpenApiResponse]:
    """One response per status, with one example per error code."""
    by_status: dict[int, list[OpenApiExample]] = {}
    for code in dict.fromkeys(codes):
        status, message, details = ERRORS[code]
        body: dict[str, Any] = {"code": code, "message": message}
        if details is not None:
            body["details"] = details
        by_status.setdefault(status, []).append(
            OpenApiExample(code, value={"error": body}, response_only=True, status_codes=[str(status)])
        )
    return {
        status: OpenApiResponse(
            ErrorResponseSerializer,
            description=f"{STATUS_DESCRIPTIONS[status]}: " + ", ".join(f"`{e.name}`" for e in examples),
            examples=examples,
        )
        for status, examples in sorted(by_status.items())
    }


# --- Headers ------------------------------------------------------------------------------------------

REQUEST_ID = OpenApiParameter(
    "X-Request-ID",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    # No pattern: any value is accepted, and one that is not 1-128 of `A-Za-z0-9._:-` is replaced.
    description="Correlation id, echoed in the response and sent on to the peers; one is made up when absent "
    "or not 1-128 of `A-Za-z0-9._:-`.",
)
REQUEST_ID_ECHO = OpenApiParameter(
    "X-Request-ID",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=True,
    description="The request's correlation id (the caller's, or a new one).",
)
# Visible ASCII, no spaces: what a server delivers unchanged (it trims spaces around a header value).
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]{1,255}$"
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN, "minLength": 1, "maxLength": 255},
    OpenApiParameter.HEADER,
    description="Makes the POST safe to retry: the first answer is stored and replayed to every retry with the "
    "same key for IDEMPOTENCY_KEY_TTL_HOURS (24 h). 1-255 visible ASCII characters. The same key with another "
    "body is 422 `idempotency_key_reused`; while the first request runs, 409 `idempotency_request_in_progress`.",
)
IDEMPOTENT_REPLAYED = OpenApiParameter(
    "Idempotent-Replayed",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=[200, 201, 400, 403, 404, 409],
    enum=["true"],
    description="`true` when the answer is the stored one of an earlier request with the same key.",
)
RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    response=[409, 429, 503],
    description="Seconds to wait before retrying (429, 503, and 409 `idempotency_request_in_progress`).",
)
LINK = OpenApiParameter(
    "Link",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=[200],
    description='RFC 8288 links to other pages: `<url>; rel="first|prev|next|last"`.',
)
TOTAL_COUNT = OpenApiParameter(
    "X-Total-Count",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    response=[200],
    description="Items in all pages.",
)
# The bounds the server enforces (lending/api/pagination.py); `limit`'s is API_MAX_PAGE_SIZE when generated.
LIMIT = OpenApiParameter(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": settings.API_MAX_PAGE_SIZE},
    description="Items per page (at most API_MAX_PAGE_SIZE).",
)
OFFSET = OpenApiParameter(
    "offset", {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}, description="Items to skip."
)

COMMON_PARAMETERS = [REQUEST_ID, REQUEST_ID_ECHO, RETRY_AFTER]
WRITE_PARAMETERS = [IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED, *COMMON_PARAMETERS]


# --- Examples -----------------------------------------------------------------------------------------

LOAN_REQUEST_EXAMPLE = OpenApiExample(
    # Book 1 of the reference peers' demo catalogue, so "Try it out" works under `make run`.
    "Lend or return",
    value={"user_email": "alice@example.com", "book_id": 1},
    request_only=True,
)
_LOAN = {
    "id": 1,
    "user_email": "alice@example.com",
    "book_id": 123,
    "date_borrowed": "2024-01-15T10:00:00Z",
    "date_due": "2024-03-15T10:00:00Z",
    "date_returned": None,
    "status": "ACTIVE",
}
LOAN_EXAMPLE = OpenApiExample("Active loan", value=_LOAN, response_only=True, status_codes=["201"])
RETURNED_EXAMPLE = OpenApiExample(
    "Returned loan",
    value={**_LOAN, "date_returned": "2024-02-01T09:30:00Z", "status": "RETURNED"},
    response_only=True,
    status_codes=["200"],
)
RENEWED_EXAMPLE = OpenApiExample(
    "Renewed loan",
    value={**_LOAN, "date_due": "2024-05-14T10:00:00Z", "book_title": "Dune", "renewals": 1},
    response_only=True,
    status_codes=["200"],
)
OVERDUE_EXAMPLE = OpenApiExample(
    "Overdue loans",
    # One item: the list around it is added for a `many` response.
    value={
        **_LOAN,
        "id": 7,
        "user_email": "bob@example.com",
        "date_borrowed": "2023-11-01T08:00:00Z",
        "date_due": "2023-12-31T08:00:00Z",
        "status": "OVERDUE",
    },
    response_only=True,
    status_codes=["200"],
)
_HOLD = {
    "id": 3,
    "user_email": "alice@example.com",
    "book_id": 123,
    "book_title": "Dune",
    "status": "WAITING",
    "queue_position": 1,
    "date_reserved": "2024-01-15T10:00:00Z",
    "date_ready": None,
    "pickup_deadline": None,
    "date_closed": None,
    "loan_id": None,
}
HOLD_EXAMPLE = OpenApiExample("Waiting hold", value=_HOLD, response_only=True, status_codes=["201"])
CANCELLED_HOLD_EXAMPLE = OpenApiExample(
    "Cancelled hold",
    value={**_HOLD, "status": "CANCELLED", "queue_position": None, "date_closed": "2024-01-20T10:00:00Z"},
    response_only=True,
    status_codes=["200"],
)
DRY_RUN_EXAMPLES = [
    OpenApiExample(
        "Would succeed",
        value={
            "dry_run": True,
            "would_succeed": True,
            "user_email": "alice@example.com",
            "book_id": 123,
            "error": None,
        },
        response_only=True,
        status_codes=["200"],
    ),
    OpenApiExample(
        "Would be refused",
        value={
            "dry_run": True,
            "would_succeed": False,
            "user_email": "alice@example.com",
            "book_id": 123,
            "error": {"code": "no_copy_available", "message": "No copy of book 123 is available."},
        },
        response_only=True,
        status_codes=["200"],
    ),
]


def page_of(serializer: type[serializers.Serializer], name: str) -> serializers.Serializer:
    return inline_serializer(
        name,
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer(many=True),
        },
    )


class PolicySerializer(serializers.Serializer):
    loan_period_days = serializers.IntegerField(help_text="The fallback loan policy's `loan_days`.")
    max_renewals = serializers.IntegerField(help_text="The fallback loan policy's `renewals_max`.")
    max_active_loans_per_patron = serializers.IntegerField(
        allow_null=True, help_text="The fallback loan policy's `max_loans` (null: no limit)."
    )
    block_on_overdue = serializers.BooleanField()
    renew_overdue_allowed = serializers.BooleanField()
    hold_pickup_days = serializers.IntegerField()
    loan_policy = serializers.CharField(help_text="The fallback rule's loan policy (`GET /loan-policies/`).")


LOAN_PAGE = page_of(LoanDetailSerializer, "PaginatedLoanList")
LOAN_LIST = LoanSerializer(many=True)


# --- Security scheme ----------------------------------------------------------------------------------


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "lending.api.auth.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`. Required on every API call when REQUIRE_API_KEY is true "
            "(the default with DJANGO_DEBUG false); keys come from "
            "`manage.py api_keys create <name> --scopes <scope,...>`. A key may call only what its scopes allow "
            "(each operation names its scope, also in `x-required-scopes`); any other call is 403 "
            "`insufficient_scope`, naming the scope needed in `details.required_scope`. Scopes: "
            "`circulation` (lend, return, renew, reserve, cancel, and their dry runs); "
            "`patron-read` (one patron's loans and holds: `GET /loans/` and `GET /reservations/` with a "
            "`user_email` filter, `GET /loans/{id}/` and its history); "
            "`reports` (unfiltered listings, `GET /getExpiredBooks/`, and what `patron-read` reads); "
            "`privacy` (erasing a patron's closed loans and holds); `override` (lifting a named refusal); "
            "`patron-self` (a key bound to one patron: that patron's loans and holds, renewing, reserving, "
            "cancelling; anyone else's is 403).",
        }


# --- Hooks --------------------------------------------------------------------------------------------


def drop_unslashed_duplicates(endpoints: list, **kwargs) -> list:
    """Every route is served with and without its trailing slash; document only the slash one."""
    slashed = {path for path, *_ in endpoints if path.endswith("/")}
    return [e for e in endpoints if e[0].endswith("/") or f"{e[0]}/" not in slashed]


_HEALTH_BODY = {
    "type": "object",
    "properties": {
        "service": {"type": "string", "example": "lending-service"},
        # degraded: a non-critical check failed (the cache, in readiness); still 200.
        "status": {"type": "string", "enum": ["healthy", "degraded", "unhealthy"]},
        "checks": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["service", "status", "checks"],
}
_HEALTH = {
    "/health/": ("health", "The spec's health check: the database answers.", {"database": "ok"}),
    "/health/live/": ("healthLive", "Liveness probe: the process answers.", {"process": "ok"}),
    "/health/ready/": (
        "healthReady",
        "Readiness probe: the database answers and no migration is unapplied; the cache's state is reported "
        "(`degraded`, still 200, when only the cache is down: the rate limits then fail open).",
        {"database": "ok", "migrations": "ok", "cache": "ok"},
    ),
}


def add_health_paths(result: dict, **kwargs) -> dict:
    """The health endpoints are plain Django views (no API key, no throttling): add them by hand. They
    answer GET, and HEAD as HTTP defines it (GET without the body); any other method is 405
    `method_not_allowed` with `Allow: GET, HEAD` (ProbeMiddleware), which each path documents."""
    for path, (operation_id, summary, checks) in _HEALTH.items():
        unhealthy = {key: "unavailable: OperationalError" for key in checks}
        result["paths"][path] = {
            "get": {
                "operationId": operation_id,
                "summary": summary,
                "description": "GET, and HEAD (the same status, no body). Any other method is 405 "
                "`method_not_allowed` with `Allow: GET, HEAD`. No API key; never redirected to HTTPS.",
                "tags": ["health"],
                "security": [],
                "responses": {
                    "200": {
                        "description": "Healthy",
                        "content": {
                            "application/json": {
                                "schema": _HEALTH_BODY,
                                "example": {"service": "lending-service", "status": "healthy", "checks": checks},
                            }
                        },
                    },
                    "503": {
                        "description": "Unhealthy",
                        "content": {
                            "application/json": {
                                "schema": _HEALTH_BODY,
                                "example": {"service": "lending-service", "status": "unhealthy", "checks": unhealthy},
                            }
                        },
                    },
                },
            },
        }
    return result
