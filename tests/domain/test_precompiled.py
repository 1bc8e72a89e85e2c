"""lending/precompiled.py: an aggregate compiled once answers what the ORM answers, for every value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Count, Q
from django.utils import timezone

from lending.models import OPEN_LOAN, Loan, overdue_loan
from lending.precompiled import PrecompiledAggregate
from tests.factories import LoanFactory

pytestmark = pytest.mark.django_db


def counts(book_id: int, patron: str, now: datetime) -> dict[str, int]:
    book, mine = Q(book_id=book_id), Q(user_email=patron)
    return Loan.objects.filter(OPEN_LOAN & (book | mine)).aggregate(
        book=Count("id", filter=book),
        open=Count("id", filter=mine),
        overdue=Count("id", filter=mine & overdue_loan(now)),
    )


SENTINELS = {"book_id": 2_147_480_011, "patron": "sentinel@example.invalid", "now": datetime(1901, 2, 3, tzinfo=UTC)}


def test_the_compiled_aggregate_answers_what_the_orm_answers():
    now = timezone.now()
    LoanFactory(user_email="a@example.com", book_id=1, date_due=now - timedelta(days=1))
    LoanFactory(user_email="a@example.com", book_id=2, date_due=now + timedelta(days=1))
    LoanFactory(user_email="b@example.com", book_id=1, date_due=now + timedelta(days=1))
    compiled = PrecompiledAggregate(counts, **SENTINELS)
    for book_id, patron, at in [
        (1, "a@example.com", now),
        (2, "b@example.com", now),
        (1, "b@example.com", now - timedelta(days=3)),
        (9, "nobody@example.com", now),
    ]:
        assert compiled(book_id=book_id, patron=patron, now=at) == counts(book_id, patron, at)


def test_each_call_is_one_statement_the_first_one_too(django_assert_num_queries):
    compiled = PrecompiledAggregate(counts, **SENTINELS)
    for _ in range(2):  # the first call also compiles: its run with the sentinels is not counted
        with django_assert_num_queries(1):
            compiled(book_id=1, patron="a@example.com", now=timezone.now())


def test_a_sentinel_the_orm_transforms_is_refused():
    def lowered(book_id: int, patron: str, now: datetime) -> dict[str, int]:
        return counts(book_id, patron.lower(), now)

    with pytest.raises(AssertionError, match="patron"):
        PrecompiledAggregate(lowered, **{**SENTINELS, "patron": "Sentinel@Example.invalid"})(
            book_id=1, patron="a@example.com", now=timezone.now()
        )
