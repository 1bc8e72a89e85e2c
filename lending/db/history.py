"""The history's statement: a change's events inserted in one INSERT, each numbered inside it after
its subject's last event (`lending.events.history.record`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from lending.db import run

INSERT_EVENTS = (
    "INSERT INTO lending_event "
    "(loan_id, hold_id, kind, occurred_at, caller, caller_key_prefix, request_id, reason, data, sequence) "
    "VALUES {rows}"
)
# One row of INSERT_EVENTS per event; its number is the subject's highest plus the events of the same
# subject before it in the statement (the subquery sees none of the statement's own rows).
EVENT_OF_A_LOAN = (
    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, "
    "(SELECT COALESCE(MAX(sequence), 0) + %s FROM lending_event WHERE loan_id = %s))"
)
EVENT_OF_A_HOLD = (
    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, "
    "(SELECT COALESCE(MAX(sequence), 0) + %s FROM lending_event WHERE hold_id = %s))"
)
RETURNING_RECORDED = " RETURNING id, loan_id, hold_id, sequence, kind, occurred_at, data"


@dataclass(frozen=True)
class NewEvent:
    """One row to insert: its subject (a loan or a hold), what happened, and its place among the
    statement's events of the same subject (1 for the first)."""

    loan_id: int | None
    hold_id: int | None
    kind: str
    occurred_at: datetime
    caller: str
    caller_key_prefix: str
    request_id: str
    reason: str
    data: Any
    nth_of_subject: int


def insert_events(events: Sequence[NewEvent], *, encoder: type[json.JSONEncoder], returning: bool) -> list[tuple]:
    """Inserts the events in one statement. With `returning`, answers each inserted row's
    (id, loan_id, hold_id, sequence, kind, occurred_at, data) as the backend gives them (SQLite: the
    date-time and the data as text); otherwise nothing."""
    if not events:
        return []
    return run.together([events_insert(events, encoder=encoder, returning=returning)], returning=returning)


def events_insert(
    events: Sequence[NewEvent], *, encoder: type[json.JSONEncoder], returning: bool
) -> tuple[str, list[Any]]:
    """`insert_events`' statement and parameters, to run alone or with others
    (`lending.events.history.record_with`)."""
    rows, params = [], []
    for event in events:
        rows.append(EVENT_OF_A_LOAN if event.loan_id else EVENT_OF_A_HOLD)
        params += [
            event.loan_id,
            event.hold_id,
            event.kind,
            run.db_datetime(event.occurred_at),
            event.caller,
            event.caller_key_prefix,
            event.request_id,
            event.reason,
            connection.ops.adapt_json_value(event.data, encoder),
            event.nth_of_subject,
            event.loan_id or event.hold_id,
        ]
    statement = INSERT_EVENTS.format(rows=", ".join(rows))
    return (statement + RETURNING_RECORDED if returning else statement), params
