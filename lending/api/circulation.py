"""The desk's endpoints beyond the spec, and the staff fields of the spec's writes.

- `GET`/`PUT /calendar/`: the library's closed weekdays and dates (`lending.calendar`);
- `GET`/`POST /patrons/{email}/blocks/`, `DELETE /patrons/{email}/blocks/{id}/`: manual blocks;
- `GET /patrons/{email}/status/`: may the patron borrow, renew, reserve — every reason that says no,
  and the counts behind them (`lending.blocks`);
- `POST /loans/{id}/change-due-date/` (`lending.services.change_due_date`);
- a write's `"override": {"reason"}` (`lending.overrides`) and a return's `returned_at` (the book drop),
  validated here for the spec's views. Lost and claimed-returned loans: `lending.api.lost`.
Reads need `patron-read`, `reports` or `circulation`; changes need `override` (staff).
Each view's OpenAPI description is in the table of `lending.api.circulation_docs`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lending import blocks, calendar, errors, overrides, refusals, representation, services
from lending.api import permissions
from lending.api.auth import keys_required
from lending.api.caching import NoStore
from lending.api.serializers import LoanRequestSerializer, MomentField, NormalizedEmailField
from lending.blocks import Action, PatronBlock
from lending.errors import LendingError, NotFound
from lending.events import history
from lending.models import Scope
from lending.moments import check_moment
from lending.write_context import WriteContext

MAX_DATABASE_ID = 2**63 - 1
MAX_REASON_LENGTH = 1000


@extend_schema_field(
    # DRF refuses NUL characters in any string; the document says so, so a client can know.
    {"type": "string", "minLength": 1, "maxLength": MAX_REASON_LENGTH, "pattern": "^[^\\u0000]+$"}
)
class ReasonField(serializers.CharField):
    """Staff's reason: a JSON string (not a number turned into one), not blank."""

    def __init__(self, **kwargs):
        # Kept as sent (no trimming), so the schema's minLength 1 is the whole rule.
        super().__init__(min_length=1, max_length=MAX_REASON_LENGTH, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


# A due date staff may set: within ten years (and far from the calendar's last representable day).
MAX_DUE_DAYS_AHEAD = 3653


# --- The calendar ---------------------------------------------------------------------------------
@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "string", "enum": list(calendar.WEEKDAYS)},
        "maxItems": len(calendar.WEEKDAYS) - 1,
        "uniqueItems": True,
    }
)
class WeekdaysField(serializers.ListField):
    """Documented as what `calendar.validate` accepts: distinct weekdays, never all seven."""


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "string", "format": "date"},
        "maxItems": calendar.MAX_CLOSED_DATES,
        "uniqueItems": True,
    }
)
class ClosedDatesField(serializers.ListField):
    """Documented as what `calendar.validate` accepts: distinct dates."""


class CalendarSerializer(serializers.Serializer):
    closed_weekdays = WeekdaysField(help_text="Weekly closing days (lower-case English names); never all seven.")
    closed_dates = ClosedDatesField(help_text=f"Single closed dates (YYYY-MM-DD), at most {calendar.MAX_CLOSED_DATES}.")


class CalendarApi(APIView):
    required_scope = permissions.STAFF_READ_OR_OVERRIDE

    def get(self, request: Request) -> Response:
        return Response(_calendar_body(calendar.current_calendar()))

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
    reason = ReasonField(help_text="Why, in staff's words.")
    blocks = serializers.ListField(
        child=serializers.ChoiceField(choices=Action.choices),
        min_length=1,
        max_length=len(Action.choices),
        help_text="The actions blocked.",
    )
    expires_at = MomentField(
        required=False, allow_null=True, default=None, help_text="When the block ends by itself; never when absent."
    )


class BlockSerializer(serializers.ModelSerializer):
    blocks = serializers.ListField(child=serializers.ChoiceField(choices=Action.choices))
    created_by = serializers.CharField(help_text="The caller who placed it.")

    class Meta:
        model = PatronBlock
        fields = ["id", "user_email", "reason", "blocks", "created_at", "expires_at", "created_by"]
        read_only_fields = fields


class PatronBlocksApi(NoStore, APIView):
    required_scope = permissions.STAFF_READ_OR_OVERRIDE

    def get(self, request: Request, email: str) -> Response:
        found = PatronBlock.objects.of(patron_email(email)).in_force(timezone.now()).order_by("id")
        return Response(BlockSerializer(found, many=True).data)

    def post(self, request: Request, email: str) -> Response:
        user_email = patron_email(email)
        body = BlockRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        expires_at = body.validated_data["expires_at"]
        if expires_at is not None and expires_at <= timezone.now():
            raise out_of_range("expires_at", "Must be in the future.")
        block = blocks.place(
            user_email,
            reason=body.validated_data["reason"],
            actions=body.validated_data["blocks"],
            expires_at=expires_at,
            by=str(history.caller_of(request).name),
            now=timezone.now(),
        )
        return Response(BlockSerializer(block).data, status=201)


