"""Thin views: validate the body, handle the Idempotency-Key, call a service, render the result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from lending import history, idempotency, metrics, policy, selectors, services
from lending.api import permissions
from lending.api import schema as api_docs
from lending.api.caching import NoStore
from lending.api.errors import error_body
from lending.api.pagination import bare_list_page, counted_page
from lending.api.serializers import (
    DryRunQuerySerializer,
    DryRunSerializer,
    HoldQuerySerializer,
    HoldSerializer,
    LoanDetailSerializer,
    LoanQuerySerializer,
    LoanRequestSerializer,
    LoanSerializer,
)
from lending.errors import LendingError, NotFound

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


class LoanWriteApi(NoStore, APIView):
    """A POST of `{user_email, book_id}` that changes one loan (or hold), safe to retry with an
    Idempotency-Key."""

    required_scope = permissions.CIRCULATION
    success_status = 200
    # The service that performs the write: `service(user_email=, book_id=, claim=) -> Loan | Hold`.
    service: Callable[..., Any]
    # How the result is rendered.
    output_serializer: type[Serializer] = LoanSerializer

    def post(self, request: Request) -> Response:
        serializer = LoanRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            return self._render(self._perform(serializer.validated_data, None))
        _validate_key(key)
        outcome = idempotency.claim(
            _scoped(key, request),
            idempotency.fingerprint(request.method, request.path, request.data),
            self._render_body,
        )
        if isinstance(outcome, idempotency.Replay):
            return Response(outcome.body, status=outcome.status, headers={REPLAYED_HEADER: "true"})
        return self._perform_claimed(serializer.validated_data, outcome)

    def _perform_claimed(self, data: dict, claim: idempotency.Claim) -> Response:
        try:
            result = self._perform(data, claim)
        except LendingError as exc:
            if exc.status < 500 and not exc.code.startswith("idempotency_"):
                claim.settle_refusal(exc, error_body(exc.code, exc.message, exc.details))
            else:
                claim.release()
            raise
        except BaseException:
            claim.release()
            raise
        return self._render(result)

    def _perform(self, data: dict, claim: idempotency.Claim | None) -> Any:
        """The write, recorded in its events as made by this request's caller."""
        with history.acting_as(history.caller_of(self.request)):
            return type(self).service(**data, claim=claim)

    def _render_body(self, result: Any) -> tuple[int, Any]:
        return self.success_status, self.output_serializer(result).data

    def _render(self, result: Any) -> Response:
        status, body = self._render_body(result)
        metrics.record_operation(type(self).service)
        return Response(body, status=status)

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        metrics.record_refusal(type(self).service, response)
        return response


def _scoped(key: str, request: Request) -> str:
    """Each calling service has its own key space (as with Stripe's accounts): two services that
    happen to choose the same key never replay each other's answers."""
    prefix = getattr(request.auth, "prefix", None)
    return f"{prefix}/{key}" if prefix else key


def _validate_key(key: str) -> None:
    if not 1 <= len(key) <= idempotency.MAX_KEY_LENGTH or not key.isprintable():
        raise LendingError(
            f"{IDEMPOTENCY_HEADER} must be 1 to {idempotency.MAX_KEY_LENGTH} printable characters.",
            code="invalid_idempotency_key",
        )


