"""The outbox's statements: writing messages (`lending.outbox.messages`, the domain events, the relay's
re-checks) and the relay's claim, lease and settling (`lending.outbox.relay`, which says why each
is the way it is).

A list of ids is one parameter: a PostgreSQL array (`id = ANY(%s)`), or JSON text that SQLite
unrolls (`json_each`); so each statement keeps one text whatever the number of ids.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from django.db import connection
from django.utils import timezone

from lending.db import run
from lending.db.run import Variants
from lending.models import OutboxMessage, OutboxStatus
from lending.request_context import current_traceparent

# The payload key of an availability re-check (`lending.outbox.relay._enqueue_recheck`): the settle
# below never satisfies a re-check on another delivery's behalf.
RECHECK = "recheck_after_unknown_outcome"

INSERT_MESSAGES = (
    'INSERT INTO lending_outboxmessage ("key", kind, book_id, payload, status, attempts, claims, '
    "next_attempt_at, last_error, created_at, delivered_at, traceparent) VALUES {rows} RETURNING id"
)
# A message whose key is already there is left out (the relay's re-check: one per book and window);
# which rows went in is not answered, as with `bulk_create(ignore_conflicts=True)`.
INSERT_MESSAGES_IGNORING_CONFLICTS = (
    'INSERT INTO lending_outboxmessage ("key", kind, book_id, payload, status, attempts, claims, '
    "next_attempt_at, last_error, created_at, delivered_at, traceparent) VALUES {rows} "
    "ON CONFLICT DO NOTHING"
)
MESSAGE_ROW = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
# Written with other rows in one statement (`lending.db.run.together`): the ids are not read back.
INSERT_MESSAGES_WITH_OTHERS = INSERT_MESSAGES.removesuffix(" RETURNING id")


@dataclass(slots=True)
class NewMessage:
    """A message to write, without the cost of a model instance (Django's `Model.__init__` asks every
    field for its default): the columns its writer chooses, each default as `OutboxMessage` has it
    (the key and the traceparent taken when the message is made, as the model's defaults are). The
    columns no writer chooses for a new message are the model's defaults, constant here: pending,
    never tried nor claimed, no error, not delivered; `created_at` is the insert's. Not frozen: a
    writer may still amend the payload before enqueueing it, and the insert sets `id`."""

    kind: str
    book_id: int
    next_attempt_at: datetime
    payload: dict = field(default_factory=dict)
    key: uuid.UUID = field(default_factory=uuid.uuid4)
    traceparent: str = field(default_factory=current_traceparent)
    id: int | None = None  # the row's, once written
    created_at: datetime | None = None  # the insert's moment, once written

    status: ClassVar[str] = OutboxStatus.PENDING
    attempts: ClassVar[int] = 0
    claims: ClassVar[int] = 0
    last_error: ClassVar[str] = ""
    delivered_at: ClassVar[datetime | None] = None

    @property
    def pk(self) -> int | None:
        """The row's id, by the name the model gives it."""
        return self.id


Message = NewMessage | OutboxMessage
_Written = TypeVar("_Written", bound=Message)

# Pending messages due by a moment, oldest first, locked for the claim; rows another relay holds are
# skipped, not waited for. SQLite has no row locks (one writer at a time anyway).
CLAIMABLE = Variants(
    postgresql=(
        f"SELECT {run.columns(OutboxMessage)} FROM lending_outboxmessage"  # noqa: S608 - the model's columns
        " WHERE status = 'PENDING' AND next_attempt_at <= %s "
        "ORDER BY next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED"
    ),
    sqlite=(
        f"SELECT {run.columns(OutboxMessage)} FROM lending_outboxmessage"  # noqa: S608 - the model's columns
        " WHERE status = 'PENDING' AND next_attempt_at <= %s "
        "ORDER BY next_attempt_at, id LIMIT %s"
    ),
)

TAKE_LEASE = Variants(
    postgresql="UPDATE lending_outboxmessage SET next_attempt_at = %s, claims = claims + 1 WHERE id = ANY(%s)",
    sqlite=(
        "UPDATE lending_outboxmessage SET next_attempt_at = %s, claims = claims + 1 "
        "WHERE id IN (SELECT value FROM json_each(%s))"
    ),
)

MARK_DELIVERED = Variants(
    postgresql=(
        "UPDATE lending_outboxmessage SET status = 'DELIVERED', delivered_at = %s, last_error = '' WHERE id = ANY(%s)"
    ),
    sqlite=(
        "UPDATE lending_outboxmessage SET status = 'DELIVERED', delivered_at = %s, last_error = '' "
        "WHERE id IN (SELECT value FROM json_each(%s))"
    ),
)

# The books a batch published, settled in one statement: for each book still at the version published,
# its claimed messages and its availability messages waiting to be claimed (due, not a re-check, no
# abandoned delivery) are delivered; a book that changed meanwhile keeps all of its. Answers the books
# settled (each has at least its claimed messages). Parameters: the delivery's moment, the books, their
# versions published, the claimed messages' ids, the moment again (what is due). (SQLite's RETURNING
# names the updated table's columns unqualified, PostgreSQL's must say which `book_id`.)
SETTLE_AVAILABILITY = Variants(
    postgresql=(
        "UPDATE lending_outboxmessage m SET status = 'DELIVERED', delivered_at = %s, last_error = '' "
        "FROM unnest(%s::bigint[], %s::bigint[]) AS published (book_id, version) "
        "WHERE m.book_id = published.book_id AND (m.id = ANY(%s) OR (m.kind = 'availability' "
        "AND m.status = 'PENDING' AND m.next_attempt_at <= %s AND m.claims <= m.attempts "
        f"AND NOT (m.payload ? '{RECHECK}'))) "
        "AND NOT EXISTS (SELECT 1 FROM lending_bookstock s WHERE s.book_id = published.book_id "
        "AND s.version <> published.version) RETURNING m.book_id"
    ),
    sqlite=(
        "UPDATE lending_outboxmessage AS m SET status = 'DELIVERED', delivered_at = %s, last_error = '' "
        "FROM (SELECT b.value AS book_id, v.value AS version FROM json_each(%s) b JOIN json_each(%s) v "
        "ON v.key = b.key) AS published "
        "WHERE m.book_id = published.book_id AND (m.id IN (SELECT value FROM json_each(%s)) OR ("
        "m.kind = 'availability' AND m.status = 'PENDING' AND m.next_attempt_at <= %s AND m.claims <= m.attempts "
        f"AND JSON_TYPE(m.payload, '$.\"{RECHECK}\"') IS NULL)) "
        "AND NOT EXISTS (SELECT 1 FROM lending_bookstock s WHERE s.book_id = published.book_id "
        "AND s.version <> published.version) RETURNING book_id"
    ),
)

# Claimed messages handed back, due at once; the claim no longer counts (never below 0, for a message
# delivered without a claim).
REOPEN = Variants(
    postgresql=(
        "UPDATE lending_outboxmessage SET status = 'PENDING', next_attempt_at = %s, delivered_at = NULL, "
        "claims = GREATEST(claims - 1, 0) WHERE id = ANY(%s)"
    ),
    sqlite=(
        "UPDATE lending_outboxmessage SET status = 'PENDING', next_attempt_at = %s, delivered_at = NULL, "
        "claims = MAX(claims - 1, 0) WHERE id IN (SELECT value FROM json_each(%s))"
    ),
)


def insert_messages(messages: Sequence[_Written], *, ignore_conflicts: bool = False) -> list[_Written]:
    """Writes the messages in one INSERT whatever their number (SQLite: as many as its parameter limit
    allows per statement), each column as `bulk_create` writes it: the message's values (a model
    instance's fields' defaults, a `NewMessage`'s own), `created_at` now. Their ids are set from the
    statement's answer; with `ignore_conflicts` a message whose key exists is not written, and, as
    with `bulk_create`'s `ignore_conflicts`, no id is set."""
    if not messages:
        return []
    now = timezone.now()
    for message in messages:
        message.created_at = now  # auto_now_add
    statement = INSERT_MESSAGES_IGNORING_CONFLICTS if ignore_conflicts else INSERT_MESSAGES
    to_row = _row_writer()
    for chunk in _chunks_per_statement(messages):
        sql = statement.format(rows=", ".join([MESSAGE_ROW] * len(chunk)))
        params = [value for message in chunk for value in to_row(message)]
        if ignore_conflicts:
            run.execute(sql, params)
            continue
        for message, (pk,) in zip(chunk, run.fetch_all(sql, params), strict=True):
            _saved(message, pk)
    return list(messages)


def messages_insert(messages: Sequence[NewMessage]) -> tuple[str, list[Any]]:
    """The INSERT of a few new messages (a write's own: within SQLite's parameter limit) to run with
    other rows in one statement (`lending.db.run.together`); `created_at` is now, no id is read back."""
    assert messages and len(_chunks_per_statement(messages)) == 1, "a write's few messages"
    now = timezone.now()
    to_row = _row_writer()
    params = []
    for message in messages:
        message.created_at = now  # auto_now_add
        params += to_row(message)
    return INSERT_MESSAGES_WITH_OTHERS.format(rows=", ".join([MESSAGE_ROW] * len(messages))), params


def _saved(message: Message, pk: int) -> None:
    if isinstance(message, NewMessage):
        message.id = pk
        return
    message.pk = pk
    # As `bulk_create` leaves them: Model._state (documented) says the row is saved, and where.
    message._state.adding, message._state.db = False, connection.alias


def claimable(due_by: datetime, limit: int) -> list[OutboxMessage]:
    """Up to `limit` pending messages due by `due_by`, oldest first, locked until the transaction
    ends (PostgreSQL; those another transaction holds are skipped). Call inside `atomic`."""
    return run.instances(OutboxMessage, CLAIMABLE, [run.db_datetime(due_by), limit])


def take_lease(ids: Sequence[int], lease_end: datetime) -> int:
    """The messages are due again at `lease_end` (if their delivery never settles), one claim more."""
    return run.execute(TAKE_LEASE, [run.db_datetime(lease_end), _id_list(ids)])


def mark_delivered(ids: Sequence[int], now: datetime) -> int:
    return run.execute(MARK_DELIVERED, [run.db_datetime(now), _id_list(ids)])


@dataclass(frozen=True)
class Published:
    """A book's availability the relay published: at which version, for which claimed messages."""

    book_id: int
    version: int
    claimed: Sequence[int]


def settle_availability(published: Sequence[Published], now: datetime) -> set[int]:
    """The books settled (those still at the version published); the others' messages are untouched."""
    if not published:
        return set()
    at = run.db_datetime(now)
    books = _id_list([book.book_id for book in published])
    versions = _id_list([book.version for book in published])
    claimed = _id_list([pk for book in published for pk in book.claimed])
    return {book_id for (book_id,) in run.fetch_all(SETTLE_AVAILABILITY, [at, books, versions, claimed, at])}


def reopen(ids: Sequence[int], now: datetime) -> int:
    return run.execute(REOPEN, [run.db_datetime(now), _id_list(ids)])


def _row_writer() -> Callable[[Message], list[Any]]:
    """A message's values in MESSAGE_ROW's order, as its fields prepare them for this backend (asked
    of the connection once per insert, not once per row)."""
    native_uuid = connection.features.has_native_uuid_field
    adapt_json = connection.ops.adapt_json_value
    adapt_datetime = connection.ops.adapt_datetimefield_value

    def row(message: Message) -> list[Any]:
        delivered_at = message.delivered_at
        return [
            message.key if native_uuid else message.key.hex,
            message.kind,
            message.book_id,
            adapt_json(message.payload, None),  # the field has no custom encoder
            message.status,
            message.attempts,
            message.claims,
            adapt_datetime(message.next_attempt_at),
            message.last_error,
            adapt_datetime(message.created_at),
            None if delivered_at is None else adapt_datetime(delivered_at),
            message.traceparent,
        ]

    return row


def _chunks_per_statement(messages: Sequence[_Written]) -> list[Sequence[_Written]]:
    """The messages in one chunk (PostgreSQL), or in chunks of as many rows as SQLite binds values
    in one statement (its `max_query_params`)."""
    limit = connection.features.max_query_params
    size = len(messages) if limit is None else max(1, limit // MESSAGE_ROW.count("%s"))
    return [messages[start : start + size] for start in range(0, len(messages), size)]


def _id_list(ids: Sequence[int]) -> Any:
    """A list of ids as one parameter: an array for PostgreSQL, JSON text for SQLite's `json_each`."""
    return list(ids) if run.is_postgresql() else json.dumps(list(ids))
