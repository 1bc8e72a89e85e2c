"""Thin views: validate the body, handle the Idempotency-Key, call a service, render the result.

Each view names the service it calls (`perform`) and how its success is answered (`answer`, a
function of `lending.representation`); their OpenAPI description is in `lending.api.docs`.
"""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from lending import errors, idempotency, overrides, policy, representation, selectors, services
from lending.api import circulation, permissions
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
from lending.errors import LendingError
from lending.idempotency import Claim
from lending.observability import metrics
from lending.write_context import WriteContext

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_DATABASE_ID = 2**63 - 1


class LoanWriteApi(NoStore, APIView):
    """A POST of `{user_email, book_id}` that changes one loan (or hold), safe to retry with an
    Idempotency-Key. The answer is rendered once: by the claim, in the write's transaction, when a
    key is given (the stored answer is the one sent); by the view otherwise."""

    required_scope = permissions.CIRCULATION
    # The metrics' name of the write (`lending.observability.metrics.OPERATIONS`).
    operation: str
    # The success status and body.
    answer: representation.Answer
    # The request's staff override (`"override": {"reason"}`), if any.
    override: overrides.Override | None = None
    # The body's shape; its validated data are the service call's arguments (`perform_request`).
    request_serializer: type[Serializer] = LoanRequestSerializer

    def perform(self, *, user_email: str, book_id: int, context: WriteContext) -> Any:
        """The service call: each write view names its own."""
        raise NotImplementedError

    def perform_request(self, data: dict, context: WriteContext) -> Any:
        """The service call with the validated body: `perform` for a `{user_email, book_id}` write."""
        return self.perform(**data, context=context)

    def post(self, request: Request) -> Response:
        serializer = self.request_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # A staff override: checked (its reason, the `override` scope) before anything is written.
        self.override = circulation.override_of(request)
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            return self._respond(*self.answer(self._perform(serializer.validated_data, None)))
        _validate_key(key)
        fingerprinted = (request.method or "", request.path, request.data)
        outcome = idempotency.claim(
            _scoped(key, request),
            idempotency.fingerprint(*fingerprinted),
            self.answer,
            previous_release_fingerprint=idempotency.unsalted_fingerprint(*fingerprinted),
        )
        if isinstance(outcome, idempotency.Replay):
            return Response(outcome.body, status=outcome.status, headers={REPLAYED_HEADER: "true"})
        return self._perform_claimed(serializer.validated_data, outcome)

    def _perform_claimed(self, data: dict, claim: Claim) -> Response:
        try:
            self._perform(data, claim)
        except LendingError as exc:
            if exc.status < 500 and not exc.code.startswith("idempotency_"):
                claim.settle_refusal(exc, error_body(exc.code, exc.message, exc.details))
            else:
                claim.release()
            raise
        except BaseException:
            claim.release()
            raise
        assert claim.answer is not None, "every write settles its claim"
        return self._respond(*claim.answer)

    def _perform(self, data: dict, claim: Claim | None) -> Any:
        """The write, made by this request's caller (its events say so), with its override and claim."""
        context = WriteContext.of_request(self.request, override=self.override, claim=claim)
        return self.perform_request(data, context)

    def _respond(self, status: int, body: Any) -> Response:
        metrics.record_operation(self.operation)
        return Response(body, status=status)

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        metrics.record_refusal(self.operation, response)
        return response


def _scoped(key: str, request: Request) -> str:
    """Each calling service has its own key space (as with Stripe's accounts): two services that
    happen to choose the same key never replay each other's answers."""
    prefix = getattr(request.auth, "prefix", None)
    return f"{prefix}/{key}" if prefix else key


def _validate_key(key: str) -> None:
    if not 1 <= len(key) <= idempotency.MAX_KEY_LENGTH or not key.isprintable():
        raise errors.INVALID_IDEMPOTENCY_KEY.error()


