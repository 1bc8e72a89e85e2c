"""The library's calendar: closed days, the end-of-open-day rule, and GET/PUT /calendar/."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from lending import calendar
from lending.calendar import ClosedDays, LibraryCalendar

UTC = ZoneInfo("UTC")
SUNDAY = 6


# --- The rule, without a database -----------------------------------------------------------------
def test_a_due_date_ends_at_the_end_of_its_day_in_the_library_time_zone(settings):
    settings.LIBRARY_TIME_ZONE = "America/New_York"
    # 03:00 UTC on 2 December is still 1 December in New York.
    due = calendar.end_of_open_day(datetime(2026, 12, 2, 3, 0, tzinfo=UTC), ClosedDays())
    assert due.astimezone(ZoneInfo("America/New_York")).date() == date(2026, 12, 1)
    assert due.astimezone(ZoneInfo("America/New_York")).time().hour == 23
    assert due == datetime(2026, 12, 2, 4, 59, 59, 999999, tzinfo=UTC)


def test_a_closed_weekday_moves_the_due_date_to_the_next_open_day(settings):
    settings.LIBRARY_TIME_ZONE = "UTC"
    sunday = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    assert sunday.weekday() == SUNDAY
    due = calendar.end_of_open_day(sunday, ClosedDays(weekdays=frozenset({SUNDAY})))
    assert due == datetime(2026, 12, 7, 23, 59, 59, 999999, tzinfo=UTC)


def test_closed_dates_and_weekdays_chain(settings):
    """Christmas on a Friday, closed weekends and Boxing Day Monday: due on Tuesday the 28th."""
    settings.LIBRARY_TIME_ZONE = "UTC"
    closed = ClosedDays(weekdays=frozenset({5, 6}), dates=frozenset({date(2026, 12, 25), date(2026, 12, 28)}))
    due = calendar.end_of_open_day(datetime(2026, 12, 25, 12, 0, tzinfo=UTC), closed)
    assert due.date() == date(2026, 12, 29)


def test_an_open_day_is_kept(settings):
    settings.LIBRARY_TIME_ZONE = "UTC"
    monday = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)
    assert calendar.end_of_open_day(monday, ClosedDays(weekdays=frozenset({SUNDAY}))).date() == monday.date()


def test_due_after_adds_the_period_then_applies_the_rule(settings):
    settings.LIBRARY_TIME_ZONE = "UTC"
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # a Tuesday; +5 days is a Sunday
    due = calendar.due_after(start, timedelta(days=5), ClosedDays(weekdays=frozenset({SUNDAY})))
    assert due.date() == date(2026, 12, 7)


def test_days_overdue_counts_library_days(settings):
    settings.LIBRARY_TIME_ZONE = "UTC"
    due = datetime(2026, 12, 1, 23, 59, 59, 999999, tzinfo=UTC)
    assert calendar.days_overdue(due, due) == 0
    assert calendar.days_overdue(due, due + timedelta(microseconds=1)) == 1
    assert calendar.days_overdue(due, datetime(2026, 12, 5, 8, 0, tzinfo=UTC)) == 4


@pytest.mark.parametrize(
    "weekdays, dates, field",
    [
        (["funday"], [], "closed_weekdays"),
        (list(calendar.WEEKDAYS), [], "closed_weekdays"),
        ("sunday", [], "closed_weekdays"),
        ([], ["2026-13-01"], "closed_dates"),
        ([], ["2026-1-1"], "closed_dates"),
        ([], "2026-12-25", "closed_dates"),
        ([], [20261225], "closed_dates"),
        ([], ["2026-12-25"] * (calendar.MAX_CLOSED_DATES + 1), "closed_dates"),
        (None, None, "closed_weekdays"),
    ],
)
def test_an_invalid_calendar_names_the_field(weekdays, dates, field):
    with pytest.raises(calendar.InvalidCalendar) as refused:
        calendar.validate(weekdays, dates)
    assert field in refused.value.details


def test_a_valid_calendar_is_stored_in_order():
    weekdays, dates = calendar.validate(["sunday", "monday"], ["2026-12-26", "2026-12-25"])
    assert weekdays == ["monday", "sunday"]
    assert dates == ["2026-12-25", "2026-12-26"]


@pytest.mark.parametrize(
    "weekdays, dates, field",
    [(["sunday", "sunday"], [], "closed_weekdays"), ([], ["2026-12-25", "2026-12-25"], "closed_dates")],
)
def test_a_repeated_weekday_or_date_is_refused_as_the_schema_says(weekdays, dates, field):
    with pytest.raises(calendar.InvalidCalendar) as refused:
        calendar.validate(weekdays, dates)
    assert field in refused.value.details


# --- The endpoint ---------------------------------------------------------------------------------
pytestmark_db = pytest.mark.django_db


@pytestmark_db
def test_get_calendar_without_one_set_is_open_every_day(api):
    answer = api.get("/calendar/")
    assert answer.status_code == 200
    assert answer.json() == {"closed_weekdays": [], "closed_dates": []}


@pytestmark_db
def test_put_calendar_replaces_it_and_rules_the_closed_days(api):
    answer = api.put("/calendar/", {"closed_weekdays": ["sunday"], "closed_dates": ["2026-12-25"]}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json() == {"closed_weekdays": ["sunday"], "closed_dates": ["2026-12-25"]}
    assert api.get("/calendar/").json() == answer.json()
    closed = calendar.closed_days()
    assert closed.is_closed(date(2026, 12, 25)) and closed.is_closed(date(2026, 12, 6))
    again = api.put("/calendar", {"closed_weekdays": [], "closed_dates": []}, format="json")
    assert again.status_code == 200
    assert LibraryCalendar.objects.count() == 1
    assert not calendar.closed_days().is_closed(date(2026, 12, 25))


@pytestmark_db
@pytest.mark.parametrize(
    "body",
    [
        {"closed_weekdays": list(calendar.WEEKDAYS), "closed_dates": []},
        {"closed_weekdays": ["sunday"], "closed_dates": ["not a date"]},
        {"closed_weekdays": ["sunday"]},
        [],
    ],
)
def test_put_an_invalid_calendar_is_400_and_writes_nothing(api, body):
    answer = api.put("/calendar/", body, format="json")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_request"
    assert not LibraryCalendar.objects.exists()
