"""Lost and claimed-returned loans at the desk (`lending.services.lost`), staff only (scope `override`):

- `POST /loans/{id}/declare-lost/` `{note?}`: the loan becomes LOST;
- `POST /loans/{id}/claim-returned/` `{note?}`: the patron says it came back: CLAIMED_RETURNED;
- `POST /loans/{id}/resolve/` `{outcome: found | returned | lost, note?}`: the copy is back (the loan
  is returned), or a claimed-returned loan is lost after all.
Each answers 200 with the loan; the change, its note and caller are in the loan's history.
"""

from __future__ import annotations

from collections.abc import Callable

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lending import history, representation
from lending.api import permissions
from lending.api import schema as api_docs
from lending.api.caching import NoStore
from lending.api.circulation import MAX_DATABASE_ID, ReasonField
from lending.api.serializers import LoanSerializer
from lending.errors import NotFound
from lending.models import Loan
from lending.services import lost

ERRORS = (
    "invalid_request",
    "malformed_json",
    "payload_too_large",
    "unsupported_media_type",
    *api_docs.AUTH_ERRORS,
    "insufficient_scope",
    "loan_not_found",
    "loan_not_open",
    "loan_status_conflict",
)
LOAN_ID = OpenApiParameter("loan_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The loan's id.")


class NoteSerializer(serializers.Serializer):
    note = ReasonField(required=False, help_text="What staff want to remember (in the loan's history).")


class ResolutionSerializer(NoteSerializer):
    outcome = serializers.ChoiceField(
        choices=lost.Outcome.ALL,
        help_text="`found` (staff found the copy) or `returned` (the patron's claim holds, or they brought it back): "
        "the loan is returned and the copy is on the shelf again; `lost`: a claimed-returned loan is lost after all.",
    )


def _lost_loan_example(status: str, date_returned: str | None = None) -> OpenApiExample:
    return OpenApiExample(
        f"The loan, {status}",
        value={
            "id": 7,
            "user_email": "alice@example.com",
            "book_id": 123,
            "date_borrowed": "2026-11-01T10:30:00Z",
            "date_due": "2026-11-15T23:59:59.999999Z",
            "date_returned": date_returned,
            "status": status,
        },
        response_only=True,
    )


def _documented(operation_id: str, summary: str, description: str, body: type, examples: list) -> Callable:
    return extend_schema(
        operation_id=operation_id,
        tags=["circulation"],
        summary=summary,
        description=f"{description} Scope `override`.",
        request=body,
        parameters=[LOAN_ID, *api_docs.COMMON_PARAMETERS],
        responses={
            200: OpenApiResponse(LoanSerializer, description="The loan, changed."),
            **api_docs.error_responses(*ERRORS),
        },
        examples=examples,
    )


class _LostItemApi(NoStore, APIView):
    required_scope = permissions.OVERRIDE
    body: type[serializers.Serializer] = NoteSerializer

    def post(self, request: Request, loan_id: int) -> Response:
        parsed = self.body(data=request.data)
        parsed.is_valid(raise_exception=True)
        if loan_id > MAX_DATABASE_ID:
            raise NotFound(f"Loan {loan_id} does not exist.", code="loan_not_found")
        with history.acting_as(history.caller_of(request)):
            loan = self.change(loan_id, **parsed.validated_data)
        return Response(representation.loan(loan))

    def change(self, loan_id: int, **fields: str) -> Loan:
        raise NotImplementedError


class DeclareLostApi(_LostItemApi):
    @_documented(
        "declareLost",
        "Declare a loan lost",
        "The loan becomes LOST: its copy stays out (not available to anyone), the loan is no longer overdue nor "
        "renewable, and the patron is blocked while it is unresolved (`lost_items`). The patron is notified "
        "(`loan_declared_lost`). 409 `loan_status_conflict` when it is LOST already, `loan_not_open` once returned.",
        NoteSerializer,
        [
            OpenApiExample("With a note", value={"note": "Patron left it on a train."}, request_only=True),
            _lost_loan_example("LOST"),
        ],
    )
    def post(self, request: Request, loan_id: int) -> Response:
        return super().post(request, loan_id)

    def change(self, loan_id: int, **fields: str) -> Loan:
        return lost.declare_lost(loan_id, **fields)


class ClaimReturnedApi(_LostItemApi):
    @_documented(
        "claimReturned",
        "Record a patron's claim that a loan was returned",
        "The loan becomes CLAIMED_RETURNED until staff resolve it: no overdue notices or overdue blocks meanwhile; "
        "the copy stays out until it is found. The patron is notified (`loan_claimed_returned`). 409 "
        "`loan_status_conflict` for a loan already lost or claimed returned.",
        NoteSerializer,
        [
            OpenApiExample("With a note", value={"note": "Patron says it went in the book drop."}, request_only=True),
            _lost_loan_example("CLAIMED_RETURNED"),
        ],
    )
    def post(self, request: Request, loan_id: int) -> Response:
        return super().post(request, loan_id)

    def change(self, loan_id: int, **fields: str) -> Loan:
        return lost.claim_returned(loan_id, **fields)


class ResolveApi(_LostItemApi):
    body = ResolutionSerializer

    @_documented(
        "resolveLostLoan",
        "Resolve a lost or claimed-returned loan",
        "`found` or `returned`: the loan is returned now, its copy goes to the first patron waiting or back on the "
        "shelf (availability published), and the patron is notified (`loan_resolved`). `lost`: a claimed-returned "
        "loan becomes LOST. A `POST /returnBook/` of a lost or claimed-returned loan resolves it as `found`. 409 "
        "`loan_status_conflict` for a loan that is neither lost nor claimed returned (or `lost` for a LOST one).",
        ResolutionSerializer,
        [
            OpenApiExample(
                "Found on the shelf", value={"outcome": "found", "note": "Misshelved in 823."}, request_only=True
            ),
            _lost_loan_example("RETURNED", date_returned="2026-12-01T09:12:00Z"),
        ],
    )
    def post(self, request: Request, loan_id: int) -> Response:
        return super().post(request, loan_id)

    def change(self, loan_id: int, **fields: str) -> Loan:
        return lost.resolve(loan_id, **fields)
