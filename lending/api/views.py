"""Thin views: validate the body, handle the Idempotency-Key, call a service, render the result.

Each view names the service it calls (`perform`) and how its success is answered (`answer`, a
function of `lending.representation`); their OpenAPI description is in `lending.api.docs`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest
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
from lending.events.history import caller_of_key
from lending.idempotency import Claim
from lending.observability import metrics
from lending.write_context import WriteContext

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_DATABASE_ID = 2**63 - 1


class LoanWriteApi(NoStore, APIView):
    """A POST of `{user_email, book_id}` that changes one loan (or hold), safe to retry with an
    Idempotency-Key. The answer is rendered once: by the claim, in the write's transaction, when a
    key is given (the stored answer is the one sent); by the view otherwise.

    The requests such a write gets nearly always (a plain JSON body of the two fields, from a key this
    process verified already) take the lean path (`lending.api.lean_writes`, wired in `lending.api.urls`),
    which calls `write` without DRF's request machinery; every other request comes here through DRF,
    which ends in the same `write`."""

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
        written = self.write(
            serializer.validated_data, request=request._request, body=request.data, api_key=request.auth
        )
        return Response(written.body, status=written.status, headers=written.headers)

    def write(self, data: dict, *, request: HttpRequest, body: Any, api_key: Any) -> Written:
        """The write with its validated `data`, made by the caller `api_key` names, once per
        Idempotency-Key: the answer to send (a replayed one, with `Idempotent-Replayed`)."""
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            return self._succeeded(self.answer(self._perform(data, api_key, None)))
        _validate_key(key)
        fingerprinted = (request.method or "", request.path, body)
        outcome = idempotency.claim(
            _scoped(key, api_key),
            idempotency.fingerprint(*fingerprinted),
            self.answer,
            previous_release_fingerprint=idempotency.unsalted_fingerprint(*fingerprinted),
        )
        if isinstance(outcome, idempotency.Replay):
            return Written(outcome.status, outcome.body, {REPLAYED_HEADER: "true"})
        return self._perform_claimed(data, api_key, outcome)

    def _perform_claimed(self, data: dict, api_key: Any, claim: Claim) -> Written:
        try:
            self._perform(data, api_key, claim)
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
        return self._succeeded(claim.answer)

    def _perform(self, data: dict, api_key: Any, claim: Claim | None) -> Any:
        """The write, made by this request's caller (its events say so), with its override and claim."""
        context = WriteContext(caller=caller_of_key(api_key), override=self.override, claim=claim)
        return self.perform_request(data, context)

    def _succeeded(self, answer: tuple[int, Any]) -> Written:
        metrics.record_operation(self.operation)
        return Written(*answer)

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        metrics.record_refusal(self.operation, response)
        return response


@dataclass(frozen=True)
class Written:
    """A write's answer, for either path to render: its status, body and extra headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def _scoped(key: str, api_key: Any) -> str:
    """Each calling service has its own key space (as with Stripe's accounts): two services that
    happen to choose the same key never replay each other's answers."""
    prefix = getattr(api_key, "prefix", None)
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
