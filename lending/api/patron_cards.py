"""`POST /patrons/by-card/` `{patron_barcode}`: what a self-check kiosk shows a patron who scanned
their card — who they are, whether they may borrow, renew and reserve (and why not), their open
loans (each with its copy's barcode) and their open holds. One call for SIP2's Patron Status and
Patron Information (sip_gateway), so the gateway never learns a card's holder by other means.

The card travels in the body, not the path, so it is in no access log. It is resolved at the User
service on every call (`lending.clients.users.active_patron_by_card`: 404 `user_not_found` for a card
nobody holds, 403 `user_inactive`); the answer names that one patron and nobody else. It is one
patron's loans and holds: a read with `patron-read` (or `reports`), never cached.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lending import blocks, representation, selectors
from lending.api import permissions
from lending.api import schema as api_docs
from lending.api.caching import NoStore
from lending.api.circulation import StatusSerializer, status_body
from lending.api.items import BarcodeField, LoanItemSerializer
from lending.api.serializers import HoldSerializer
from lending.clients import users
from lending.models import Loan


class CardRequestSerializer(serializers.Serializer):
    patron_barcode = BarcodeField(help_text="The patron's library card, resolved at the User service (never stored).")


class PatronCardSerializer(StatusSerializer):
    name = serializers.CharField(
        allow_null=True, help_text="What the patron is called at the User service (null: none), for a kiosk's greeting."
    )
    category = serializers.CharField(allow_null=True, help_text="The patron's category at the User service.")
    loans = LoanItemSerializer(many=True, help_text="The patron's open loans, oldest due first.")
    holds = HoldSerializer(many=True, help_text="The patron's open holds (WAITING, READY), oldest first.")


PATRON_BY_CARD_SCHEMA = extend_schema(
    operation_id="getPatronByCard",
    tags=["blocks"],
    summary="A patron by their library card: standing, open loans and holds",
    description="What a self-check kiosk shows after a card scan (the SIP2 gateway's Patron Status and "
    "Patron Information): the card's holder, whether they may borrow, renew, reserve and every reason "
    "not (as `GET /patrons/{email}/status/`), their open loans with each copy's barcode, and their open "
    "holds. The card is sent in the body so that no access log holds it; 404 `user_not_found` for a card "
    "nobody holds, 403 `user_inactive`. Scope `patron-read` or `reports`.",
    request=CardRequestSerializer,
    parameters=api_docs.COMMON_PARAMETERS,
    responses={
        200: OpenApiResponse(PatronCardSerializer),
        **api_docs.error_responses(
            "invalid_request",
            "malformed_json",
            "payload_too_large",
            "unsupported_media_type",
            "user_not_found",
            "user_inactive",
            "peer_unavailable",
            *api_docs.AUTH_ERRORS,
            "insufficient_scope",
        ),
    },
)


class PatronByCardApi(NoStore, APIView):
    required_scope = permissions.PATRON_READ

    @PATRON_BY_CARD_SCHEMA
    def post(self, request: Request) -> Response:
        parsed = CardRequestSerializer(data=request.data if isinstance(request.data, dict) else {})
        parsed.is_valid(raise_exception=True)
        patron = users.active_patron_by_card(parsed.validated_data["patron_barcode"])
        return Response(patron_card_body(patron))


def patron_card_body(patron: users.Patron) -> dict:
    now = timezone.now()
    body = status_body(blocks.standing(patron.email, now, fees=blocks.fees_standing(patron.email)))
    open_loans = Loan.objects.open().filter(user_email=patron.email).order_by("date_due", "id")
    open_holds = selectors.holds(user_email=patron.email)
    return {
        **body,
        "name": patron.name,
        "category": patron.category,
        "loans": [representation.loan_item(loan) for loan in open_loans],
        "holds": [representation.hold(hold, getattr(hold, "queue_position", None)) for hold in open_holds],
    }
