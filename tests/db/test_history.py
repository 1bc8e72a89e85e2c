"""lending/db/history.py: a change's events in one INSERT, each numbered after its subject's last."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from lending.db import history as db_history
from lending.db import run
from lending.events.history import EventDataEncoder
from lending.models import Event
from tests.factories import HoldFactory, LoanFactory

pytestmark = pytest.mark.django_db

AT = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def new_event(*, loan_id=None, hold_id=None, kind="lent", nth=1, data=None) -> db_history.NewEvent:
    return db_history.NewEvent(
        loan_id=loan_id,
        hold_id=hold_id,
        kind=kind,
        occurred_at=AT,
        caller="desk (abc123)",
        caller_key_prefix="abc123",
        request_id="req-1",
        reason="",
        data=data or {},
        nth_of_subject=nth,
    )


def test_insert_events_numbers_each_after_its_subjects_last_event():
    loan, hold = LoanFactory(), HoldFactory()
    Event.objects.create(loan=loan, sequence=1, kind="lent", occurred_at=AT, caller="x")
    data = {"date_due": AT}

    answered = db_history.insert_events(
        [
            new_event(loan_id=loan.pk, kind="renewed", nth=1, data=data),
            new_event(hold_id=hold.pk, kind="reserved", nth=1),
            new_event(loan_id=loan.pk, kind="returned", nth=2),
        ],
        encoder=EventDataEncoder,
        returning=False,
    )

    assert answered == []
    rows = Event.objects.order_by("id").values_list("loan_id", "hold_id", "sequence", "kind", "occurred_at", "data")
    assert list(rows)[1:] == [
        (loan.pk, None, 2, "renewed", AT, {"date_due": "2026-03-04T05:06:07.890123Z"}),
        (None, hold.pk, 1, "reserved", AT, {}),
        (loan.pk, None, 3, "returned", AT, {}),
    ]
    assert Event.objects.filter(kind="renewed").values_list("caller", "caller_key_prefix", "request_id").get() == (
        "desk (abc123)",
        "abc123",
        "req-1",
    )


def test_insert_events_returning_answers_the_rows_as_inserted():
    loan = LoanFactory()

    [row] = db_history.insert_events(
        [new_event(loan_id=loan.pk, data={"n": 1})], encoder=EventDataEncoder, returning=True
    )

    event = Event.objects.get()
    event_id, loan_id, hold_id, sequence, kind, occurred_at, data = row
    assert (event_id, loan_id, hold_id, sequence, kind) == (event.pk, loan.pk, None, 1, "lent")
    # SQLite answers the stored UTC date-time without its zone, as Django's sqlite3 converter reads it.
    assert occurred_at == (AT if run.is_postgresql() else AT.replace(tzinfo=None))
    assert (json.loads(data) if isinstance(data, str) else data) == {"n": 1}


def test_insert_events_of_nothing_runs_nothing(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert db_history.insert_events([], encoder=EventDataEncoder, returning=True) == []
