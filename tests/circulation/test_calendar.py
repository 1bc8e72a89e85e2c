"""The library's calendar: closed days, the end-of-open-day rule, GET/PUT /calendar/, and its read once
per transaction, never stale after another process changed it."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
import time_machine
from django.db import connection, transaction
from psycopg.types.json import Jsonb
from rest_framework.test import APIClient

from lending import calendar
from lending.calendar import ClosedDays, LibraryCalendar
from lending.models import Loan
from tests.conftest import post_json
from tests.rules import set_policy

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


# --- Read once per transaction, never stale across processes ---------------------------------------
CHRISTMAS = date(2026, 12, 25)
BOXING_DAY = date(2026, 12, 26)


def close_elsewhere(*days: date) -> None:
    """Another process replaces the calendar: a connection of its own, sharing nothing with this
    process (no signal of ours runs), committing at once."""
    database = connection.settings_dict
    with psycopg.connect(
        dbname=database["NAME"],
        user=database["USER"],
        password=database["PASSWORD"],
        host=database["HOST"],
        port=database["PORT"],
        autocommit=True,
    ) as other:
        other.execute(
            f"INSERT INTO {LibraryCalendar._meta.db_table} (id, closed_weekdays, closed_dates, updated_at) "
            "VALUES (%s, '[]', %s, now()) ON CONFLICT (id) DO UPDATE SET closed_dates = EXCLUDED.closed_dates",
            [calendar.CALENDAR_ID, Jsonb([day.isoformat() for day in days])],
        )


def put_elsewhere(*days: date) -> None:
    """Another process's PUT /calendar/: a thread with its own connection, closed when done."""

    def put() -> None:
        try:
            body = {"closed_weekdays": [], "closed_dates": [day.isoformat() for day in days]}
            assert APIClient().put("/calendar/", body, format="json").status_code == 200
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as other:
        other.submit(put).result()  # its failure is raised here


class RolledBack(Exception):
    pass


@pytest.mark.django_db(transaction=True)
def test_a_transaction_reads_the_calendar_once_and_outside_one_every_call_reads(django_assert_num_queries):
    with django_assert_num_queries(2):
        calendar.closed_days()
        calendar.closed_days()
    with transaction.atomic(), django_assert_num_queries(1):
        calendar.closed_days()
        calendar.closed_days()


@pytestmark_db
def test_a_change_in_the_transaction_is_read_at_once():
    with transaction.atomic():
        assert not calendar.closed_days().is_closed(CHRISTMAS)
        calendar.set_calendar([], [CHRISTMAS.isoformat()])
        assert calendar.closed_days().is_closed(CHRISTMAS)
        LibraryCalendar.objects.all().delete()  # as the admin's delete action
        assert not calendar.closed_days().is_closed(CHRISTMAS)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("ends", ["commits", "rolls back"])
def test_a_change_by_another_process_rules_the_next_transaction(ends):
    with contextlib.suppress(RolledBack), transaction.atomic():
        assert not calendar.closed_days().is_closed(CHRISTMAS)
        close_elsewhere(CHRISTMAS)
        # The transaction keeps the calendar it read first: one calendar per transaction.
        assert not calendar.closed_days().is_closed(CHRISTMAS)
        if ends == "rolls back":
            raise RolledBack
    with transaction.atomic():
        assert calendar.closed_days().is_closed(CHRISTMAS)
    assert calendar.closed_days().is_closed(CHRISTMAS)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_savepoint_forgets_what_it_read():
    with transaction.atomic():
        with contextlib.suppress(RolledBack), transaction.atomic():
            assert not calendar.closed_days().is_closed(CHRISTMAS)
            raise RolledBack
        close_elsewhere(CHRISTMAS)
        assert calendar.closed_days().is_closed(CHRISTMAS)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_each_run_of_one_decorated_transaction_reads_again():
    """`@transaction.atomic` enters the same Atomic object on every call: the read must not outlive
    its transaction, committed or rolled back, for all that."""

    @transaction.atomic
    def christmas_is_closed(fail: bool = False) -> bool:
        closed = calendar.closed_days().is_closed(CHRISTMAS)
        if fail:
            raise RolledBack
        return closed

    with contextlib.suppress(RolledBack):
        christmas_is_closed(fail=True)
    close_elsewhere(CHRISTMAS)
    assert christmas_is_closed()
    close_elsewhere(BOXING_DAY)
    assert not christmas_is_closed()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_lend_after_another_process_closed_its_due_day_is_due_after_it(api, peers, patron, settings):
    set_policy(loan_days=5, renewal_days=5)
    settings.LIBRARY_TIME_ZONE = "UTC"
    first, second = (peers.book.add_book(f"Calendar book {n}", "A", 1) for n in (1, 2))
    with time_machine.travel(datetime(2026, 12, 1, 10, 0, tzinfo=UTC), tick=False):
        lent = post_json(api, "/lendBook/", {"user_email": patron, "book_id": first["id"]})
        put_elsewhere(date(2026, 12, 6))
        lent_after = post_json(api, "/lendBook/", {"user_email": patron, "book_id": second["id"]})
    assert lent.status_code == lent_after.status_code == 201
    due = {loan.book_id: loan.date_due.date() for loan in Loan.objects.filter(user_email=patron)}
    assert due == {first["id"]: date(2026, 12, 6), second["id"]: date(2026, 12, 7)}
