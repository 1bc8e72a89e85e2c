"""The desk's endpoints beyond the spec: the library's calendar, patron blocks and a patron's status.

- `GET`/`PUT /calendar/`: the library's closed weekdays and dates (`lending.calendar`);
- `GET`/`POST /patrons/{email}/blocks/`, `DELETE /patrons/{email}/blocks/{id}/`: manual blocks;
- `GET /patrons/{email}/status/`: may the patron borrow, renew, reserve — every reason that says no,
  and the counts behind them (`lending.blocks`).
Reads need `patron-read`, `reports` or `circulation`; changes need `override` (staff).
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lending import blocks, calendar, history
from lending.api import permissions
from lending.api import schema as api_docs
from lending.api.caching import NoStore
from lending.api.serializers import NormalizedEmailField
from lending.blocks import Action, PatronBlock
from lending.errors import LendingError, NotFound

MAX_DATABASE_ID = 2**63 - 1
MAX_REASON_LENGTH = 1000
EMAIL_PARAMETER = OpenApiParameter("email", OpenApiTypes.EMAIL, OpenApiParameter.PATH, description="The patron.")


# --- The calendar ---------------------------------------------------------------------------------
class CalendarSerializer(serializers.Serializer):
    closed_weekdays = serializers.ListField(
        child=serializers.ChoiceField(choices=calendar.WEEKDAYS),
        help_text="Weekly closing days (lower-case English names); never all seven.",
    )
    closed_dates = serializers.ListField(
        child=serializers.DateField(),
        help_text=f"Single closed dates (YYYY-MM-DD), at most {calendar.MAX_CLOSED_DATES}.",
    )


CALENDAR_EXAMPLE = OpenApiExample(
    "Closed on Sundays and Christmas Day", value={"closed_weekdays": ["sunday"], "closed_dates": ["2026-12-25"]}
)


class CalendarApi(APIView):
    required_scope = permissions.STAFF_READ_OR_OVERRIDE

    @extend_schema(
        operation_id="getCalendar",
        tags=["calendar"],
        summary="The library's closed days",
        description="Weekly closing days and single closed dates. A due date (and a hold's pickup deadline) never "
        "falls on one: it ends at the end of the next open day in `LIBRARY_TIME_ZONE`. "
        "Scope `patron-read`, `reports` or `circulation`.",
        parameters=api_docs.COMMON_PARAMETERS,
        responses={
            200: OpenApiResponse(CalendarSerializer, examples=[CALENDAR_EXAMPLE]),
            **api_docs.error_responses(*api_docs.READ_ERRORS, "insufficient_scope"),
        },
    )
    def get(self, request: Request) -> Response:
        return Response(_calendar_body(calendar.current_calendar()))

    @extend_schema(
        operation_id="setCalendar",
        tags=["calendar"],
        summary="Set the library's closed days",
        description="Replaces the calendar. Due dates set from now on follow it; existing due dates do not move. "
        "Refused with 400 `invalid_request` (nothing written) for an unknown weekday, every weekday closed, or a "
        "malformed date. Scope `override`.",
        request=CalendarSerializer,
        parameters=api_docs.COMMON_PARAMETERS,
        responses={
            200: OpenApiResponse(CalendarSerializer, description="The calendar now in force."),
            **api_docs.error_responses(
                "invalid_request",
                "malformed_json",
                "payload_too_large",
                "unsupported_media_type",
                *api_docs.AUTH_ERRORS,
                "insufficient_scope",
            ),
        },
        examples=[CALENDAR_EXAMPLE],
    )
    def put(self, request: Request) -> Response:
        body = request.data if isinstance(request.data, dict) else {}
        try:
            saved = calendar.set_calendar(body.get("closed_weekdays"), body.get("closed_dates"))
        except calendar.InvalidCalendar as exc:
            raise LendingError("The calendar is invalid.", code="invalid_request", details=exc.details) from None
        return Response(_calendar_body(saved))


def _calendar_body(saved: calendar.LibraryCalendar) -> dict:
    return {"closed_weekdays": list(saved.closed_weekdays), "closed_dates": list(saved.closed_dates)}


# --- Blocks ---------------------------------------------------------------------------------------
class PatronEmailSerializer(serializers.Serializer):
    email = NormalizedEmailField()


def patron_email(email: str) -> str:
    patron = PatronEmailSerializer(data={"email": email})
    patron.is_valid(raise_exception=True)
    return patron.validated_data["email"]


class BlockRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=MAX_REASON_LENGTH, help_text="Why, in staff's words.")
    blocks = serializers.ListField(
        child=serializers.ChoiceField(choices=Action.choices),
        min_length=1,
        max_length=len(Action.choices),
        help_text="The actions blocked.",
    )
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, default=None, help_text="When the block ends by itself; never when absent."
    )

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must be in the future.")
        return value


class BlockSerializer(serializers.ModelSerializer):
    blocks = serializers.ListField(child=serializers.ChoiceField(choices=Action.choices))
    created_by = serializers.CharField(help_text="The caller who placed it.")

    class Meta:
        model = PatronBlock
        fields = ["id", "user_email", "reason", "blocks", "created_at", "expires_at", "created_by"]
        read_only_fields = fields


BLOCK_REQUEST_EXAMPLE = OpenApiExample(
    "Block borrowing for a week",
    value={
        "reason": "Damaged two books; see the desk.",
        "blocks": ["borrow", "reserve"],
        "expires_at": "2026-12-08T17:00:00Z",
    },
    request_only=True,
)
BLOCK_EXAMPLE = OpenApiExample(
    "A block",
    value={
        "id": 4,
        "user_email": "alice@example.com",
        "reason": "Damaged two books; see the desk.",
        "blocks": ["borrow", "reserve"],
        "created_at": "2026-12-01T09:00:00Z",
        "expires_at": "2026-12-08T17:00:00Z",
        "created_by": "circulation-desk",
    },
    response_only=True,
)


class PatronBlocksApi(NoStore, APIView):
    required_scope = permissions.STAFF_READ_OR_OVERRIDE

    @extend_schema(
        operation_id="listPatronBlocks",
        tags=["blocks"],
        summary="A patron's blocks in force",
        description="The manual blocks not expired, oldest first. Automated blocks are computed, not stored: see "
        "`GET /patrons/{email}/status/`. Scope `patron-read`, `reports` or `circulation`.",
        parameters=[EMAIL_PARAMETER, *api_docs.COMMON_PARAMETERS],
        responses={
            200: OpenApiResponse(BlockSerializer(many=True), examples=[BLOCK_EXAMPLE]),
            **api_docs.error_responses("invalid_request", *api_docs.AUTH_ERRORS, "insufficient_scope"),
        },
    )
    def get(self, request: Request, email: str) -> Response:
        found = PatronBlock.objects.of(patron_email(email)).in_force(timezone.now()).order_by("id")
        return Response(BlockSerializer(found, many=True).data)

    @extend_schema(
        operation_id="placePatronBlock",
        tags=["blocks"],
        summary="Block a patron",
        description="Forbids the patron the listed actions until `expires_at` (or until removed): a lend, renewal "
        "or reservation is refused with 403 `patron_blocked`, checked inside the write's transaction. "
        "Scope `override`.",
        request=BlockRequestSerializer,
        parameters=[EMAIL_PARAMETER, *api_docs.COMMON_PARAMETERS],
        responses={
            201: OpenApiResponse(BlockSerializer, description="The block."),
            **api_docs.error_responses(
                "invalid_request",
                "malformed_json",
                "payload_too_large",
                "unsupported_media_type",
                *api_docs.AUTH_ERRORS,
                "insufficient_scope",
            ),
        },
        examples=[BLOCK_REQUEST_EXAMPLE, BLOCK_EXAMPLE],
    )
    def post(self, request: Request, email: str) -> Response:
        user_email = patron_email(email)
        body = BlockRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        block = blocks.place(
            user_email,
            reason=body.validated_data["reason"],
            actions=body.validated_data["blocks"],
            expires_at=body.validated_data["expires_at"],
            by=str(history.caller_of(request).name),
            now=timezone.now(),
        )
        return Response(BlockSerializer(block).data, status=201)


class PatronBlockApi(NoStore, APIView):
    required_scope = permissions.OVERRIDE

    @extend_schema(
        operation_id="removePatronBlock",
        tags=["blocks"],
        summary="Remove a block",
        description="Deletes the block (expired or not): 204. 404 `block_not_found` when the patron has no such "
        "block. Scope `override`.",
        parameters=[
            EMAIL_PARAMETER,
            OpenApiParameter("block_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The block's id."),
            *api_docs.COMMON_PARAMETERS,
        ],
        responses={
            204: OpenApiResponse(description="Removed."),
            **api_docs.error_responses(
                "invalid_request", *api_docs.AUTH_ERRORS, "insufficient_scope", "block_not_found"
            ),
        },
    )
    def delete(self, request: Request, email: str, block_id: int) -> Response:
        user_email = patron_email(email)
        deleted = 0
        if block_id <= MAX_DATABASE_ID:
            deleted, _ = PatronBlock.objects.of(user_email).filter(pk=block_id).delete()
        if not deleted:
            raise NotFound(f"{user_email} has no block {block_id}.", code="block_not_found")
        return Response(status=204)


# --- Status ---------------------------------------------------------------------------------------
class ReasonSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="`manual_block`, `too_many_overdue_loans`, `loan_overdue_too_long`, `lost_items` (these refuse "
        "with 403 `patron_blocked`), `patron_has_overdue_loans`, `loan_limit_reached` (409, their own codes)."
    )
    message = serializers.CharField()
    actions = serializers.ListField(child=serializers.ChoiceField(choices=Action.choices))
    block_id = serializers.IntegerField(required=False, help_text="A manual block's id.")
    reason = serializers.CharField(required=False, help_text="A manual block's reason.")
    expires_at = serializers.DateTimeField(required=False, help_text="A manual block's expiry.")


class VerdictSerializer(serializers.Serializer):
    allowed = serializers.BooleanField()
    reasons = ReasonSerializer(many=True)


class CountsSerializer(serializers.Serializer):
    open_loans = serializers.IntegerField()
    overdue_loans = serializers.IntegerField()
    most_days_overdue = serializers.IntegerField(help_text="Days the patron's oldest overdue loan is overdue.")
    lost_loans = serializers.IntegerField(help_text="Lost items not resolved.")
    blocks_in_force = serializers.IntegerField(help_text="Manual blocks not expired.")


class LimitsSerializer(serializers.Serializer):
    max_overdue_loans = serializers.IntegerField(help_text="BLOCK_MAX_OVERDUE_LOANS")
    max_overdue_days = serializers.IntegerField(help_text="BLOCK_MAX_OVERDUE_DAYS")
    max_open_loans = serializers.IntegerField(help_text="LOAN_MAX_ACTIVE_PER_PATRON")
    block_on_overdue = serializers.BooleanField(help_text="LOAN_BLOCK_ON_OVERDUE")


class StatusSerializer(serializers.Serializer):
    user_email = serializers.EmailField()
    borrow = VerdictSerializer()
    renew = VerdictSerializer()
    reserve = VerdictSerializer()
    counts = CountsSerializer()
    limits = LimitsSerializer()


STATUS_EXAMPLE = OpenApiExample(
    "Blocked from borrowing by staff and by an overdue loan",
    value={
        "user_email": "alice@example.com",
        "borrow": {
            "allowed": False,
            "reasons": [
                {
                    "code": "manual_block",
                    "message": "Blocked by staff: Damaged two books; see the desk.",
                    "actions": ["borrow"],
                    "block_id": 4,
                    "reason": "Damaged two books; see the desk.",
                },
                {
                    "code": "patron_has_overdue_loans",
                    "message": "1 overdue loan(s); return them before borrowing.",
                    "actions": ["borrow"],
                },
            ],
        },
        "renew": {"allowed": True, "reasons": []},
        "reserve": {"allowed": True, "reasons": []},
        "counts": {"open_loans": 2, "overdue_loans": 1, "most_days_overdue": 3, "lost_loans": 0, "blocks_in_force": 1},
        "limits": {"max_overdue_loans": 3, "max_overdue_days": 30, "max_open_loans": 10, "block_on_overdue": True},
    },
    response_only=True,
)


class PatronStatusApi(NoStore, APIView):
    required_scope = permissions.STAFF_READ

    @extend_schema(
        operation_id="getPatronStatus",
        tags=["blocks"],
        summary="May the patron borrow, renew, reserve?",
        description="Each action with every reason that refuses it (manual blocks, then the automated rules: "
        "BLOCK_MAX_OVERDUE_LOANS, BLOCK_MAX_OVERDUE_DAYS, unresolved lost items, LOAN_BLOCK_ON_OVERDUE and the "
        "loan limit), and the counts behind them, computed now from the patron's loans. What a kiosk or a staff "
        "screen asks before acting; the writes apply the same rules inside their transaction. "
        "Scope `patron-read`, `reports` or `circulation`.",
        parameters=[EMAIL_PARAMETER, *api_docs.COMMON_PARAMETERS],
        responses={
            200: OpenApiResponse(StatusSerializer, examples=[STATUS_EXAMPLE]),
            **api_docs.error_responses("invalid_request", *api_docs.AUTH_ERRORS, "insufficient_scope"),
        },
    )
    def get(self, request: Request, email: str) -> Response:
        found = blocks.standing(patron_email(email), timezone.now())
        return Response(status_body(found))


def status_body(found: blocks.Standing) -> dict:
    verdicts = {
        action: {"allowed": not reasons, "reasons": [reason.as_dict() for reason in reasons]}
        for action, reasons in found.reasons.items()
    }
    return {
        "user_email": found.user_email,
        **verdicts,
        "counts": vars(found.counts).copy(),
        "limits": vars(found.rules).copy(),
    }
