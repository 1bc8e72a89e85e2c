"""Request and response shapes of the public API."""

from __future__ import annotations

from rest_framework import serializers

from lending import representation
from lending.models import OPEN_HOLD_STATUSES, Hold, HoldStatus, Loan, LoanStatus
from lending.moments import MomentOutOfRange, check_moment

MAX_BOOK_ID = 2**31 - 1
# RFC 5321: 64 octets for the local part, 254 for the whole address as used in a path.
MAX_EMAIL_LENGTH = 254
MAX_LOCAL_PART_LENGTH = 64


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer and nothing else: no strings, booleans or fractions."""

    default_error_messages = {"invalid": "A JSON integer is required."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class NormalizedEmailField(serializers.EmailField):
    """An RFC 5321-sized address, compared case-insensitively (stored lower-case), so one patron
    cannot hold two loans of a book under two spellings."""

    def __init__(self, **kwargs):
        super().__init__(max_length=MAX_EMAIL_LENGTH, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        email = super().to_internal_value(data).lower()
        if len(email.rpartition("@")[0]) > MAX_LOCAL_PART_LENGTH:
            raise serializers.ValidationError(f"The part before @ is limited to {MAX_LOCAL_PART_LENGTH} characters.")
        return email


class MomentField(serializers.DateTimeField):
    """A date-time sent by a client: ISO 8601, with a UTC offset that exists (`lending.moments`), so
    `9999-12-31T23:59:59-23:59` is a 400 like any malformed date-time."""

    def enforce_timezone(self, value):
        try:
            check_moment(value)
        except MomentOutOfRange as exc:
            raise serializers.ValidationError(str(exc)) from None
        return super().enforce_timezone(value)


class LoanRequestSerializer(serializers.Serializer):
    user_email = NormalizedEmailField()
    book_id = StrictIntegerField(min_value=1, max_value=MAX_BOOK_ID)


class LoanSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(source="current_status", choices=LoanStatus.choices, read_only=True)

    class Meta:
        model = Loan
        fields = list(representation.LOAN_FIELDS)
        read_only_fields = fields

    def to_representation(self, loan: Loan) -> dict:
        """`lending.representation`'s: DRF's generic walk over the declared fields costs more than the
        query on a page of loans. The output is the declared fields' own (pinned by a test)."""
        return representation.loan(loan, tuple(self.Meta.fields))


class FineSerializer(serializers.Serializer):
    amount = serializers.CharField(help_text='A decimal in `currency`, as a string ("0.75").')
    currency = serializers.CharField(help_text="FINES_CURRENCY (ISO 4217).")
    days_charged = serializers.IntegerField(help_text="The late days the fine counts.")


class LoanDetailSerializer(LoanSerializer):
    """The loan with the fields beyond the spec's: for `/loans/` and `/renewBook/`."""

    fine = FineSerializer(
        allow_null=True, read_only=True, help_text="The overdue fine assessed so far (lending.fines); null: none."
    )

    class Meta(LoanSerializer.Meta):
        fields = list(representation.LOAN_DETAIL_FIELDS)
        read_only_fields = fields


class LoanQuerySerializer(serializers.Serializer):
    user_email = NormalizedEmailField(required=False)
    book_id = serializers.IntegerField(required=False, min_value=1, max_value=MAX_BOOK_ID)
    status = serializers.ChoiceField(required=False, choices=LoanStatus.choices)


class DryRunQuerySerializer(serializers.Serializer):
    dry_run = serializers.BooleanField(required=False, default=False)


class DryRunSerializer(serializers.Serializer):
    """The answer of `POST /lendBook/?dry_run=true`."""

    dry_run = serializers.BooleanField(default=True)
    would_succeed = serializers.BooleanField()
    user_email = serializers.EmailField()
    book_id = serializers.IntegerField()
    error = serializers.DictField(allow_null=True)


class HoldSerializer(serializers.ModelSerializer):
    queue_position = serializers.SerializerMethodField()
    loan_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = Hold
        fields = list(representation.HOLD_FIELDS)
        read_only_fields = fields

    def get_queue_position(self, hold: Hold) -> int | None:
        # The `queue_position` annotation of `lending.selectors.holds` (None without it).
        return getattr(hold, "queue_position", None)

    def to_representation(self, hold: Hold) -> dict:
        return representation.hold(hold, self.get_queue_position(hold))


class HoldQuerySerializer(serializers.Serializer):
    user_email = NormalizedEmailField(required=False)
    book_id = serializers.IntegerField(required=False, min_value=1, max_value=MAX_BOOK_ID)
    # Open holds (WAITING and READY) unless one status is asked for.
    status = serializers.ChoiceField(required=False, choices=HoldStatus.choices)

    def validate(self, attrs: dict) -> dict:
        status = attrs.pop("status", None)
        attrs["statuses"] = (status,) if status else OPEN_HOLD_STATUSES
        return attrs
