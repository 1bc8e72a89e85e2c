"""lending/db/calendar.py: the library's closed days, as the ORM reads them."""

from __future__ import annotations

import pytest

from lending.calendar import CALENDAR_ID, LibraryCalendar
from lending.db import calendar as db_calendar

pytestmark = pytest.mark.django_db


def test_read_closed_days_answers_what_the_orm_reads():
    LibraryCalendar.objects.create(pk=CALENDAR_ID, closed_weekdays=["sunday"], closed_dates=["2026-12-25"])
    stored = LibraryCalendar.objects.get(pk=CALENDAR_ID)

    assert db_calendar.read_closed_days(CALENDAR_ID) == (stored.closed_weekdays, stored.closed_dates)
    assert db_calendar.read_closed_days(CALENDAR_ID) == (["sunday"], ["2026-12-25"])


def test_read_closed_days_of_a_calendar_never_set_is_none():
    assert db_calendar.read_closed_days(CALENDAR_ID) is None
