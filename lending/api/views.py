"""Thin views: validate the body, handle the Idempotency-Key, call a service, render the result."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from lending import idempotency, policy, selectors, services
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


class LoanWriteApi(APIView):
    """A POST of `{user_email, book_id}` that changes one loan (or hold), safe to retry with an
    Idempotency-Key."""

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
            return self._render(type(self).service(**serializer.validated_data, claim=None))[1]
        _validate_key(key)
        outcome = idempotency.claim(
            key, idempotency.fingerprint(request.method, request.path, request.data), self._render_body
        )
        if isinstance(outcome, idempotency.Replay):
            return Response(outcome.body, status=outcome.status, headers={REPLAYED_HEADER: "true"})
        return self._perform_claimed(serializer.validated_data, outcome)

    def _perform_claimed(self, data: dict, claim: idempotency.Claim) -> Response:
        try:
            result = type(self).service(**data, claim=claim)
        except LendingError as exc:
            if exc.status < 500 and not exc.code.startswith("idempotency_"):
                claim.settle_refusal(exc, error_body(exc.code, exc.message, exc.details))
            else:
                claim.release()
            raise
        except BaseException:
            claim.release()
            raise
        return self._render(result)[1]

    def _render_body(self, result: Any) -> tuple[int, Any]:
        return self.success_status, self.output_serializer(result).data

    def _render(self, result: Any) -> tuple[int, Response]:
        status, body = self._render_body(result)
        return status, Response(body, status=status)


def _validate_key(key: str) -> None:
    if not 1 <= len(key) <= idempotency.MAX_KEY_LENGTH or not key.isprintable():
        raise LendingError(
            f"{IDEMPOTENCY_HEADER} must be 1 to {idempotency.MAX_KEY_LENGTH} printable characters.",
            code="invalid_idempotency_key",
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


class ReturnBookApi(LoanWriteApi):
    success_status = 200
    service = staticmethod(services.loan_return)


class RenewBookApi(LoanWriteApi):
    success_status = 200
    service = staticmethod(services.loan_renew)
    output_serializer = LoanDetailSerializer


class ReserveBookApi(LoanWriteApi):
    success_status = 201
    service = staticmethod(services.hold_reserve)
    output_serializer = HoldSerializer


class CancelReservationApi(LoanWriteApi):
    success_status = 200
    service = staticmethod(services.hold_cancel)
    output_serializer = HoldSerializer


class ExpiredBooksApi(APIView):
    """The spec's bare JSON list; `limit`/`offset` page it, with a `Link` header when more remain."""

    def get(self, request: Request) -> Response:
        return bare_list_page(request, selectors.overdue_loans(), LoanSerializer)


class LoansApi(APIView):
    def get(self, request: Request) -> Response:
        query = LoanQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return counted_page(request, selectors.loans(**query.validated_data), LoanDetailSerializer)


class LoanDetailApi(APIView):
    def get(self, request: Request, loan_id: int) -> Response:
        loan = selectors.loan(loan_id) if loan_id <= MAX_DATABASE_ID else None
        if loan is None:
            raise NotFound(f"Loan {loan_id} does not exist.", code="loan_not_found")
        return Response(LoanDetailSerializer(loan).data)


class ReservationsApi(APIView):
    def get(self, request: Request) -> Response:
        query = HoldQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return counted_page(request, selectors.holds(**query.validated_data), HoldSerializer)


class PolicyApi(APIView):
    def get(self, request: Request) -> Response:
        return Response(policy.current().as_dict())


MAX_DATABASE_ID = 2**63 - 1
