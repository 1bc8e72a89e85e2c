"""Request and response shapes of the public API."""
from __future__ import annotations

from rest_framework import serializers

from lending.models import Loan

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


class LoanRequestSerializer(serializers.Serializer):
    user_email = NormalizedEmailField()
    book_id = StrictIntegerField(min_value=1, max_value=MAX_BOOK_ID)


class LoanSerializer(serializers.ModelSerializer):
    status = serializers.CharField(source="current_status")

    class Meta:
        model = Loan
        fields = ["id", "user_email", "book_id", "date_borrowed", "date_due", "date_returned", "status"]
        read_only_fields = fields


