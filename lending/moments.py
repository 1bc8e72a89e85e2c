"""The one rule for a date-time a client or staff member sends (an API field, an admin filter): its
UTC offset is one that exists on Earth, and it is a moment of years 1 to 9999 in UTC.

ISO 8601 parsers accept offsets up to ±23:59. `9999-12-31T23:59:59-23:59` is then past the last
instant Python can hold once in UTC, and PostgreSQL refuses any offset beyond ±15:59: either way a
crash (a 500) rather than a refusal, wherever the value is compared, converted or sent to the database.
No Django here: the admin's filters and the API's fields share it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# The time zones in use span UTC-12:00 (Baker Island) to UTC+14:00 (the Line Islands).
MAX_UTC_OFFSET = timedelta(hours=14)


class MomentOutOfRange(ValueError):
    pass


def check_moment(moment: datetime) -> datetime:
    """`moment`, if its offset is within ±14:00 and it converts to UTC; else MomentOutOfRange."""
    offset = moment.utcoffset()
    if offset is None:
        return moment
    if abs(offset) > MAX_UTC_OFFSET:
        raise MomentOutOfRange("The UTC offset must be between -14:00 and +14:00.")
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise MomentOutOfRange("The date-time is out of range.") from None
    return moment
