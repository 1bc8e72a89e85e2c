"""`GET /loans/{id}/fine/?returned_at=…`: what returning the loan at that moment (default now) would cost,
changing nothing: the desk's quote before the patron pays (`lending.fines.quote`). Scope `patron-read`
(or `reports`), or the loan's own patron's key (`patron-self`). Its OpenAPI description is in
`lending.api.circulation_rules_docs`."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lending import errors, fines, representation, selectors
from lending.api import permissions
from lending.api.caching import NoStore
from lending.api.circulation import ReturnedAtField

# A quote may look ahead ("if it comes back on Friday"), within reason.
MAX_QUOTE_DAYS_AHEAD = 3653


class QuoteQuerySerializer(serializers.Serializer):
    # Documented with the moments the service reads (as the book drop's): a valid one is never a 400.
    returned_at = ReturnedAtField(required=False, help_text="The moment of the return to price (default: now).")


class QuoteSerializer(serializers.Serializer):
    loan_id = serializers.IntegerField()
    returned_at = serializers.DateTimeField()
    amount = serializers.CharField(help_text='The overdue fine, a decimal string ("1.50"); "0.00" when none.')
    currency = serializers.CharField()
    days_charged = serializers.IntegerField()


class LoanFineQuoteApi(NoStore, APIView):
    required_scope = permissions.PATRON_READ_OR_SELF

    def get(self, request: Request, loan_id: int) -> Response:
        query = QuoteQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        loan = selectors.loan(loan_id) if loan_id <= permissions.MAX_LOAN_ID else None
        if loan is None:
            raise errors.LOAN_NOT_FOUND.error(f"Loan {loan_id} does not exist.")
        if loan.date_returned is not None:
            raise errors.LOAN_NOT_OPEN.error(loan_id=loan_id)
        returned_at = query.validated_data.get("returned_at") or timezone.now()
        if returned_at < loan.date_borrowed:  # well-formed, refused by the rules: 422, as a moment too far ahead
            raise errors.DATE_OUT_OF_RANGE.error(
                field="returned_at",
                reason="not before the loan date.",
                details={"returned_at": ["Must not be before the loan date."]},
            )
        if returned_at > timezone.now() + timedelta(days=MAX_QUOTE_DAYS_AHEAD):
            raise errors.DATE_OUT_OF_RANGE.error(
                field="returned_at",
                reason=f"at most {MAX_QUOTE_DAYS_AHEAD} days ahead.",
                details={"returned_at": [f"At most {MAX_QUOTE_DAYS_AHEAD} days ahead."]},
            )
        fine = fines.quote(loan, returned_at)
        return Response({"loan_id": loan.pk, "returned_at": representation.iso_datetime(returned_at), **fine.as_dict()})