class PatronBlockApi(NoStore, APIView):
    required_scope = permissions.OVERRIDE

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
        help_text=f"{refusals.code_list(refusals.on_status_screen(blocking=True))} (these refuse with 403 "
        f"`{refusals.PATRON_BLOCKED.code}`), {refusals.code_list(refusals.on_status_screen(blocking=False))} (409, "
        "their own codes)."
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
    fines_block_limit = serializers.CharField(
        allow_null=True, help_text='FINES_BLOCK_LIMIT as a decimal string ("10.00"); null: no balance block.'
    )


class StatusSerializer(serializers.Serializer):
    user_email = serializers.EmailField()
    borrow = VerdictSerializer()
    renew = VerdictSerializer()
    reserve = VerdictSerializer()
    counts = CountsSerializer()
    limits = LimitsSerializer()
    balance = serializers.CharField(
        allow_null=True,
        help_text='What the patron owes at the Fees service ("12.50"); `unknown` when the Fees service cannot '
        "answer (the balance block then fails open: nothing is refused for it); null when FINES_BLOCK_LIMIT is "
        "not set (the Fees service is not asked).",
    )
    balance_currency = serializers.CharField(
        allow_null=True, help_text="The balance's currency (ISO 4217); null when the balance is not known."
    )


class PatronStatusApi(NoStore, APIView):
    required_scope = permissions.STAFF_READ

    def get(self, request: Request, email: str) -> Response:
        email = patron_email(email)
        # The Fees service is asked first, outside any transaction (fail open: `unknown`).
        found = blocks.standing(email, timezone.now(), fees=blocks.fees_standing(email))
        return Response(status_body(found))


def status_body(found: blocks.Standing) -> dict:
    verdicts = {
        action: {"allowed": not reasons, "reasons": [reason.as_dict() for reason in reasons]}
        for action, reasons in found.reasons.items()
    }
    balance = found.fees.balance
    return {
        "user_email": found.user_email,
        **verdicts,
        "counts": vars(found.counts).copy(),
        "limits": {**vars(found.rules), "fines_block_limit": _amount(blocks.fines_block_limit())},
        "balance": found.fees.shown_balance(),
        "balance_currency": balance.currency if balance is not None else None,
    }


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


# --- Due-date change -------------------------------------------------------------------------------
@extend_schema_field(OpenApiTypes.DATE)
class LibraryDayField(serializers.Field):
    """A day (`2026-12-24`), or a date-time whose day in LIBRARY_TIME_ZONE is meant (a client sending
    back a loan's `date_due` as it read it)."""

    default_error_messages = {"invalid": "A date (YYYY-MM-DD) or an ISO 8601 date-time is required."}

    def to_internal_value(self, data):
        if not isinstance(data, str) or len(data) > 40:
            self.fail("invalid")
        try:
            return date.fromisoformat(data) if len(data) == 10 else calendar.library_day(_aware(data))
        except (ValueError, OverflowError):  # OverflowError: a day beyond year 9999 in the library's zone
            self.fail("invalid")

    def to_representation(self, value):
        return value.isoformat()


