"""Each endpoint's OpenAPI description (drf-spectacular), in tables beside the views: what it is
called, what it takes, what it answers and which error codes it may refuse with (their status,
message and example come from the catalogue in `lending.errors`, through `lending.api.schema`).

Three tables, one per group of views:
- `ENDPOINTS` here: the spec's endpoints and the reads beside them (`lending.api.views`), a loan's
  history (`lending.api.history`) and a patron's erasure (`lending.api.privacy`);
- `lending.api.circulation_docs.ENDPOINTS`: the desk's endpoints — the calendar, patron blocks and
  status, due-date changes (`lending.api.circulation`) and lost items (`lending.api.lost`);
- `lending.api.circulation_rules_docs.ENDPOINTS`: loan policies, the circulation rules and the explain
  call (`lending.api.circulation_rules`).

`document()` applies them to the view classes; `lending.api.urls` calls it once, so the view modules
hold only views and serializers. `openapi.yaml` is generated from the result (`make openapi`).
"""

from __future__ import annotations

from collections.abc import Callable

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.views import APIView

from lending import refusals
from lending.api import circulation, circulation_docs, circulation_rules_docs, history, privacy, views
from lending.api import schema as api_docs
from lending.api.history import EventSerializer
from lending.api.serializers import (
    DryRunSerializer,
    HoldQuerySerializer,
    HoldSerializer,
    LoanDetailSerializer,
    LoanQuerySerializer,
    LoanRequestSerializer,
    LoanSerializer,
)

EVENT_PAGE = api_docs.page_of(EventSerializer, "PaginatedEventList")

HISTORY_EXAMPLE = OpenApiExample(
    "A loan lent then returned",
    value={
        "count": 2,
        "next": None,
        "previous": None,
        "results": [
            {
                "sequence": 1,
                "kind": "lent",
                "occurred_at": "2024-01-15T10:30:00Z",
                "subject": "loan/1",
                "caller": "patron-app",
                "caller_key_prefix": "Xb3kPq9Z",
                "request_id": "4f0c2d1e9a8b4c7d",
                "reason": "",
                "data": {"book_id": 123, "date_due": "2024-03-15T10:30:00Z"},
            },
            {
                "sequence": 2,
                "kind": "returned",
                "occurred_at": "2024-02-01T09:00:00Z",
                "subject": "loan/1",
                "caller": "circulation-desk",
                "caller_key_prefix": "Lm2nRt7W",
                "request_id": "77aa0c4e5b6d4e1f",
                "reason": "",
                "data": {"book_id": 123},
            },
        ],
    },
    response_only=True,
)

ERASED = inline_serializer(
    "PatronErased",
    {
        "loans": serializers.IntegerField(help_text="Closed loans anonymised now."),
        "holds": serializers.IntegerField(help_text="Closed holds anonymised now."),
        "notifications": serializers.IntegerField(help_text="Delivered or dead notifications deleted."),
        "idempotency_records": serializers.IntegerField(help_text="Stored answers naming the patron, deleted."),
        "patron_ref": serializers.CharField(
            help_text="The patron's pseudonym, by which other services keep their records (the Fees service's "
            "fees): erase them there with it."
        ),
    },
)

UNRESOLVED = OpenApiResponse(
    api_docs.ErrorResponseSerializer,
    description="Conflict: `patron_has_open_loans` (nothing written); `details` lists what stops the erasure.",
    examples=[
        OpenApiExample(
            "patron_has_open_loans",
            value={
                "error": {
                    "code": "patron_has_open_loans",
                    "message": "The patron still has open loans, open holds or notifications to deliver; "
                    "erase them once these are closed or delivered.",
                    "details": {
                        "open_loans": [
                            {"id": 7, "book_id": 123, "status": "ACTIVE", "date_due": "2026-03-01T23:59:59Z"}
                        ],
                        "open_holds": [],
                        "pending_notifications": [],
                    },
                }
            },
            response_only=True,
            status_codes=["409"],
        )
    ],
)

