"""`GET /loans/{id}/history/`: what happened to a loan, in order, and who did it (its OpenAPI
description: `lending.api.docs`)."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lending.api import permissions
from lending.api.caching import NoStore
from lending.api.pagination import counted_page
from lending.errors import LOAN_NOT_FOUND
from lending.events import history
from lending.models import Event, Loan

MAX_DATABASE_ID = 2**63 - 1


class EventSerializer(serializers.ModelSerializer):
    subject = serializers.CharField(help_text="`loan/<id>` or `hold/<id>`.")
    caller = serializers.CharField(
        help_text="The API key's name; `anonymous` when keys are off; `system:<job>` for scheduled changes."
    )
    caller_key_prefix = serializers.CharField(help_text="The API key's prefix (never the key); empty without a key.")
    request_id = serializers.CharField(help_text="The `X-Request-ID` of the request that made the change.")
    # A field named `data`: DRF's metaclass moves it out of the class, so Serializer.data is not shadowed.
    data = serializers.DictField(  # type: ignore[assignment]
        help_text="What changed (a new due date, the loan a hold became, ...)."
    )

    class Meta:
        model = Event
        fields = ["sequence", "kind", "occurred_at", "subject", "caller", "caller_key_prefix", "request_id", "reason"]
        fields += ["data"]
        read_only_fields = fields


class LoanHistoryApi(NoStore, APIView):
    required_scope = permissions.PATRON_READ_OR_SELF

    def get(self, request: Request, loan_id: int) -> Response:
        if loan_id > MAX_DATABASE_ID or not Loan.objects.filter(pk=loan_id).exists():
            raise LOAN_NOT_FOUND.error(f"Loan {loan_id} does not exist.")
        return counted_page(request, history.events_of_loan(loan_id), EventSerializer)