def _aware(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(text)
    return check_moment(moment)


class DueDateChangeSerializer(serializers.Serializer):
    date_due = LibraryDayField(
        help_text="The new due day: the loan is due at its end in LIBRARY_TIME_ZONE, moved to the next open day "
        "when the library is closed then. Not before today."
    )
    reason = ReasonField(help_text="Why, in staff's words (in the history).")


def check_due_day(day: date) -> date:
    today = calendar.library_day(timezone.now())
    if day < today:
        raise out_of_range("date_due", "Must not be in the past.")
    if day > today + timedelta(days=MAX_DUE_DAYS_AHEAD):
        raise out_of_range("date_due", f"At most {MAX_DUE_DAYS_AHEAD} days ahead.")
    return day


def out_of_range(field: str, reason: str) -> LendingError:
    """422 `date_out_of_range`: a well-formed date (400 is for malformed ones) the rules refuse now."""
    return errors.DATE_OUT_OF_RANGE.error(field=field, reason=reason.lower(), details={field: [reason]})


class ChangeDueDateApi(NoStore, APIView):
    required_scope = permissions.OVERRIDE

    def post(self, request: Request, loan_id: int) -> Response:
        body = DueDateChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if loan_id > MAX_DATABASE_ID:
            raise NotFound(f"Loan {loan_id} does not exist.", code="loan_not_found")
        loan = services.change_due_date(
            loan_id,
            day=check_due_day(body.validated_data["date_due"]),
            reason=body.validated_data["reason"],
            context=WriteContext.of_request(request),
        )
        return Response(representation.loan(loan))


# --- Overrides on the spec's writes ----------------------------------------------------------------
class OverrideSerializer(serializers.Serializer):
    reason = ReasonField(help_text="Why, in staff's words (in the loan's history).")


def override_of(request: Request) -> overrides.Override | None:
    """The write's `"override": {"reason"}`, validated, from a caller allowed to override (the scope
    `override`, checked only when keys are on, as every scope); None when absent."""
    body = request.data if isinstance(request.data, dict) else {}
    if "override" not in body:
        return None
    parsed = OverrideSerializer(data=body["override"])
    if not parsed.is_valid():
        raise LendingError("The request is invalid.", code="invalid_request", details={"override": parsed.errors})
    if keys_required():
        granted = permissions.granted_scopes(request.auth)
        if Scope.OVERRIDE not in granted:
            raise permissions.insufficient_scope((Scope.OVERRIDE,), granted)
    return overrides.Override(reason=parsed.validated_data["reason"])


# --- Back-dated returns ----------------------------------------------------------------------------
# A `returned_at` the rules accept is at most RETURN_BACKDATE_MAX_DAYS old: documented as a date-time of
# years 1000-2999 with a UTC offset within ±14:00 (`lending.moments`), so a date-time the document calls
# valid is never a 400 (one out of the rules' range is 422 `date_out_of_range`).
RETURNED_AT_PATTERN = r"^[12]\d{3}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-](0\d|1[0-3]):[0-5]\d|[+-]14:00)$"


@extend_schema_field({"type": "string", "format": "date-time", "pattern": RETURNED_AT_PATTERN})
class ReturnedAtField(MomentField):
    """A return's `returned_at` (the book drop)."""


class ReturnedAtSerializer(serializers.Serializer):
    returned_at = ReturnedAtField(
        required=False,
        allow_null=True,
        default=None,
        help_text="When the book really came back (the book drop): not in the future, not before the loan date, at "
        "most RETURN_BACKDATE_MAX_DAYS days ago; before the library's current day, only with the `override` scope "
        "(staff). Overdue or not is judged at this date.",
    )


def check_returned_at(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    now = timezone.now()
    if value > now:
        raise out_of_range("returned_at", "Must not be in the future.")
    if value < now - timedelta(days=settings.RETURN_BACKDATE_MAX_DAYS):
        raise out_of_range("returned_at", f"At most {settings.RETURN_BACKDATE_MAX_DAYS} days ago.")
    return value


def returned_at_of(request: Request) -> datetime | None:
    """A return's `returned_at`, validated (400 `invalid_request` naming it), from a caller allowed
    to back-date that far; None when absent."""
    body = request.data if isinstance(request.data, dict) else {}
    if body.get("returned_at") is None:  # absent or null: a return now (its serializer says None too)
        return None
    parsed = ReturnedAtSerializer(data={"returned_at": body.get("returned_at")})
    parsed.is_valid(raise_exception=True)
    return check_backdating_caller(request, check_returned_at(parsed.validated_data["returned_at"]))


def check_backdating_caller(request: Request, returned_at: datetime | None) -> datetime | None:
    """Within the library's current day any key that returns may back-date (the book drop emptied
    this morning). Before it, the return moves lateness — money, once fines exist — so only staff
    (the `override` scope, which may also give their reason as an `override`) may; checked when keys
    are on, as every scope, before anything is written."""
    if returned_at is None or not keys_required():
        return returned_at
    if calendar.library_day(returned_at) >= calendar.library_day(timezone.now()):
        return returned_at
    granted = permissions.granted_scopes(request.auth)
    if Scope.OVERRIDE not in granted:
        refusal = permissions.insufficient_scope((Scope.OVERRIDE,), granted)
        refusal.message = "Back-dating a return before today needs an API key with the `override` scope (staff)."
        raise refusal
    return returned_at


# --- The spec's writes, as documented: their optional staff fields ----------------------------------
class OverridableLoanRequestSerializer(LoanRequestSerializer):
    override = OverrideSerializer(
        required=False,
        help_text=f"Staff only (scope `override`): lifts {refusals.code_list(refusals.lifted_by_override(), 'and')}, "
        f"never {refusals.code_list([refusals.NO_COPY_AVAILABLE, refusals.ALREADY_BORROWED], 'or')}; the reason and "
        "caller go into the loan's history.",
    )


class ReturnRequestSerializer(LoanRequestSerializer):
    returned_at = ReturnedAtField(required=False, help_text=ReturnedAtSerializer().fields["returned_at"].help_text)
