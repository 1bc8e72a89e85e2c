"""Each endpoint's OpenAPI description (drf-spectacular), in one table beside the views: what it is
called, what it takes, what it answers and which error codes it may refuse with (their status,
message and example come from the catalogue in `lending.errors`, through `lending.api.schema`).

`document()` applies the table to the view classes; `lending.api.urls` calls it once, so the views
module holds only views. `openapi.yaml` is generated from the result (`make openapi`).
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view

from lending.api import schema as api_docs
from lending.api import views
from lending.api.serializers import (
    DryRunSerializer,
    HoldQuerySerializer,
    HoldSerializer,
    LoanDetailSerializer,
    LoanQuerySerializer,
    LoanRequestSerializer,
    LoanSerializer,
)

ENDPOINTS = {
    views.LendBookApi: dict(
        post=extend_schema(
            operation_id="lendBook",
            tags=["lending"],
            summary="Lend a book",
            description="Lends the book to the patron for LOAN_PERIOD_DAYS (60) days: 201 with the loan. "
            "The User and Book services are asked first; when either is down or slow, 503 `peer_unavailable` "
            "with `Retry-After`. With `?dry_run=true`, answers 200 with whether the lend would succeed (and why "
            "not), writing nothing.",
            request=LoanRequestSerializer,
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
                    "patron_has_overdue_loans",
                    "loan_limit_reached",
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
            "Calls no peer, so it works while every peer is down.",
            request=LoanRequestSerializer,
            parameters=api_docs.WRITE_PARAMETERS,
            responses={
                200: OpenApiResponse(LoanSerializer, description="The loan, status `RETURNED`."),
                **api_docs.error_responses(*api_docs.WRITE_ERRORS, "loan_not_found"),
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
            "LOAN_MAX_RENEWALS times, and not while another patron waits for the book. Calls no peer.",
            request=LoanRequestSerializer,
            parameters=api_docs.WRITE_PARAMETERS,
            responses={
                200: OpenApiResponse(LoanDetailSerializer, description="The renewed loan."),
                **api_docs.error_responses(
                    *api_docs.WRITE_ERRORS,
                    "loan_not_found",
                    "renewal_limit_reached",
                    "loan_overdue",
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
            "pickup deadline.",
            request=LoanRequestSerializer,
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
}


def document() -> None:
    """Decorate each view of the table with its description (`lending.api.urls` calls it once)."""
    for view, methods in ENDPOINTS.items():
        extend_schema_view(**methods)(view)
