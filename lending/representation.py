"""How a loan and a hold are shown: the API's bodies, built once, without DRF.

The API's serializers (`lending.api.serializers`) render through these functions and describe them
to OpenAPI; the idempotency record stores what they return (`lending.idempotency`), and the domain
events carry it (`lending.events.domain_events`). Pure functions of the rows: no query, no request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from lending.models import Hold, Loan

LOAN_FIELDS = ("id", "user_email", "book_id", "date_borrowed", "date_due", "date_returned", "status")
# The loan with the fields beyond the spec's: for `/loans/`, `/renewBook/` and the domain events
# (`loan_policy`: the loan policy it was made under, `lending.circulation_rules`).
# `fine`: the overdue fine assessed so far, `{amount, currency, days_charged}` or null (`lending.fines`).
LOAN_DETAIL_FIELDS = (*LOAN_FIELDS, "book_title", "renewals", "loan_policy", "fine")
# The loan of a copy (`/checkouts/`, `/checkins/`): its detail and the copy's barcode.
LOAN_ITEM_FIELDS = (*LOAN_DETAIL_FIELDS, "item_barcode")
HOLD_FIELDS = (
    "id",
    "user_email",
    "book_id",
    "book_title",
    "status",
    "queue_position",
    "date_reserved",
    "date_ready",
    "pickup_deadline",
    "date_closed",
    "loan_id",
)
DATETIME_FIELDS = frozenset(
    {"date_borrowed", "date_due", "date_returned", "date_reserved", "date_ready", "pickup_deadline", "date_closed"}
)


def iso_datetime(value: datetime | None) -> str | None:
    """DRF's rendering of a datetime: ISO 8601 in UTC, with `Z`."""
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def loan(row: Loan, fields: tuple[str, ...] = LOAN_FIELDS) -> dict:
    """The loan as the spec's endpoints show it; its status is the one clients see (`current_status`)."""
    return {name: row.current_status if name == "status" else _column(row, name) for name in fields}


def _column(row: Loan | Hold, name: str) -> Any:
    """A column as the API writes it (datetimes in UTC, with `Z`)."""
    value = getattr(row, name)
    return iso_datetime(value) if name in DATETIME_FIELDS else value


def loan_detail(row: Loan) -> dict:
    return loan(row, LOAN_DETAIL_FIELDS)


def loan_item(row: Loan) -> dict:
    return loan(row, LOAN_ITEM_FIELDS)


class CheckedIn(Protocol):
    """What a check-in returns (`lending.services.checkin.CheckIn`)."""

    loan: Loan | None
    route: dict


def checked_in(result: CheckedIn) -> dict:
    return {"loan": None if result.loan is None else loan_item(result.loan), "route": dict(result.route)}


def hold(row: Hold, queue_position: int | None) -> dict:
    """The hold, with its place in the queue as the caller computed it (None unless WAITING)."""
    data: dict[str, Any] = {}
    for name in HOLD_FIELDS:
        data[name] = queue_position if name == "queue_position" else _column(row, name)
    data["status"] = str(row.status)
    return data


class HoldWithPosition(Protocol):
    """What a hold write returns (`lending.services.PlacedHold`)."""

    hold: Hold
    queue_position: int | None


def placed_hold(result: HoldWithPosition) -> dict:
    return hold(result.hold, result.queue_position)


@dataclass(frozen=True)
class Answer:
    """A write's success answer: its HTTP status and the function of this module that renders the
    result. Called once, by the idempotency claim inside the write's transaction, or by the view."""

    status: int
    represent: Callable[[Any], dict]

    def __call__(self, result: Any) -> tuple[int, dict]:
        return self.status, self.represent(result)
