"""Domain errors and their one catalogue.

Each error code is declared once, below: its HTTP status, its message (a template, filled at the
raise site: `raise NO_COPY_AVAILABLE.error(book_id=7)`), an example and what the README says of it.
The raise sites, the OpenAPI responses (`lending.api.schema.error_responses`) and the README's error
table (`readme_table()`, checked by a test) all come from here. Every error answers in one JSON shape,
`{"error": {"code": ..., "message": ..., "details"?: ...}}` (`lending.api.errors`).

No Django here: the web server's own refusals (`config/gunicorn_worker.py`) use these codes too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class LendingError(Exception):
    status = 400
    code = "bad_request"

    def __init__(
        self, message: str, *, code: str | None = None, headers: dict[str, str] | None = None, details: Any = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.headers = headers or {}
        self.details = details


class NotFound(LendingError):
    status = 404
    code = "not_found"


class Forbidden(LendingError):
    status = 403
    code = "forbidden"


class Conflict(LendingError):
    status = 409
    code = "conflict"


class Unprocessable(LendingError):
    status = 422
    code = "unprocessable"


class PeerUnavailable(LendingError):
    """A peer is down, slow, broken or behind an open circuit breaker: the caller may retry later."""

    status = 503
    code = "peer_unavailable"

    def __init__(self, peer: str, reason: str, *, retry_after: int = 5, outcome_unknown: bool = False) -> None:
        super().__init__(
            PEER_UNAVAILABLE.message.format(peer=peer, reason=reason),
            headers={"Retry-After": str(max(1, retry_after))},
        )
        self.peer = peer
        self.reason = reason
        # The request reached the peer and we stopped waiting for its answer: it may still be applied.
        self.outcome_unknown = outcome_unknown


# --- The catalogue -----------------------------------------------------------------------------------

# The values the examples are written with.
EXAMPLE_VALUES = {
    "user_email": "alice@example.com",
    "book_id": 123,
    "item_barcode": "3900000101",
    "loan_id": 7,
    "block_id": 4,
    "renewals": 2,
    "open_loans": 10,
    "overdue_loans": 1,
    "max_bytes": 16384,
    "peer": "User Management",
    "reason": "circuit breaker open",
    "loan_policy": "dvd-week",
}
_CLASSES: dict[int, type[LendingError]] = {403: Forbidden, 404: NotFound, 409: Conflict, 422: Unprocessable}
CATALOGUE: dict[str, ErrorCode] = {}


@dataclass(frozen=True)
class ErrorCode:
    code: str
    status: int
    # The message, a `str.format` template of EXAMPLE_VALUES' names; for codes whose message is
    # written by a library (DRF, the web server), what it typically says.
    message: str
    # The example shown in the OpenAPI document when it differs from the filled-in template.
    example_message: str | None = None
    example_details: Any = None
    # What the README's error table says of it, in parentheses after the code.
    note: str = ""

    def __post_init__(self) -> None:
        CATALOGUE[self.code] = self

    @property
    def example(self) -> str:
        return self.example_message or self.message.format(**EXAMPLE_VALUES)

    def error(
        self, message: str | None = None, *, headers: dict[str, str] | None = None, details: Any = None, **values: Any
    ) -> LendingError:
        """The exception to raise: its message is the template filled with `values` (or `message`)."""
        cls = _CLASSES.get(self.status, LendingError)
        error = cls(message or self.message.format(**values), code=self.code, headers=headers, details=details)
        error.status = self.status
        return error


def _e(*args: Any, **kwargs: Any) -> ErrorCode:
    return ErrorCode(*args, **kwargs)


# 400
INVALID_REQUEST = _e(
    "invalid_request",
    400,
    "The request is invalid.",
    example_details={"book_id": ["A JSON integer is required."]},
    note="missing field, wrong type, id ≤ 0, fractional or > 2³¹−1, invalid or over-long email, an empty query "
    "parameter",
)
MALFORMED_JSON = _e(
    "malformed_json",
    400,
    "JSON parse error - duplicate key 'book_id'",
    note="also duplicate keys, `NaN`, nesting deeper than 32, invalid UTF-8",
)
UNKNOWN_QUERY_PARAMETER = _e(
    "unknown_query_parameter",
    400,
    "Unknown query parameter(s): {names}.",
    example_message="Unknown query parameter(s): dryrun.",
    example_details={"dryrun": ["Unknown query parameter."]},
    note="one the operation does not declare in `openapi.yaml`, e.g. a misspelt `dry_run` or `format`",
)
REPEATED_QUERY_PARAMETER = _e(
    "repeated_query_parameter",
    400,
    "Query parameter(s) given more than once: {names}.",
    example_message="Query parameter(s) given more than once: dry_run.",
    example_details={"dry_run": ["This parameter may be given once."]},
    note="e.g. `?dry_run=true&dry_run=false`: which one was meant cannot be known",
)
INVALID_IDEMPOTENCY_KEY = _e(
    "invalid_idempotency_key", 400, "Idempotency-Key must be 1 to 255 visible ASCII characters (no spaces)."
)
BAD_REQUEST = _e(
    "bad_request",
    400,
    "The request could not be understood.",
    note="a request that cannot be understood, e.g. an invalid `Content-Length`",
)
DISALLOWED_HOST = _e(
    "disallowed_host",
    400,
    "The Host header names a host this service does not serve (DJANGO_ALLOWED_HOSTS).",
    note="a `Host` not in `DJANGO_ALLOWED_HOSTS`, in debug mode too",
)
# 401
NOT_AUTHENTICATED = _e("not_authenticated", 401, "An API key is required: send `Authorization: Api-Key <key>`.")
AUTHENTICATION_FAILED = _e(
    "authentication_failed",
    401,
    "Invalid or revoked API key.",
    note="only when service API keys are required; with `WWW-Authenticate: Api-Key`",
)
# 403
USER_INACTIVE = _e("user_inactive", 403, "User {user_email} is not active.")
INSUFFICIENT_SCOPE = _e(
    "insufficient_scope",
    403,
    "This call needs an API key with the `circulation` scope.",
    example_details={
        "required_scope": "circulation",
        "accepted_scopes": ["circulation"],
        "granted_scopes": ["patron-read"],
    },
    note="the API key lacks the scope the call needs",
)
PERMISSION_DENIED = _e("permission_denied", 403, "Permission denied.")
PATRON_BLOCKED = _e(
    "patron_blocked",
    403,
    "{user_email} may not {action}: the patron is blocked.",
    example_message="alice@example.com may not borrow: the patron is blocked.",
    example_details={
        "blocks": [
            {
                "code": "manual_block",
                "message": "Blocked by staff: Damaged two books; see the desk.",
                "actions": ["borrow", "reserve"],
                "block_id": 4,
                "reason": "Damaged two books; see the desk.",
            },
            {
                "code": "too_many_overdue_loans",
                "message": "3 overdue loan(s); 3 or more block the patron.",
                "actions": ["borrow", "renew", "reserve"],
            },
        ]
    },
    note="a staff block or an automated one: overdue loans, lost items; `details.blocks` lists each; an override "
    "lifts it",
)
CSRF_FAILED = _e("csrf_failed", 403, "CSRF verification failed: {reason}", note="an admin form without its CSRF token")
FORBIDDEN = _e("forbidden", 403, "The request is not allowed.", note="refused by the web server")
# 404
USER_NOT_FOUND = _e("user_not_found", 404, "User {user_email} does not exist.")
BOOK_NOT_FOUND = _e("book_not_found", 404, "Book {book_id} does not exist.")
ITEM_NOT_FOUND = _e("item_not_found", 404, "No item has the barcode {item_barcode}.")
LOAN_NOT_FOUND = _e("loan_not_found", 404, "{user_email} has no open loan of book {book_id}.")
HOLD_NOT_FOUND = _e("hold_not_found", 404, "{user_email} has no open hold on book {book_id}.")
BLOCK_NOT_FOUND = _e("block_not_found", 404, "{user_email} has no block {block_id}.")
POLICY_NOT_FOUND = _e("policy_not_found", 404, "No loan policy is named {loan_policy}.")
NOT_FOUND = _e(
    "not_found", 404, "No endpoint at {path}.", example_message="No endpoint at /lendbook/.", note="unknown path"
)
# 405, 406, 408
METHOD_NOT_ALLOWED = _e("method_not_allowed", 405, 'Method "DELETE" not allowed.')
NOT_ACCEPTABLE = _e(
    "not_acceptable",
    406,
    "Could not satisfy the request Accept header.",
    note="an `Accept` header that excludes JSON",
)
REQUEST_TIMEOUT = _e(
    "request_timeout", 408, "The request did not arrive in time.", note="the request did not arrive in time"
)
# 409
NO_COPY_AVAILABLE = _e("no_copy_available", 409, "No copy of book {book_id} is available.")
ALREADY_BORROWED = _e("already_borrowed", 409, "{user_email} already has book {book_id} on loan.")
ITEM_ON_LOAN = _e("item_on_loan", 409, "Item {item_barcode} is on loan; check it in first.")
ITEM_NOT_LOANABLE = _e("item_not_loanable", 409, "Item {item_barcode} is not for loan.")
ITEM_ON_HOLD_SHELF = _e("item_on_hold_shelf", 409, "Item {item_barcode} waits on the hold shelf for another patron.")
PATRON_HAS_OVERDUE_LOANS = _e(
    "patron_has_overdue_loans", 409, "{user_email} has {overdue_loans} overdue loan(s); return them before borrowing."
)
LOAN_LIMIT_REACHED = _e(
    "loan_limit_reached", 409, "{user_email} already has {open_loans} loans, the most a patron may hold at once."
)
COPIES_ON_HOLD = _e(
    "copies_on_hold",
    409,
    "Every free copy of book {book_id} is kept for patrons in its holds queue; reserve it instead.",
)
RENEWAL_LIMIT_REACHED = _e(
    "renewal_limit_reached", 409, "Loan {loan_id} was already renewed {renewals} time(s), the most allowed."
)
LOAN_OVERDUE = _e("loan_overdue", 409, "Loan {loan_id} is overdue and cannot be renewed; return it.")
BOOK_RESERVED_BY_OTHERS = _e(
    "book_reserved_by_others", 409, "Another patron is waiting for book {book_id}; the loan cannot be renewed."
)
COPY_AVAILABLE = _e("copy_available", 409, "A copy of book {book_id} is free: borrow it instead of reserving.")
LOAN_NOT_OPEN = _e("loan_not_open", 409, "Loan {loan_id} is returned: it cannot change.")
LOAN_STATUS_CONFLICT = _e(
    "loan_status_conflict",
    409,
    "Loan {loan_id} is {status}: {action} is not possible.",
    example_message="Loan 7 is LOST: renewing it is not possible.",
    note="renewing or re-dating a lost or claimed-returned loan; declaring lost a lost one; resolving a circulating "
    "one",
)
ALREADY_RESERVED = _e("already_reserved", 409, "{user_email} already has a hold on book {book_id}.")
HOLDS_NOT_ALLOWED = _e(
    "holds_not_allowed",
    409,
    "Book {book_id} cannot be reserved: its loan policy ({loan_policy}) allows no holds.",
    note="the loan policy the circulation rules pick for this patron and title says `holds_allowed: false`",
)
POLICY_IN_USE = _e(
    "policy_in_use",
    409,
    "Loan policy {loan_policy} is named by a circulation rule: change the rules first.",
    note="deleting a loan policy a circulation rule names",
)
IDEMPOTENCY_REQUEST_IN_PROGRESS = _e(
    "idempotency_request_in_progress",
    409,
    "A request with this Idempotency-Key is still being processed; retry shortly.",
)
IDEMPOTENCY_KEY_IN_USE = _e(
    "idempotency_key_in_use",
    409,
    "Another request took over this idempotency key.",
    note="another request took over the key",
)
PATRON_HAS_OPEN_LOANS = _e(
    "patron_has_open_loans",
    409,
    "The patron still has open loans, open holds or notifications to deliver; erase them once these are closed "
    "or delivered.",
    note="erasure refused while the patron has open loans, open holds or notifications to deliver",
)
# 413, 414, 415, 417
PAYLOAD_TOO_LARGE = _e(
    "payload_too_large",
    413,
    "Request bodies are limited to {max_bytes} bytes.",
    note="body over `MAX_REQUEST_BODY_BYTES`",
)
REQUEST_LINE_TOO_LONG = _e("request_line_too_long", 414, "The request line is too long.")
UNSUPPORTED_MEDIA_TYPE = _e(
    "unsupported_media_type",
    415,
    'Unsupported media type "text/plain" in request.',
    note="send `Content-Type: application/json`",
)
UNSUPPORTED_CHARSET = _e(
    "unsupported_charset",
    415,
    "Unsupported charset {charset!r}: requests are read as UTF-8 only.",
    example_message="Unsupported charset 'utf-16': requests are read as UTF-8 only.",
    note="a `charset` other than UTF-8",
)
EXPECTATION_FAILED = _e(
    "expectation_failed",
    417,
    "Only the 100-continue expectation is supported.",
    note="an `Expect` other than `100-continue`",
)
# 422, 429, 431
DATE_OUT_OF_RANGE = _e(
    "date_out_of_range",
    422,
    "{field} is out of range: {reason}",
    example_message="returned_at is out of range: at most 7 days ago.",
    example_details={"returned_at": ["At most 7 days ago."]},
    note="a well-formed date the rules do not allow now: a due date in the past, a return in the future or "
    "beyond RETURN_BACKDATE_MAX_DAYS, a block expiring in the past",
)
MISSING_FALLBACK_RULE = _e(
    "missing_fallback_rule",
    422,
    "The circulation rules need a fallback rule: one with patron_category and item_type both null.",
)
UNKNOWN_POLICY = _e(
    "unknown_policy",
    422,
    "A circulation rule names a loan policy that does not exist: {loan_policy}.",
    example_details={"rules": {"2": ["No loan policy is named dvd-week."]}},
)
DUPLICATE_RULE = _e(
    "duplicate_rule",
    422,
    "Two circulation rules have the same criteria.",
    example_details={"rules": {"3": ["Same patron_category and item_type as rule 1."]}},
)
IDEMPOTENCY_KEY_REUSED = _e(
    "idempotency_key_reused", 422, "This Idempotency-Key was already used with a different request."
)
RATE_LIMITED = _e(
    "rate_limited", 429, "Request was throttled. Expected available in 12 seconds.", note="with `Retry-After`"
)
REQUEST_HEADERS_TOO_LARGE = _e("request_headers_too_large", 431, "The request headers are too large.")
# 5xx
INTERNAL_ERROR = _e(
    "internal_error",
    500,
    "An unexpected error occurred.",
    note="a bug: the request id in the log line tells which",
)
NOT_IMPLEMENTED = _e(
    "not_implemented", 501, "The transfer coding is not supported.", note="a transfer coding other than chunked"
)
PEER_UNAVAILABLE = _e(
    "peer_unavailable", 503, "The {peer} service is unavailable ({reason}); retry later.", note="with `Retry-After`"
)
DATABASE_UNAVAILABLE = _e(
    "database_unavailable",
    503,
    "The database could not serve this request in time ({reason}); retry later.",
    note="with `Retry-After`: no connection to be had, a lock or statement timeout, a deadlock",
)
# Seconds a caller waits before retrying after DATABASE_UNAVAILABLE: such a moment is short-lived.
DATABASE_RETRY_AFTER_SECONDS = 1


def readme_table() -> str:
    """The README's error table: one row per status, its codes in catalogue order."""
    rows: dict[int, list[str]] = {}
    for entry in CATALOGUE.values():
        rows.setdefault(entry.status, []).append(f"`{entry.code}`" + (f" ({entry.note})" if entry.note else ""))
    lines = ["| status | codes |", "|---|---|"]
    lines += [f"| {status} | {', '.join(codes)} |" for status, codes in sorted(rows.items())]
    return "\n".join(lines)