class LendBookApi(LoanWriteApi):
    """`?dry_run=true` answers whether the lend would succeed, and why not, writing nothing."""

    operation = "lend"
    answer = representation.Answer(201, representation.loan)
    required_scope = permissions.LEND_OR_DRY_RUN

    def perform(self, *, user_email: str, book_id: int, context: WriteContext) -> Any:
        return services.loan_lend(user_email=user_email, book_id=book_id, context=context)

    def post(self, request: Request) -> Response:
        if "dry_run" not in request.query_params:  # the lend itself (the query's serializer: its default)
            return super().post(request)
        query = DryRunQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        if not query.validated_data["dry_run"]:
            return super().post(request)
        serializer = LoanRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        override = circulation.override_of(request)  # a malformed one is 400, not a dry-run answer
        error = None
        try:
            context = WriteContext.of_request(request, override=override)
            services.loan_lend_check(**serializer.validated_data, context=context)
        except LendingError as exc:
            if exc.status >= 500:
                raise
            error = {"code": exc.code, "message": exc.message}
        answer = {**serializer.validated_data, "dry_run": True, "would_succeed": error is None, "error": error}
        return Response(DryRunSerializer(answer).data)


class ReturnBookApi(LoanWriteApi):
    """An optional `returned_at` back-dates the return (the book drop)."""

    operation = "return"
    answer = representation.Answer(200, representation.loan)
    returned_at = None

    def post(self, request: Request) -> Response:
        self.returned_at = circulation.returned_at_of(request)
        return super().post(request)

    def perform(self, *, user_email: str, book_id: int, context: WriteContext) -> Any:
        return services.loan_return(
            user_email=user_email, book_id=book_id, context=context, returned_at=self.returned_at
        )


class RenewBookApi(LoanWriteApi):
    required_scope = permissions.CIRCULATION_OR_SELF
    operation = "renew"
    answer = representation.Answer(200, representation.loan_detail)

    def perform(self, *, user_email: str, book_id: int, context: WriteContext) -> Any:
        return services.loan_renew(user_email=user_email, book_id=book_id, context=context)


class ReserveBookApi(LoanWriteApi):
    required_scope = permissions.CIRCULATION_OR_SELF
    operation = "reserve"
    answer = representation.Answer(201, representation.placed_hold)

    def perform(self, *, user_email: str, book_id: int, context: WriteContext) -> Any:
        return services.hold_reserve(user_email=user_email, book_id=book_id, context=context)


class CancelReservationApi(LoanWriteApi):
    required_scope = permissions.CIRCULATION_OR_SELF
    operation = "cancel_reservation"
    answer = representation.Answer(200, representation.placed_hold)

    def perform(self, *, user_email: str, book_id: int, context: WriteContext) -> Any:
        return services.hold_cancel(user_email=user_email, book_id=book_id, context=context)


class ExpiredBooksApi(NoStore, APIView):
    """The spec's bare JSON list; `limit`/`offset` page it, with a `Link` header when more remain."""

    required_scope = permissions.REPORTS

    def get(self, request: Request) -> Response:
        return bare_list_page(request, selectors.overdue_loans(), LoanSerializer)


class LoansApi(NoStore, APIView):
    required_scope = permissions.PATRON_FILTERED_OR_REPORTS

    def get(self, request: Request) -> Response:
        query = LoanQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return counted_page(request, selectors.loans(**query.validated_data), LoanDetailSerializer)


class LoanDetailApi(NoStore, APIView):
    required_scope = permissions.PATRON_READ_OR_SELF

    def get(self, request: Request, loan_id: int) -> Response:
        loan = selectors.loan(loan_id) if loan_id <= MAX_DATABASE_ID else None
        if loan is None:
            raise errors.LOAN_NOT_FOUND.error(f"Loan {loan_id} does not exist.")
        return Response(LoanDetailSerializer(loan).data)


class ReservationsApi(NoStore, APIView):
    required_scope = permissions.PATRON_FILTERED_OR_REPORTS

    def get(self, request: Request) -> Response:
        query = HoldQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return counted_page(request, selectors.holds(**query.validated_data), HoldSerializer)


class PolicyApi(APIView):
    # The rules, no patron data: any valid key.
    required_scope = permissions.ANY_KEY

    def get(self, request: Request) -> Response:
        return Response(policy.fallback_summary())