ENDPOINTS: dict[type[APIView], dict[str, Callable]] = {
    views.LendBookApi: dict(
        post=extend_schema(
            operation_id="lendBook",
            tags=["lending"],
            summary="Lend a book",
            description="Lends the book to the patron for LOAN_PERIOD_DAYS (60) days: 201 with the loan. "
            "The User and Book services are asked first; when either is down or slow, 503 `peer_unavailable` "
            "with `Retry-After`. With `?dry_run=true`, answers 200 with whether the lend would succeed (and why "
            "not), writing nothing. The loan is due at the end of its last day in LIBRARY_TIME_ZONE, moved to the "
            "next day the library opens (`GET /calendar/`). A blocked patron (`GET /patrons/{email}/status/` says "
            f"why) is refused with 403 `{refusals.PATRON_BLOCKED.code}`; staff with the `override` scope may send "
            "`override: {reason}` to lift it, the loan limit and the overdue rule.",
            request=circulation.OverridableLoanRequestSerializer,
            parameters=[
                OpenApiParameter(
                    "dry_run", OpenApiTypes.BOOL, description="Check only: answer 200 with `would_succeed`."
                ),
                *api_docs.WRITE_PARAMETERS,
            ],
            responses={
                201: OpenApiResponse(LoanSerializer, description="The new loan."),
                200: OpenApiResponse(DryRunSerializer, description="`?dry_run=true` only: would the lend succeed?"),
                **api_docs.error_responses(
                    *api_docs.WRITE_ERRORS,
                    "user_inactive",
                    "user_not_found",
                    "book_not_found",
                    "no_copy_available",
                    "already_borrowed",
                    "copies_on_hold",
                    refusals.PATRON_BLOCKED.code,
                    refusals.PATRON_HAS_OVERDUE_LOANS.code,
                    refusals.LOAN_LIMIT.code,
                    "peer_unavailable",
                ),
            },
            examples=[api_docs.LOAN_REQUEST_EXAMPLE, api_docs.LOAN_EXAMPLE, *api_docs.DRY_RUN_EXAMPLES],
        )
    ),
    views.ReturnBookApi: dict(
        post=extend_schema(
            operation_id="returnBook",
            tags=["lending"],
            summary="Return a book",
            description="Closes the patron's open loan of the book: 200 with the loan, status `RETURNED`. "
            "Calls no peer, so it works while every peer is down. `returned_at` back-dates it (the book drop): "
            "at most RETURN_BACKDATE_MAX_DAYS (7) days ago, not before the loan date, not in the future; the loan "
            "is late or not by that date (its history's `returned` event says `returned_late`). Before the "
            "library's current day it needs the `override` scope (staff; their `override.reason` goes into the "
            "history): any other key gets 403 `insufficient_scope`.",
            request=circulation.ReturnRequestSerializer,
            parameters=api_docs.WRITE_PARAMETERS,
            responses={
                200: OpenApiResponse(LoanSerializer, description="The loan, status `RETURNED`."),
                **api_docs.error_responses(*api_docs.WRITE_ERRORS, "loan_not_found", "date_out_of_range"),
            },
            examples=[api_docs.LOAN_REQUEST_EXAMPLE, api_docs.RETURNED_EXAMPLE],
        )
    ),
    views.RenewBookApi: dict(
        post=extend_schema(
            operation_id="renewBook",
            tags=["circulation"],
            summary="Renew a loan",
            description="Extends the patron's open loan of the book by LOAN_PERIOD_DAYS from its due date, at most "
            "LOAN_MAX_RENEWALS times, and not while another patron waits for the book. Calls no peer. The new "
            f"due date ends on a day the library opens. A blocked patron: 403 `{refusals.PATRON_BLOCKED.code}`; "
            "`override: {reason}` (scope `override`) lifts the block, the renewal limit and the overdue rule, "
            "never a waiting patron.",
            request=circulation.OverridableLoanRequestSerializer,
            parameters=api_docs.WRITE_PARAMETERS,
            responses={
                200: OpenApiResponse(LoanDetailSerializer, description="The renewed loan."),
                **api_docs.error_responses(
                    *api_docs.WRITE_ERRORS,
                    "loan_not_found",
                    refusals.PATRON_BLOCKED.code,
                    refusals.RENEWAL_LIMIT.code,
                    refusals.LOAN_OVERDUE.code,
                    "book_reserved_by_others",
                ),
            },
            examples=[api_docs.LOAN_REQUEST_EXAMPLE, api_docs.RENEWED_EXAMPLE],
        )
    ),
    views.ReserveBookApi: dict(
        post=extend_schema(
            operation_id="reserveBook",
            tags=["circulation"],
            summary="Join a book's holds queue",
            description="Queues the patron for a book with no copy free for them: 201 with the hold and its "
            "queue position. When a copy comes back it is kept for the first patron (status `READY`) until its "
            "pickup deadline (the end of its last day, moved past closed days). A blocked patron: 403 "
            f"`{refusals.PATRON_BLOCKED.code}`; `override: {{reason}}` (scope `override`) lifts it.",
            request=circulation.OverridableLoanRequestSerializer,
            parameters=api_docs.WRITE_PARAMETERS,
            responses={
                201: OpenApiResponse(HoldSerializer, description="The new hold."),
                **api_docs.error_responses(
                    *api_docs.WRITE_ERRORS,
                    "user_inactive",
                    "user_not_found",
                    "book_not_found",
                    "already_borrowed",
                    "already_reserved",
                    "copy_available",
                    refusals.PATRON_BLOCKED.code,
                    "peer_unavailable",
                ),
            },
            examples=[api_docs.LOAN_REQUEST_EXAMPLE, api_docs.HOLD_EXAMPLE],
        )
    ),
    views.CancelReservationApi: dict(
        post=extend_schema(
            operation_id="cancelReservation",
            tags=["circulation"],
            summary="Cancel a hold",
            description=(
                "Cancels the patron's open hold on the book; a copy it kept goes to the next patron. Calls no peer."
            ),
            request=LoanRequestSerializer,
            parameters=api_docs.WRITE_PARAMETERS,
            responses={
                200: OpenApiResponse(HoldSerializer, description="The hold, status `CANCELLED`."),
                **api_docs.error_responses(*api_docs.WRITE_ERRORS, "hold_not_found"),
            },
            examples=[api_docs.LOAN_REQUEST_EXAMPLE, api_docs.CANCELLED_HOLD_EXAMPLE],
        )
    ),
    views.ExpiredBooksApi: dict(
        get=extend_schema(
            operation_id="getExpiredBooks",
            tags=["lending"],
            summary="Overdue loans",
            description="A bare JSON list of open loans past their due date (status `OVERDUE`), oldest due first. "
            '`limit` (default and cap API_MAX_PAGE_SIZE) and `offset` page it; a `Link` header with `rel="next"` '
            "tells that more remain.",
            parameters=[api_docs.LIMIT, api_docs.OFFSET, api_docs.LINK, *api_docs.COMMON_PARAMETERS],
            responses={
                200: OpenApiResponse(
                    api_docs.LOAN_LIST,
                    description="Overdue loans (a bare list, never an object).",
                    examples=[api_docs.OVERDUE_EXAMPLE],
                ),
                **api_docs.error_responses(*api_docs.LISTING_ERRORS),
            },
        )
    ),
    views.LoansApi: dict(
        get=extend_schema(
            operation_id="listLoans",
            tags=["circulation"],
            summary="List loans",
            description="Loans, newest first, filtered by patron, book or status; paged with `limit`/`offset`.",
            parameters=[
                LoanQuerySerializer,
                api_docs.LIMIT,
                api_docs.OFFSET,
                api_docs.LINK,
                api_docs.TOTAL_COUNT,
                *api_docs.COMMON_PARAMETERS,
            ],
            responses={
                200: OpenApiResponse(api_docs.LOAN_PAGE, description="One page of loans."),
                **api_docs.error_responses(*api_docs.LISTING_ERRORS),
            },
        )
    ),
    views.LoanDetailApi: dict(
        get=extend_schema(
            operation_id="getLoan",
            tags=["circulation"],
            summary="One loan",
            parameters=api_docs.COMMON_PARAMETERS,
            responses={
                200: OpenApiResponse(LoanDetailSerializer, description="The loan."),
                **api_docs.error_responses(*api_docs.READ_ERRORS, "insufficient_scope", "loan_not_found"),
            },
        )
    ),
    views.ReservationsApi: dict(
        get=extend_schema(
            operation_id="listReservations",
            tags=["circulation"],
            summary="List holds",
            description="Holds, filtered by patron, book or status (open ones, WAITING and READY, unless a status is "
            "given); paged with `limit`/`offset`.",
            parameters=[
                HoldQuerySerializer,
                api_docs.LIMIT,
                api_docs.OFFSET,
                api_docs.LINK,
                api_docs.TOTAL_COUNT,
                *api_docs.COMMON_PARAMETERS,
            ],
            responses={
                200: OpenApiResponse(
                    api_docs.page_of(HoldSerializer, "PaginatedHoldList"), description="One page of holds."
                ),
                **api_docs.error_responses(*api_docs.LISTING_ERRORS),
            },
        )
    ),
    views.PolicyApi: dict(
        get=extend_schema(
            operation_id="getPolicy",
            tags=["circulation"],
            summary="The loan policy in force",
            parameters=api_docs.COMMON_PARAMETERS,
            responses={
                200: OpenApiResponse(api_docs.PolicySerializer, description="The policy in force."),
                **api_docs.error_responses(*api_docs.READ_ERRORS),
            },
        )
    ),
    history.LoanHistoryApi: dict(
        get=extend_schema(
            operation_id="getLoanHistory",
            tags=["circulation"],
            summary="A loan's history",
            description="Every change of the loan, in order (`sequence` from 1): what happened, when, which caller "
            "(an API key's name and prefix, `anonymous` when keys are off, `system:scheduler` for scheduled changes) "
            "and which request. Paged with `limit`/`offset`.",
            parameters=[
                api_docs.LIMIT,
                api_docs.OFFSET,
                api_docs.LINK,
                api_docs.TOTAL_COUNT,
                *api_docs.COMMON_PARAMETERS,
            ],
            responses={
                200: OpenApiResponse(
                    EVENT_PAGE, description="One page of the loan's events.", examples=[HISTORY_EXAMPLE]
                ),
                **api_docs.error_responses(*api_docs.LISTING_ERRORS, "insufficient_scope", "loan_not_found"),
            },
        )
    ),
    privacy.PatronAnonymizeApi: dict(
        post=extend_schema(
            operation_id="anonymizePatron",
            tags=["privacy"],
            summary="Erase a patron's closed loans and holds",
            description="Replaces the patron's email on every closed loan and hold with a random token (the book, "
            "dates and status stay), and deletes the delivered notifications and stored idempotent answers naming "
            "them. Refused with 409 `patron_has_open_loans` while a loan or hold is open or a notification still waits "
            "to be delivered. Repeating it is harmless (it then finds nothing: all counts 0). Scope `privacy`.",
            request=None,
            parameters=[
                OpenApiParameter("email", OpenApiTypes.EMAIL, OpenApiParameter.PATH, description="The patron's email."),
                *api_docs.COMMON_PARAMETERS,
            ],
            responses={
                200: OpenApiResponse(ERASED, description="What was anonymised or deleted."),
                **api_docs.error_responses("invalid_request", *api_docs.AUTH_ERRORS),
                409: UNRESOLVED,
            },
        )
    ),
}


def document() -> None:
    """Decorate each view of both tables with its description (`lending.api.urls` calls it once)."""
    for table in (ENDPOINTS, circulation_docs.ENDPOINTS, circulation_rules_docs.ENDPOINTS):
        for view, methods in table.items():
            extend_schema_view(**methods)(view)
