"""Erasure on request: `POST /patrons/{email}/anonymize/` (scope `privacy`)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lending import privacy
from lending.api import permissions
from lending.api import schema as api_docs
from lending.api.caching import NoStore
from lending.api.serializers import NormalizedEmailField


class PatronEmailSerializer(serializers.Serializer):
    email = NormalizedEmailField()


ERASED = inline_serializer(
    "PatronErased",
    {
        "loans": serializers.IntegerField(help_text="Closed loans anonymised now."),
        "holds": serializers.IntegerField(help_text="Closed holds anonymised now."),
        "notifications": serializers.IntegerField(help_text="Delivered or dead notifications deleted."),
        "idempotency_records": serializers.IntegerField(help_text="Stored answers naming the patron, deleted."),
    },
)

UNRESOLVED = OpenApiResponse(
    api_docs.ErrorResponseSerializer,
    description="Conflict: `patron_has_open_loans` (nothing written); `details` lists what stops the erasure.",
    examples=[
        OpenApiExample(
            "patron_has_open_loans",
            value={
                "error": {
                    "code": "patron_has_open_loans",
                    "message": "The patron still has open loans, open holds or notifications to deliver; "
                    "erase them once these are closed or delivered.",
                    "details": {
                        "open_loans": [
                            {"id": 7, "book_id": 123, "status": "ACTIVE", "date_due": "2026-03-01T23:59:59Z"}
                        ],
                        "open_holds": [],
                        "pending_notifications": [],
                    },
                }
            },
            response_only=True,
            status_codes=["409"],
        )
    ],
)


class PatronAnonymizeApi(NoStore, APIView):
    """Its answers name the patron (the path, a 409's details): never stored by a cache."""

    required_scope = permissions.ERASURE

    @extend_schema(
        operation_id="anonymizePatron",
        tags=["privacy"],
        summary="Erase a patron's closed loans and holds",
        description="Replaces the patron's email on every closed loan and hold with a random token (the book, dates "
        "and status stay), and deletes the delivered notifications and stored idempotent answers naming them. "
        "Refused with 409 `patron_has_open_loans` while a loan or hold is open or a notification still waits "
        "to be delivered. Repeating it is harmless (it then finds nothing: all counts 0). Scope `privacy`.",
        request=None,
        parameters=[
            OpenApiParameter("email", OpenApiTypes.EMAIL, OpenApiParameter.PATH, description="The patron's email."),
            *api_docs.COMMON_PARAMETERS,
        ],
        responses={
            200: OpenApiResponse(ERASED, description="What was anonymised or deleted."),
            **api_docs.error_responses("invalid_request", *api_docs.AUTH_ERRORS),
            409: UNRESOLVED,
        },
    )
    def post(self, request: Request, email: str) -> Response:
        patron = PatronEmailSerializer(data={"email": email})
        patron.is_valid(raise_exception=True)
        done = privacy.erase_patron(patron.validated_data["email"], caller=caller_of(request))
        return Response(done.as_dict())


def caller_of(request: Request) -> privacy.Caller:
    """The key's name and prefix (never the key); `anonymous` when keys are off."""
    api_key = request.auth
    if api_key is None:
        return privacy.Caller("anonymous")
    return privacy.Caller(api_key.name[:64], api_key.prefix)
