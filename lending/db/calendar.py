"""The calendar's statement: the library's closed days, read on every lend and renewal
(`lending.calendar`)."""

from __future__ import annotations

import json
from typing import Any

from lending.db import run

READ_CLOSED_DAYS = "SELECT closed_weekdays, closed_dates FROM lending_librarycalendar WHERE id = %s"


def read_closed_days(calendar_id: int) -> tuple[list[str], list[str]] | None:
    """The calendar's (closed weekdays, closed dates), as stored; None when it has no row yet."""
    row = run.fetch_one(READ_CLOSED_DAYS, [calendar_id])
    if row is None:
        return None
    weekdays, dates = row
    return _json(weekdays), _json(dates)


def _json(value: Any) -> Any:
    """A JSON column read by hand: the backend answers its text (SQLite's, and PostgreSQL's as Django
    configures psycopg), or the value already decoded."""
    return json.loads(value) if isinstance(value, str) else value
