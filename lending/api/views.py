"""Thin views: validate the body, handle the Idempotency-Key, call a service, render the loan."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lending import idempotency, selectors, services
from lending.api.errors import error_body
from lending.api.serializers import LoanRequestSerializer, LoanSerializer
from lending.errors import LendingError
from lending.models import Loan

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


class LoanWriteApi(APIView):
    """A POST of `{user_email, book_id}` that changes one loan, safe to retry with an Idempotency-Key."""

    success_status = 200
    # The service that performs the write: `service(user_email=, book_id=, claim=) -> Loan`.
    service: Callable[..., Loan]

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
            loan = type(self).service(**data, claim=claim)
        except LendingError as exc:
            if exc.status < 500 and not exc.code.startswith("idempotency_"):
                claim.settle_refusal(exc, error_body(exc.code, exc.message, exc.details))
            else:
                claim.release()
            raise
        except BaseException:
            claim.release()
            raise
        return self._render(loan)[1]

    def _render_body(self, loan: Loan) -> tuple[int, Any]:
        return self.success_status, LoanSerializer(loan).data

    def _render(self, loan: Loan) -> tuple[int, Response]:
        status, body = self._render_body(loan)
        return status, Response(body, status=status)


def _validate_key(key: str) -> None:
    if not 1 <= len(key) <= idempotency.MAX_KEY_LENGTH or not key.isprintable():
        raise LendingError(
            f"{IDEMPOTENCY_HEADER} must be 1 to {idempotency.MAX_KEY_LENGTH} printable characters.",
            code="invalid_idempotency_key",
        )


class LendBookApi(LoanWriteApi):
    success_status = 201
    service = staticmethod(services.loan_lend)


class ReturnBookApi(LoanWriteApi):
    success_status = 200
    service = staticmethod(services.loan_return)


class ExpiredBooksApi(APIView):
    def get(self, request: Request) -> Response:
        return Response(LoanSerializer(selectors.overdue_loans(), many=True).data)
