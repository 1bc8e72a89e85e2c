"""lending/db/notices.py: a batch's notices inserted at most once per (loan, type, period)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lending.db import notices as db_notices
from lending.models import LoanNotice
from tests.factories import LoanFactory

pytestmark = pytest.mark.django_db

AT = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def test_insert_loan_notices_answers_only_the_keys_it_inserted():
    first, second = LoanFactory(), LoanFactory()
    LoanNotice.objects.create(loan=first, notice_type="overdue_notice", period=0)

    inserted = db_notices.insert_loan_notices(
        "overdue_notice", [(first.pk, 0), (first.pk, 1), (second.pk, 0)], created_at=AT, awaiting_digest=True
    )

    assert sorted(inserted) == [(first.pk, 1), (second.pk, 0)]
    new = LoanNotice.objects.exclude(period=0, loan=first).order_by("loan_id", "period")
    assert [(n.loan_id, n.notice_type, n.period, n.created_at, n.awaiting_digest) for n in new] == [
        (first.pk, "overdue_notice", 1, AT, True),
        (second.pk, "overdue_notice", 0, AT, True),
    ]


def test_insert_loan_notices_of_another_type_is_another_notice():
    loan = LoanFactory()
    LoanNotice.objects.create(loan=loan, notice_type="overdue_notice", period=0)

    assert db_notices.insert_loan_notices(
        "due_soon_reminder", [(loan.pk, 0)], created_at=AT, awaiting_digest=False
    ) == [(loan.pk, 0)]
    assert LoanNotice.objects.get(notice_type="due_soon_reminder").awaiting_digest is False


def test_insert_loan_notices_of_nothing_runs_nothing(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert db_notices.insert_loan_notices("overdue_notice", [], created_at=AT, awaiting_digest=False) == []
