"""`GET /loans/{id}/history/`: what happened to a loan, in order, and who did it."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lending import history
from lending.api import permissions
from lending.api import schema as api_docs
from lending.api.caching import NoStore
from lending.api.pagination import counted_page
from lending.errors import LOAN_NOT_FOUND
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


@extend_schema_view(
    get=extend_schema(
        operation_id="getLoanHistory",
        tags=["circulation"],
        summary="A loan's history",
        description="Every change of the loan, in order (`sequence` from 1): what happened, when, which caller "
        "(an API key's name and prefix, `anonymous` when keys are off, `system:scheduler` for scheduled changes) "
        "and which request. Paged with `limit`/`offset`.",
        parameters=[api_docs.LIMIT, api_docs.OFFSET, api_docs.LINK, api_docs.TOTAL_COUNT, *api_docs.COMMON_PARAMETERS],
        responses={
            200: OpenApiResponse(EVENT_PAGE, description="One page of the loan's events.", examples=[HISTORY_EXAMPLE]),
            **api_docs.error_responses(*api_docs.LISTING_ERRORS, "insufficient_scope", "loan_not_found"),
        },
    )
)
class LoanHistoryApi(NoStore, APIView):
    required_scope = permissions.PATRON_READ

    def get(self, request: Request, loan_id: int) -> Response:
        if loan_id > MAX_DATABASE_ID or not Loan.objects.filter(pk=loan_id).exists():
            raise LOAN_NOT_FOUND.error(f"Loan {loan_id} does not exist.")
        return counted_page(request, history.events_of_loan(loan_id), EventSerializer)
