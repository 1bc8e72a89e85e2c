"""Circulation by copy: the desk, a kiosk or a book drop scan barcodes.

- `POST /checkouts/` `{item_barcode, patron_barcode | user_email}`: lend the copy (201, the loan with
  its `item_barcode`); every refusal of `/lendBook/`, plus `item_not_found`, `item_not_loanable`,
  `item_on_loan`, `item_on_hold_shelf`. Idempotency keys and overrides as for `/lendBook/`.
- `POST /checkins/` `{item_barcode, returned_at?}`: return the copy's open loan, if any, and route it
  (200 `{loan, route}`); `returned_at` as for `/returnBook/`.
- `GET /items/{barcode}/circulation/`: the copy's circulation status, derived from loans and holds.
Scopes: the writes need `circulation`; the status `circulation` or `patron-read` (it names no patron).
Each view's OpenAPI description is in the table of `lending.api.circulation_docs`.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lending import representation, selectors
from lending.api import circulation, permissions
from lending.api.caching import NoStore
from lending.api.serializers import LoanDetailSerializer, NormalizedEmailField
from lending.api.views import LoanWriteApi
from lending.clients import books
from lending.models import ITEM_BARCODE_MAX_LENGTH, LoanStatus
from lending.services.checkin import check_in
from lending.services.checkout import check_out
from lending.write_context import WriteContext

# Visible ASCII, as barcode symbologies encode it (Code 128, Code 39, EAN); no spaces.
BARCODE_PATTERN = f"^[!-~]{{1,{ITEM_BARCODE_MAX_LENGTH}}}$"
BARCODE_SCHEMA = {"type": "string", "minLength": 1, "maxLength": ITEM_BARCODE_MAX_LENGTH, "pattern": BARCODE_PATTERN}


@extend_schema_field(BARCODE_SCHEMA)
class BarcodeField(serializers.CharField):
    """A scanned barcode: a JSON string of visible ASCII characters, kept as sent."""

    default_error_messages = {"invalid": "A barcode (visible ASCII characters, no spaces) is required."}

    def __init__(self, **kwargs):
        super().__init__(max_length=ITEM_BARCODE_MAX_LENGTH, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str) or not data or not all("!" <= char <= "~" for char in data):
            self.fail("invalid")
        return super().to_internal_value(data)


# --- Check-out -------------------------------------------------------------------------------------
class CheckOutRequestSerializer(serializers.Serializer):
    item_barcode = BarcodeField(help_text="The copy's barcode (the Book service's `GET /items/{barcode}`).")
    patron_barcode = BarcodeField(
        required=False, help_text="The patron's library card, resolved at the User service (never stored)."
    )
    user_email = NormalizedEmailField(required=False, help_text="The patron, instead of their card.")
    override = circulation.OverrideSerializer(
        required=False, help_text=circulation.OverridableLoanRequestSerializer().fields["override"].help_text
    )

    def validate(self, attrs: dict) -> dict:
        if ("patron_barcode" in attrs) == ("user_email" in attrs):
            raise serializers.ValidationError(
                {"patron_barcode": ["Send the patron's card (`patron_barcode`) or their `user_email`: exactly one."]}
            )
        attrs.pop("override", None)  # read by `circulation.override_of`, with its scope
        return attrs


class CheckOutApi(LoanWriteApi):
    operation = "checkout"
    answer = representation.Answer(201, representation.loan_item)
    request_serializer = CheckOutRequestSerializer

    def perform_request(self, data: dict, context: WriteContext) -> Any:
        return check_out(**data, context=context)


class LoanItemSerializer(LoanDetailSerializer):
    """The loan of a copy: its detail and the copy's barcode (null for a title-level loan)."""

    class Meta(LoanDetailSerializer.Meta):
        fields = list(representation.LOAN_ITEM_FIELDS)
        read_only_fields = fields

    def to_representation(self, loan) -> dict:
        return representation.loan_item(loan)


# --- Check-in --------------------------------------------------------------------------------------
class CheckInRequestSerializer(serializers.Serializer):
    item_barcode = BarcodeField(help_text="The copy's barcode.")
    returned_at = circulation.ReturnedAtField(
        required=False, help_text=circulation.ReturnedAtSerializer().fields["returned_at"].help_text
    )

    def validate(self, attrs: dict) -> dict:
        attrs.pop("returned_at", None)  # read by `circulation.returned_at_of`, with its scope
        return attrs


class RouteSerializer(serializers.Serializer):
    to = serializers.ChoiceField(
        choices=["shelf", "hold_shelf"], help_text="`hold_shelf`: keep the copy for the hold `hold_id`."
    )
    hold_id = serializers.IntegerField(required=False, help_text="The READY hold the copy is trapped for.")


class CheckInSerializer(serializers.Serializer):
    loan = LoanItemSerializer(allow_null=True, help_text="The loan returned; null when the copy was not on loan.")
    route = RouteSerializer()


class CheckInApi(LoanWriteApi):
    operation = "checkin"
    answer = representation.Answer(200, representation.checked_in)
    request_serializer = CheckInRequestSerializer
    returned_at = None

    def post(self, request: Request) -> Response:
        self.returned_at = circulation.returned_at_of(request)
        return super().post(request)

    def perform_request(self, data: dict, context: WriteContext) -> Any:
        return check_in(**data, returned_at=self.returned_at, context=context)


# --- A copy's status -------------------------------------------------------------------------------
ITEM_STATUSES = ["available", "checked_out", "on_hold_shelf", "lost", "claimed_returned"]


class ItemCirculationSerializer(serializers.Serializer):
    item_barcode = serializers.CharField()
    book_id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=ITEM_STATUSES)
    loan_id = serializers.IntegerField(allow_null=True, help_text="The copy's open loan, if any.")
    date_due = serializers.DateTimeField(allow_null=True, help_text="That loan's due date.")
    holds_waiting = serializers.IntegerField(help_text="Patrons waiting for the book (WAITING holds).")


class ItemCirculationApi(NoStore, APIView):
    required_scope = permissions.CIRCULATION_OR_PATRON_READ

    def get(self, request: Request, barcode: str) -> Response:
        status = selectors.item_circulation(_scanned(barcode), _catalogued)
        loan = status.loan
        return Response(
            {
                "item_barcode": status.item_barcode,
                "book_id": status.book_id,
                "status": _item_status(status),
                "loan_id": loan.pk if loan else None,
                "date_due": representation.iso_datetime(loan.date_due) if loan else None,
                "holds_waiting": status.holds_waiting,
            }
        )


def _scanned(barcode: str) -> str:
    parsed = CheckInRequestSerializer(data={"item_barcode": barcode})
    parsed.is_valid(raise_exception=True)
    return parsed.validated_data["item_barcode"]


def _catalogued(barcode: str) -> tuple[str, int]:
    item = books.get_item(barcode)
    return item.barcode, item.book_id


def _item_status(status: selectors.ItemCirculation) -> str:
    if status.loan is None:
        return "on_hold_shelf" if status.trapped_for is not None else "available"
    unresolved = {LoanStatus.LOST.value: "lost", LoanStatus.CLAIMED_RETURNED.value: "claimed_returned"}
    return unresolved.get(str(status.loan.status), "checked_out")
