"""The hand-built loan rendering equals what DRF's declared fields would render."""

from datetime import UTC, datetime, timedelta

import pytest
from rest_framework import serializers

from lending.api.serializers import LoanDetailSerializer, LoanSerializer
from lending.models import Loan, LoanStatus

pytestmark = pytest.mark.django_db


def loans() -> list[Loan]:
    borrowed = datetime(2024, 1, 15, 10, 0, tzinfo=UTC)
    with_micro = datetime(2026, 11, 27, 21, 47, 53, 433681, tzinfo=UTC)
    return Loan.objects.bulk_create(
        [
            Loan(
                user_email="a@example.com",
                book_id=1,
                book_title="T",
                date_borrowed=borrowed,
                date_due=borrowed + timedelta(days=60),
            ),
            Loan(
                user_email="b@example.com",
                book_id=2,
                book_title="Ü",
                date_borrowed=with_micro,
                date_due=with_micro + timedelta(days=60),
                renewals=2,
            ),
            Loan(
                user_email="c@example.com",
                book_id=3,
                date_borrowed=borrowed,
                date_due=borrowed + timedelta(days=1),
                date_returned=borrowed + timedelta(hours=5),
                status=LoanStatus.RETURNED,
            ),
        ]
    )


@pytest.mark.parametrize("serializer_class", [LoanSerializer, LoanDetailSerializer])
def test_fast_rendering_equals_the_declared_fields(serializer_class):
    for loan in loans():
        generic = serializers.ModelSerializer.to_representation(serializer_class(), loan)
        assert serializer_class(loan).data == generic


def test_spec_example_format():
    loan = loans()[0]
    assert LoanSerializer(loan).data["date_due"] == "2024-03-15T10:00:00Z"
    assert LoanSerializer(loan).data["status"] == "OVERDUE"