@extend_schema_view(
    post=extend_schema(
        operation_id="lendBook",
        tags=["lending"],
        summary="Lend a book",
        description="Lends the book to the patron for LOAN_PERIOD_DAYS (60) days: 201 with the loan. The User and Book "
        "services are asked first; when either is down or slow, 503 `peer_unavailable` with `Retry-After`. "
        "With `?dry_run=true`, answers 200 with whether the lend would succeed (and why not), writing nothing.",
        request=LoanRequestSerializer,
        parameters=[
            OpenApiParameter("dry_run", OpenApiTypes.BOOL, description="Check only: answer 200 with `would_succeed`."),
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
)
class LendBookApi(LoanWriteApi):
    """`?dry_run=true` answers whether the lend would succeed, and why not, writing nothing."""

    success_status = 201
    service = staticmethod(services.loan_lend)

    def post(self, request: Request) -> Response:
        query = DryRunQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        if not query.validated_data["dry_run"]:
            return super().post(request)
        serializer = LoanRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        error = None
        try:
            services.loan_lend_check(**serializer.validated_data)
        except LendingError as exc:
            if exc.status >= 500:
                raise
            error = {"code": exc.code, "message": exc.message}
        answer = {**serializer.validated_data, "dry_run": True, "would_succeed": error is None, "error": error}
        return Response(DryRunSerializer(answer).data)


@extend_schema_view(
    post=extend_schema(
        operation_id="returnBook",
        tags=["lending"],
        summary="Return a book",
        description="Closes the patron's open loan of the book: 200 with the loan, status `RETURNED`. Calls no peer, "
        "so it works while every peer is down.",
        request=LoanRequestSerializer,
        parameters=api_docs.WRITE_PARAMETERS,
        responses={
            200: OpenApiResponse(LoanSerializer, description="The loan, status `RETURNED`."),
            **api_docs.error_responses(*api_docs.WRITE_ERRORS, "loan_not_found"),
        },
        examples=[api_docs.LOAN_REQUEST_EXAMPLE, api_docs.RETURNED_EXAMPLE],
    )
)
class ReturnBookApi(LoanWriteApi):
    success_status = 200
    service = staticmethod(services.loan_return)


@extend_schema_view(
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
)
class RenewBookApi(LoanWriteApi):
    success_status = 200
    service = staticmethod(services.loan_renew)
    output_serializer = LoanDetailSerializer


@extend_schema_view(
    post=extend_schema(
        operation_id="reserveBook",
        tags=["circulation"],
        summary="Join a book's holds queue",
        description="Queues the patron for a book with no copy free for them: 201 with the hold and its queue "
        "position. When a copy comes back it is kept for the first patron (status `READY`) until its pickup deadline.",
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
)
class ReserveBookApi(LoanWriteApi):
    success_status = 201
    service = staticmethod(services.hold_reserve)
    output_serializer = HoldSerializer


@extend_schema_view(
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
)
class CancelReservationApi(LoanWriteApi):
    success_status = 200
    service = staticmethod(services.hold_cancel)
    output_serializer = HoldSerializer


@extend_schema_view(
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
)
class ExpiredBooksApi(NoStore, APIView):
    """The spec's bare JSON list; `limit`/`offset` page it, with a `Link` header when more remain."""

    required_scope = permissions.REPORTS

    def get(self, request: Request) -> Response:
        return bare_list_page(request, selectors.overdue_loans(), LoanSerializer)


@extend_schema_view(
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
)
class LoansApi(NoStore, APIView):
    required_scope = permissions.PATRON_FILTERED_OR_REPORTS

    def get(self, request: Request) -> Response:
        query = LoanQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return counted_page(request, selectors.loans(**query.validated_data), LoanDetailSerializer)


@extend_schema_view(
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
)
class LoanDetailApi(NoStore, APIView):
    required_scope = permissions.PATRON_READ

    def get(self, request: Request, loan_id: int) -> Response:
        loan = selectors.loan(loan_id) if loan_id <= MAX_DATABASE_ID else None
        if loan is None:
            raise NotFound(f"Loan {loan_id} does not exist.", code="loan_not_found")
        return Response(LoanDetailSerializer(loan).data)


@extend_schema_view(
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
)
class ReservationsApi(NoStore, APIView):
    required_scope = permissions.PATRON_FILTERED_OR_REPORTS

    def get(self, request: Request) -> Response:
        query = HoldQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return counted_page(request, selectors.holds(**query.validated_data), HoldSerializer)


@extend_schema_view(
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
)
class PolicyApi(APIView):
    # The rules, no patron data: any valid key.
    required_scope = permissions.ANY_KEY

    def get(self, request: Request) -> Response:
        return Response(policy.current().as_dict())


MAX_DATABASE_ID = 2**63 - 1
