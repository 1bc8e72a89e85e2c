"""Domain events: every recorded change of a loan or hold, as a CloudEvent 1.0 for the broker.

The history (`lending.events.history`) already writes one `Event` row per change, numbered per subject, in
the change's transaction. With EVENTS_BROKER_URL set, `record` hands the rows it inserted to
`enqueue_for`, which writes, in that same transaction, one outbox message per event (kind `event`)
holding the whole CloudEvent; the relay publishes it (lending/outbox/broker.py). One fact, written
once: the outbox message is derived from the event row, never built by the services.

Why an outbox message rather than the relay reading unpublished `Event` rows: the outbox already has
everything a delivery needs (claim with SKIP LOCKED, lease, retries with backoff, dead letters,
metrics, the trace context), and `data` must be the subject as it was when the change committed, not
when the relay gets to it, so it is rendered here, in the transaction.

`data` is the loan or hold as the API shows it, without the patron's email: a broadcast cannot be
erased later, and the event history never holds the email either. In its place `patron_ref`, the
patron's pseudonym (`lending.patron_ref`), lets a consumer tell patrons apart, and `item_barcode`
names the copy (null for a title-level loan). Once a loan or hold is anonymised its ref is null: its
`anonymised` event says so, and the retention job nulls the ref in the stored copies of its earlier
events (`lending.privacy`). Consumers order a subject's events by `sequence` and drop duplicates by
`id` (stable across redeliveries: subject and sequence).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.utils.dateparse import parse_datetime

from lending import representation as shown
from lending.db import outbox as db_outbox
from lending.models import EventKind, Hold, Loan, OutboxKind, OutboxMessage
from lending.patron_ref import patron_ref

SPEC_VERSION = "1.0"
TYPE_PREFIX = "org.library.lending"
CONTENT_TYPE = "application/json"

# The verb of each kind of change in the event's `type`; a kind missing here is never published
# (a test fails when a new kind is in neither this table nor INTERNAL_KINDS).
VERBS: dict[str, str] = {
    EventKind.LENT: "lent",
    EventKind.RENEWED: "renewed",
    EventKind.RETURNED: "returned",
    EventKind.MARKED_OVERDUE: "overdue",
    EventKind.NOTICE_QUEUED: "notice_queued",
    EventKind.RESERVED: "placed",
    EventKind.HOLD_READY: "ready",
    EventKind.HOLD_FULFILLED: "fulfilled",
    EventKind.CANCELLED: "cancelled",
    EventKind.HOLD_EXPIRED: "expired",
    EventKind.ANONYMISED: "anonymised",
    EventKind.DUE_DATE_CHANGED: "due_date_changed",
    EventKind.DECLARED_LOST: "declared_lost",
    EventKind.CLAIMED_RETURNED: "claimed_returned",
    EventKind.RESOLVED: "resolved",
    EventKind.FINE_ASSESSED: "fine_assessed",  # loan.fine_assessed.v1: `data.fine` says what and how much
}
# Kinds of the history never published. None today: every kind is, so that a subject's published
# `sequence` has no gaps and a consumer can tell that it missed one.
INTERNAL_KINDS: frozenset[str] = frozenset()

# Which kinds each subject has (the AsyncAPI document lists these types).
LOAN_KINDS = (
    EventKind.LENT,
    EventKind.RENEWED,
    EventKind.RETURNED,
    EventKind.MARKED_OVERDUE,
    EventKind.NOTICE_QUEUED,
    EventKind.DUE_DATE_CHANGED,
    EventKind.DECLARED_LOST,
    EventKind.CLAIMED_RETURNED,
    EventKind.RESOLVED,
    EventKind.FINE_ASSESSED,
    EventKind.ANONYMISED,
)
HOLD_KINDS = (
    EventKind.RESERVED,
    EventKind.HOLD_READY,
    EventKind.HOLD_FULFILLED,
    EventKind.CANCELLED,
    EventKind.HOLD_EXPIRED,
    EventKind.ANONYMISED,
)
# Fields of the API's representation left out of `data`.
WITHHELD_FIELDS = ("user_email", "queue_position")
# Fields `data` adds to the API's representation: the copy (when the API does not show it already)
# and the patron's pseudonym in place of the email.
EVENT_FIELDS = ("item_barcode", "patron_ref")


@dataclass(frozen=True)
class Recorded:
    """An event row as `history.record` inserted it."""

    id: int
    loan_id: int | None
    hold_id: int | None
    sequence: int
    kind: str
    occurred_at: datetime
    # The event's own data (JSON text or decoded); only a fine's assessment adds it to the published data.
    data: Any = None

    @property
    def entity(self) -> str:
        return "loan" if self.loan_id else "hold"

    @property
    def subject_id(self) -> int:
        subject = self.loan_id or self.hold_id
        assert subject is not None, "an event has exactly one subject (a database constraint)"
        return subject


def enabled() -> bool:
    return bool(settings.EVENTS_BROKER_URL)


def event_type(entity: str, kind: str) -> str:
    return f"{TYPE_PREFIX}.{entity}.{VERBS[kind]}.v1"


def all_types() -> list[str]:
    return [event_type("loan", kind) for kind in LOAN_KINDS] + [event_type("hold", kind) for kind in HOLD_KINDS]


def enqueue_for(recorded: Sequence[Recorded]) -> list[OutboxMessage]:
    """Writes the outbox messages of the events just recorded (call in the same transaction)."""
    published = [event for event in recorded if event.kind in VERBS]
    if not published:
        return []
    loans = _subjects(Loan, [event.loan_id for event in published if event.loan_id])
    holds = _subjects(Hold, [event.hold_id for event in published if event.hold_id])
    messages = []
    for event in published:
        subject = loans[event.subject_id] if event.loan_id else holds[event.subject_id]
        messages.append(
            OutboxMessage(
                kind=OutboxKind.EVENT,
                book_id=subject.book_id,
                payload=cloud_event(event, _data(event, subject)),
                next_attempt_at=datetime.now(UTC),
            )
        )
    return db_outbox.insert_messages(messages)


def _data(event: Recorded, subject: Loan | Hold) -> dict:
    """The subject as the API shows it; a `fine_assessed` event adds `fee`, the assessment as the Fees
    service receives it (its id, kind, amount, currency, days charged)."""
    data = representation(subject)
    if event.kind == EventKind.FINE_ASSESSED:
        details = json.loads(event.data) if isinstance(event.data, str) else (event.data or {})
        data["fee"] = {
            "id": details.get("assessment_id"),
            "kind": details.get("fee_kind"),
            "amount": details.get("amount"),
            "currency": details.get("currency"),
            "days_charged": details.get("days_charged"),
        }
    return data


def _subjects(model, ids: Iterable[int]) -> dict[int, Any]:
    ids = set(ids)
    return model.objects.in_bulk(ids) if ids else {}


def cloud_event(event: Recorded, data: dict) -> dict:
    """The CloudEvent (structured JSON) without `traceparent`, which the relay adds from the message."""
    return {
        "specversion": SPEC_VERSION,
        "id": f"{event.entity}-{event.subject_id}-{event.sequence}",
        "source": settings.EVENTS_SOURCE,
        "type": event_type(event.entity, event.kind),
        "subject": str(event.subject_id),
        "time": _timestamp(event.occurred_at),
        "datacontenttype": CONTENT_TYPE,
        "sequence": event.sequence,
        "data": data,
    }


def representation(subject: Loan | Hold) -> dict:
    """The subject as the API shows it (`lending.representation`, its one rendering), less
    WITHHELD_FIELDS, plus EVENT_FIELDS."""
    data = shown.loan_detail(subject) if isinstance(subject, Loan) else shown.hold(subject, None)
    for field in WITHHELD_FIELDS:
        data.pop(field, None)
    data.setdefault("item_barcode", subject.item_barcode)
    data["patron_ref"] = patron_ref(subject.user_email)
    return data


def data_fields(entity: str) -> list[str]:
    """The keys of `data` for a loan or a hold (for the AsyncAPI document)."""
    fields = shown.LOAN_DETAIL_FIELDS if entity == "loan" else shown.HOLD_FIELDS
    shown_fields = [field for field in fields if field not in WITHHELD_FIELDS]
    return shown_fields + [field for field in EVENT_FIELDS if field not in shown_fields]


def _timestamp(value: datetime | str) -> str:
    if isinstance(value, str):  # SQLite's raw cursor: the stored text, naive UTC
        value = parse_datetime(value) or datetime.fromisoformat(value)
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
