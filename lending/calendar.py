"""The library's calendar, and the one rule for when a day ends.

A due date (and a hold's pickup deadline) is never a moment inside a day: it is the end of a day in
the library's time zone (`LIBRARY_TIME_ZONE`), and never a day the library is closed — a weekly
closing day (`closed_weekdays`) or a single date (`closed_dates`); it moves to the end of the next open
day. `end_of_open_day` is that rule's one home: every due date and deadline is set through it, so the
comparisons with "now" elsewhere (`date_due < now`: overdue, renewals, reminders, pickup expiry) all
follow it without knowing the calendar.

Changing the calendar moves no existing due date; it rules the due dates set after it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from lending.db import calendar as db_calendar

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# A library closes on at most this many single dates (a bound on the calendar row and on the search below).
MAX_CLOSED_DATES = 1000


class LibraryCalendar(models.Model):
    """The library's closed days: one row (`CALENDAR_ID`), created on its first change."""

    closed_weekdays = models.JSONField(default=list, blank=True, help_text='Weekly closing days, e.g. ["sunday"].')
    closed_dates = models.JSONField(default=list, blank=True, help_text='Single closed dates, e.g. ["2026-12-25"].')
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "lending"
        verbose_name = "library calendar"
        verbose_name_plural = "library calendar"

    def __str__(self) -> str:
        return "The library's calendar"

    def closed_days(self) -> ClosedDays:
        return ClosedDays(
            weekdays=frozenset(WEEKDAYS.index(name) for name in self.closed_weekdays),
            dates=frozenset(date.fromisoformat(text) for text in self.closed_dates),
        )


CALENDAR_ID = 1


@dataclass(frozen=True)
class ClosedDays:
    weekdays: frozenset[int] = frozenset()  # 0 = Monday, as `date.weekday()`
    dates: frozenset[date] = frozenset()

    def is_closed(self, day: date) -> bool:
        return day.weekday() in self.weekdays or day in self.dates

    def next_open_day(self, day: date) -> date:
        """`day` if the library opens that day, else the first open day after it. The calendar never
        closes every weekday (`validate`), so a week past the last closed date is always open."""
        while self.is_closed(day):
            day += timedelta(days=1)
        return day


def closed_days() -> ClosedDays:
    """The calendar in force (no closed day until one is set).

    Read once per transaction: a lend sets a due date and a pickup deadline, each through this
    function, and reads the calendar once, so both follow the same calendar. The read is kept in the
    transaction's own state, Django's list of on-commit hooks (`_ReadInTransaction`), which the
    transaction's end empties whether it commits or rolls back (a rolled-back savepoint drops the hooks
    it registered too), so the next transaction reads again: a change committed by another process (a
    PUT /calendar/ on another worker, the admin) rules every transaction that begins after it commits,
    with no delay. A transaction keeps the calendar of its first read to its end. A change written in
    this transaction through the model (`set_calendar`, the admin's save and delete) drops the read at
    once; an UPDATE of the table bypassing the model would not. Outside a transaction, every call reads."""
    if not connection.in_atomic_block:
        return _read_closed_days()
    for read in _reads_in_this_transaction():
        if read.closed is not None:
            return read.closed
    closed = _read_closed_days()
    transaction.on_commit(_ReadInTransaction(closed))
    return closed


def remember_for_this_transaction(stored: tuple[list[str], list[str]] | None) -> None:
    """The calendar as a statement of this transaction read it beside other things (the lend's one
    read, `lending.db.state`): its later `closed_days()` calls use it instead of reading again."""
    if not connection.in_atomic_block or any(read.closed is not None for read in _reads_in_this_transaction()):
        return
    transaction.on_commit(_ReadInTransaction(_parsed(stored)))


class _ReadInTransaction:
    """The calendar as read in the current transaction, registered as one of its on-commit hooks
    (the hook itself does nothing)."""

    def __init__(self, closed: ClosedDays) -> None:
        self.closed: ClosedDays | None = closed

    def __call__(self) -> None:
        """Committed: Django runs and drops the hooks, and this read with them."""


def _reads_in_this_transaction() -> list[_ReadInTransaction]:
    hooks = (entry[1] for entry in connection.run_on_commit)  # (savepoint ids, hook, robust)
    return [hook for hook in hooks if isinstance(hook, _ReadInTransaction)]


@receiver([post_save, post_delete], sender=LibraryCalendar)
def _forget_reads_in_this_transaction(**_: object) -> None:
    """The calendar changed in this transaction: its next read sees the change."""
    for read in _reads_in_this_transaction():
        read.closed = None


# One statement in SQL, run as it is (`lending.db.calendar`): the ORM building and compiling it cost
# 0.7 ms of CPU per read against 0.2 ms (`python -m tools.bench.statements`).
def _read_closed_days() -> ClosedDays:
    return _parsed(db_calendar.read_closed_days(CALENDAR_ID))


