"""The history of loans and holds: one `Event` row per change, written in the change's transaction.

Who made the change is the *caller*: the API key's name and prefix (never the key), `anonymous` when
keys are off, a staff user, or a system job; every event is made with its caller, which the write's
context carries (`lending.write_context`): views make it from the request (`caller_of`), scheduled
jobs act as `SCHEDULER`, anything else (a shell, a test) as `SYSTEM`.

Each subject (a loan or a hold) numbers its events from 1 (`Event.sequence`), as the domain events
published later will need. The number is computed inside the INSERT (the subject's highest number
plus one), so recording costs one statement whatever the number of events. Every writer of a
subject holds its row lock (or the book's) while it records, so two writers never compute the same
number; the unique constraints on (subject, sequence) would refuse it if one did.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from lending.db import history as db_history
from lending.db import run
from lending.events import domain_events
from lending.models import Event, Hold, Loan
from lending.request_context import current_request_id


@dataclass(frozen=True)
class Caller:
    name: str
    key_prefix: str = ""

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix})" if self.key_prefix else self.name


ANONYMOUS = Caller("anonymous")
SCHEDULER = Caller("system:scheduler")
SYSTEM = Caller("system")


def caller_of(request: Any) -> Caller:
    """The caller of an API request: its key when one authenticated it, `anonymous` otherwise
    (keys off)."""
    return caller_of_key(getattr(request, "auth", None))


def caller_of_key(api_key: Any) -> Caller:
    """The caller an API key names; `anonymous` without one (keys off)."""
    if api_key is None:
        return ANONYMOUS
    return Caller(api_key.name, api_key.prefix)


def loan_event(loan: Loan, kind: str, *, at: datetime, caller: Caller, **data: Any) -> Event:
    return _event(kind, at=at, caller=caller, data=data, loan_id=loan.pk)


def hold_event(hold: Hold, kind: str, *, at: datetime, caller: Caller, **data: Any) -> Event:
    return _event(kind, at=at, caller=caller, data=data, hold_id=hold.pk)


def _event(kind: str, *, at: datetime, caller: Caller, data: dict, **subject: Any) -> Event:
    request_id = current_request_id()
    return Event(
        kind=kind,
        occurred_at=at,
        caller=caller.name,
        caller_key_prefix=caller.key_prefix,
        request_id="" if request_id == "-" else request_id,
        data=data,
        **subject,
    )


class EventDataEncoder(DjangoJSONEncoder):
    """Django's encoder, but datetimes keep their microseconds (an event states exactly what it set),
    written as the API writes them (UTC as `Z`)."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime):
            text = o.isoformat()
            return text[:-6] + "Z" if text.endswith("+00:00") else text
        return super().default(o)


def record(*events: Event) -> None:
    """Insert the events in one statement, numbering each after its subject's last event (in the
    order given, when one subject has several). Call inside the transaction of the change."""
    if not events:
        return
    published(db_history.insert_events(rows_of(*events), encoder=EventDataEncoder, returning=domain_events.enabled()))


def record_with(inserts: Sequence[tuple[str, Sequence[Any]]], *events: Event) -> None:
    """`record`, in one statement with the change's other INSERTs (`inserts`, run first: a lend's loan
    and outbox rows, which its events name): one round trip on PostgreSQL (`lending.db.run.together`)."""
    returning = domain_events.enabled()
    events_insert = db_history.events_insert(rows_of(*events), encoder=EventDataEncoder, returning=returning)
    published(run.together([*inserts, events_insert], returning=returning))


def rows_of(*events: Event) -> list[db_history.NewEvent]:
    """The rows `record` inserts, numbered."""
    earlier: Counter[tuple[str, int | None]] = Counter()  # an event has one subject, loan or hold
    rows = []
    for event in events:
        subject = ("loan_id", event.loan_id) if event.loan_id else ("hold_id", event.hold_id)
        earlier[subject] += 1
        rows.append(
            db_history.NewEvent(
                loan_id=event.loan_id,
                hold_id=event.hold_id,
                kind=event.kind,
                occurred_at=event.occurred_at,
                caller=event.caller,
                caller_key_prefix=event.caller_key_prefix,
                request_id=event.request_id,
                reason=event.reason,
                data=event.data,
                nth_of_subject=earlier[subject],
            )
        )
    return rows


def published(inserted: list[tuple]) -> None:
    """The change's events, as the insert returned them when `domain_events.enabled()`, published as
    domain events (EVENTS_BROKER_URL) in the same transaction."""
    if inserted:
        domain_events.enqueue_for([domain_events.Recorded(*row) for row in inserted])


def events_of_loan(loan_id: int):
    return Event.objects.filter(loan_id=loan_id).order_by("sequence")