def _parsed(stored: tuple[list[str], list[str]] | None) -> ClosedDays:
    if stored is None:
        return ClosedDays()
    weekdays, dates = stored
    return _closed_days_of(tuple(weekdays), tuple(dates))


@functools.lru_cache(maxsize=8)
def _closed_days_of(weekdays: tuple[str, ...], dates: tuple[str, ...]) -> ClosedDays:
    """Parsed once per process for each calendar met: every lend reads it (ClosedDays is immutable)."""
    return LibraryCalendar(closed_weekdays=list(weekdays), closed_dates=list(dates)).closed_days()


def library_zone() -> ZoneInfo:
    return ZoneInfo(settings.LIBRARY_TIME_ZONE)


def end_of_day(day: date) -> datetime:
    """The last instant of `day` in the library's time zone."""
    return datetime.combine(day, time.max, tzinfo=library_zone())


def library_day(moment: datetime) -> date:
    """The library's date at `moment`."""
    return moment.astimezone(library_zone()).date()


def end_of_open_day(moment: datetime, closed: ClosedDays | None = None) -> datetime:
    """THE due-date rule: the end of `moment`'s day in LIBRARY_TIME_ZONE, moved to the end of the next
    open day when the library is closed that day. Every due date and pickup deadline goes through it."""
    closed = closed if closed is not None else closed_days()
    return end_of_day(closed.next_open_day(library_day(moment)))


def due_after(start: datetime, period: timedelta, closed: ClosedDays | None = None) -> datetime:
    """The due date of something that starts at `start` and lasts `period` (a loan, a renewal, a
    hold's pickup window)."""
    return end_of_open_day(start + period, closed)


def days_overdue(date_due: datetime, now: datetime) -> int:
    """Whole library days since the due day ended (0 while not overdue)."""
    if now <= date_due:
        return 0
    return (library_day(now) - library_day(date_due)).days


# --- Changing it ----------------------------------------------------------------------------------
class InvalidCalendar(ValueError):
    def __init__(self, details: dict[str, list[str]]) -> None:
        super().__init__("The calendar is invalid.")
        self.details = details


def validate(closed_weekdays: object, closed_dates: object) -> tuple[list[str], list[str]]:
    """The calendar as stored (weekdays in week order, dates sorted), or InvalidCalendar naming each
    bad field (a repeated weekday or date too: the OpenAPI document says `uniqueItems`)."""
    errors: dict[str, list[str]] = {}
    weekdays = _weekdays(closed_weekdays, errors)
    dates = _dates(closed_dates, errors)
    if errors:
        raise InvalidCalendar(errors)
    return weekdays, dates


def _weekdays(value: object, errors: dict[str, list[str]]) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        errors["closed_weekdays"] = ["A list of weekday names is required."]
        return []
    unknown = sorted({name for name in value if name not in WEEKDAYS})
    if unknown:
        errors["closed_weekdays"] = [f"Unknown weekday(s): {', '.join(unknown)}. Weekdays: {', '.join(WEEKDAYS)}."]
        return []
    if len(set(value)) != len(value):
        errors["closed_weekdays"] = ["Each weekday at most once."]
        return []
    if set(value) == set(WEEKDAYS):
        errors["closed_weekdays"] = ["The library must open on at least one weekday."]
        return []
    return [name for name in WEEKDAYS if name in value]


def _dates(value: object, errors: dict[str, list[str]]) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(text, str) for text in value):
        errors["closed_dates"] = ["A list of dates (YYYY-MM-DD) is required."]
        return []
    if len(value) > MAX_CLOSED_DATES:
        errors["closed_dates"] = [f"At most {MAX_CLOSED_DATES} closed dates."]
        return []
    parsed = set()
    for text in value:
        try:
            if len(text) != 10:
                raise ValueError
            day = date.fromisoformat(text)
        except ValueError:
            errors["closed_dates"] = [f"Not a date (YYYY-MM-DD): {text[:20]!r}."]
            return []
        if day in parsed:
            errors["closed_dates"] = [f"Each date at most once: {text} is repeated."]
            return []
        parsed.add(day)
    return [day.isoformat() for day in sorted(parsed)]


def set_calendar(closed_weekdays: object, closed_dates: object) -> LibraryCalendar:
    """Replace the calendar (validated first: a bad one writes nothing)."""
    weekdays, dates = validate(closed_weekdays, closed_dates)
    calendar, _ = LibraryCalendar.objects.update_or_create(
        pk=CALENDAR_ID, defaults={"closed_weekdays": weekdays, "closed_dates": dates}
    )
    return calendar


def current_calendar() -> LibraryCalendar:
    """The stored calendar, or an unsaved empty one."""
    return LibraryCalendar.objects.filter(pk=CALENDAR_ID).first() or LibraryCalendar(pk=CALENDAR_ID)
