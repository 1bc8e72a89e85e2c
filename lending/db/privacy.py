"""The privacy job's statements: which loans and holds a pending notification still names, the settled
notifications of anonymised ones deleted, a batch's emails replaced and its `anonymised` events
inserted in one statement each, the commit that does not wait for the disk, and SQLite's checkpoint
after an erasure (`lending.privacy`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from lending.db import run
from lending.models import ANONYMISED_SUFFIX, OutboxKind, OutboxStatus

Subject = Literal["loan", "hold"]

# (message_id, subject_id) rows: for each of `messages` (a query selecting `id, payload`), the loans
# (key `loan_id`) or holds (`hold_id`) it names. A notification names its payload's own key; a digest
# (NOTICE_DIGEST) has none and names the key of each notice it lists under `loans`. Two branches rather
# than one expansion of every payload: most rows are per-loan, and a DELETE runs without parallel
# workers, so expanding each of them took twice as long (PostgreSQL 15, 220,000 notifications).
# JSON arrays have no ORM lookup, so the definition is written once per database:
# tests/services/test_privacy.py runs the one in use through the retention job, and SQLite's
# (`make run`'s database) with the sqlite3 library on every run, PostgreSQL or not.
NAMED_SUBJECTS_SQL = {
    "postgresql": (
        "SELECT m.id AS message_id, (m.payload ->> '{key}')::bigint AS subject_id FROM ({messages}) AS m "
        "WHERE m.payload ->> '{key}' IS NOT NULL "
        "UNION ALL "
        "SELECT m.id, (listed.notice ->> '{key}')::bigint FROM ({messages}) AS m "
        "CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(m.payload -> 'loans') = 'array' "
        "THEN m.payload -> 'loans' END) AS listed(notice) "
        "WHERE jsonb_typeof(m.payload -> 'loans') = 'array' AND listed.notice ->> '{key}' IS NOT NULL"
    ),
    "sqlite": (
        "SELECT m.id AS message_id, CAST(json_extract(m.payload, '$.{key}') AS INTEGER) AS subject_id "
        "FROM ({messages}) AS m WHERE json_extract(m.payload, '$.{key}') IS NOT NULL "
        "UNION ALL "
        "SELECT m.id, CAST(json_extract(listed.value, '$.{key}') AS INTEGER) "
        "FROM ({messages}) AS m, json_each(m.payload, '$.loans') AS listed "
        # A listed value that is not an object is not JSON text to json_extract: skipped, never an error.
        "WHERE json_type(m.payload, '$.loans') = 'array' AND listed.type = 'object' "
        "AND json_extract(listed.value, '$.{key}') IS NOT NULL"
    ),
}
SUBJECT_KEYS = ("loan_id", "hold_id")

# The pending notifications: the rows of the relay's partial index only, never the whole outbox.
PENDING_NOTIFICATIONS = "SELECT id, payload FROM lending_outboxmessage WHERE kind = %s AND status = %s"
PENDING_NOTIFICATIONS_PARAMS = (OutboxKind.NOTIFICATION.value, OutboxStatus.PENDING.value)

# The settled notifications (delivered or dead): what the retention job forgets.
SETTLED_NOTIFICATIONS = "SELECT id, payload FROM lending_outboxmessage WHERE kind = %s AND status <> %s"
SETTLED_NOTIFICATIONS_PARAMS = (OutboxKind.NOTIFICATION.value, OutboxStatus.PENDING.value)


def _named_subjects(messages: str, key: str) -> run.Variants:
    """The (message_id, subject_id) rows of `messages` for this key, in each database's spelling."""
    return run.Variants(
        postgresql=NAMED_SUBJECTS_SQL["postgresql"].format(messages=messages, key=key),
        sqlite=NAMED_SUBJECTS_SQL["sqlite"].format(messages=messages, key=key),
    )


def _subjects_of_pending_notifications(key: str) -> run.Variants:
    named = _named_subjects(PENDING_NOTIFICATIONS, key)
    return run.Variants(
        postgresql=f"SELECT DISTINCT subject_id FROM ({named.postgresql}) AS named",  # noqa: S608 - no input
        sqlite=f"SELECT DISTINCT subject_id FROM ({named.sqlite}) AS named",  # noqa: S608 - no input
    )


# Per key: (message_id, subject_id) for each pending notification and each loan (or hold) it names.
NAMED_BY_PENDING_NOTIFICATIONS = {key: _named_subjects(PENDING_NOTIFICATIONS, key) for key in SUBJECT_KEYS}

# Per key: the loans (`loan_id`) or holds (`hold_id`) that a pending notification names.
SUBJECTS_OF_PENDING_NOTIFICATIONS = {key: _subjects_of_pending_notifications(key) for key in SUBJECT_KEYS}

# The table of each key's subjects, whose anonymised rows a sweep forgets the notifications of.
SUBJECT_TABLES = {"loan_id": "lending_loan", "hold_id": "lending_hold"}


def _delete_settled_notifications_naming(key: str, *, anonymised: bool) -> run.Variants:
    """DELETE of the settled notifications that name one of the given subjects: a list of ids (one
    parameter: an array on PostgreSQL, JSON text on SQLite), or with `anonymised` every row of the
    subject's table whose email ends with the parameter's pattern (`%@anonymised.invalid`)."""
    named = _named_subjects(SETTLED_NOTIFICATIONS, key)
    if anonymised:
        # The ORM's `endswith` as both backends spell it (SQLite's LIKE ignores ASCII case there too); the
        # suffix holds no `%` or `_`, so there is nothing to escape.
        subjects = f"IN (SELECT id FROM {SUBJECT_TABLES[key]} WHERE user_email LIKE %s)"  # noqa: S608 - no input
        given = {"postgresql": subjects, "sqlite": subjects}
    else:
        given = {"postgresql": "= ANY(%s)", "sqlite": "IN (SELECT value FROM json_each(%s))"}
    delete = (
        "DELETE FROM lending_outboxmessage WHERE id IN "
        "(SELECT message_id FROM ({named}) AS named WHERE subject_id {given})"
    )
    return run.Variants(
        postgresql=delete.format(named=named.postgresql, given=given["postgresql"]),
        sqlite=delete.format(named=named.sqlite, given=given["sqlite"]),
    )


# Per key: the settled notifications naming one of these loans (or holds), deleted.
DELETE_SETTLED_NOTIFICATIONS_NAMING = {
    key: _delete_settled_notifications_naming(key, anonymised=False) for key in SUBJECT_KEYS
}
# Per key: the settled notifications naming any anonymised loan (or hold), deleted.
DELETE_SETTLED_NOTIFICATIONS_NAMING_ANONYMISED = {
    key: _delete_settled_notifications_naming(key, anonymised=True) for key in SUBJECT_KEYS
}

# PostgreSQL only, from here to SQLite's checkpoint.
COMMIT_WITHOUT_WAITING_FOR_THE_DISK = "SET LOCAL synchronous_commit TO off"

# Each row its own token, in one statement.
REPLACE_EMAILS = {
    "loan": (
        "UPDATE lending_loan SET user_email = t.token FROM unnest(%s::bigint[], %s::text[]) AS t(id, token) "
        "WHERE lending_loan.id = t.id"
    ),
    "hold": (
        "UPDATE lending_hold SET user_email = t.token FROM unnest(%s::bigint[], %s::text[]) AS t(id, token) "
        "WHERE lending_hold.id = t.id"
    ),
}

# One `anonymised` event per subject, numbered after its last one: building a thousand model
# instances costs more than the rest of the batch together.
INSERT_ANONYMISED_EVENTS = {
    "loan": (
        "INSERT INTO lending_event (loan_id, sequence, kind, occurred_at, caller, caller_key_prefix, request_id, "
        "reason, data) "
        "SELECT t.id, COALESCE((SELECT max(e.sequence) FROM lending_event e WHERE e.loan_id = t.id), 0) + 1, "
        "%s, %s, %s, %s, %s, '', '{}'::jsonb FROM unnest(%s::bigint[]) AS t(id)"
    ),
    "hold": (
        "INSERT INTO lending_event (hold_id, sequence, kind, occurred_at, caller, caller_key_prefix, request_id, "
        "reason, data) "
        "SELECT t.id, COALESCE((SELECT max(e.sequence) FROM lending_event e WHERE e.hold_id = t.id), 0) + 1, "
        "%s, %s, %s, %s, %s, '', '{}'::jsonb FROM unnest(%s::bigint[]) AS t(id)"
    ),
}
RETURNING_RECORDED = " RETURNING id, loan_id, hold_id, sequence, kind, occurred_at"

# SQLite only: the WAL written into the database file, then emptied. Answers (busy, log, checkpointed).
CHECKPOINT_WAL = "PRAGMA wal_checkpoint(TRUNCATE)"


def subjects_of_pending_notifications(key: str) -> set[int]:
    """The loans (`loan_id`) or holds (`hold_id`) that a pending notification names."""
    rows = run.fetch_all(SUBJECTS_OF_PENDING_NOTIFICATIONS[key], PENDING_NOTIFICATIONS_PARAMS * 2)
    return {subject_id for (subject_id,) in rows}


def named_by_pending_notifications(key: str) -> list[tuple[int, int]]:
    """(message_id, subject_id): each pending notification with each loan (`loan_id`) or hold
    (`hold_id`) it names; a digest names every loan it lists."""
    return run.fetch_all(NAMED_BY_PENDING_NOTIFICATIONS[key], PENDING_NOTIFICATIONS_PARAMS * 2)


def delete_settled_notifications_naming(key: str, ids: Sequence[int] | None) -> int:
    """Deletes the delivered and dead notifications that name one of these loans (`loan_id`) or holds
    (`hold_id`), or with None any anonymised one; answers the rows deleted."""
    settled = SETTLED_NOTIFICATIONS_PARAMS * 2
    if ids is None:
        return run.execute(DELETE_SETTLED_NOTIFICATIONS_NAMING_ANONYMISED[key], [*settled, f"%{ANONYMISED_SUFFIX}"])
    given = list(ids) if run.is_postgresql() else json.dumps(list(ids))
    return run.execute(DELETE_SETTLED_NOTIFICATIONS_NAMING[key], [*settled, given])


def commit_without_waiting_for_the_disk() -> None:
    """This transaction's commit returns before its WAL is flushed."""
    run.execute(COMMIT_WITHOUT_WAITING_FOR_THE_DISK)


def replace_emails(subject: Subject, ids: Sequence[int], tokens: Sequence[str]) -> int:
    """Each loan's (or hold's) email replaced by its token; answers the rows changed."""
    return run.execute(REPLACE_EMAILS[subject], [list(ids), list(tokens)])


def insert_anonymised_events(
    subject: Subject,
    ids: Sequence[int],
    *,
    kind: str,
    occurred_at: datetime,
    caller: str,
    caller_key_prefix: str,
    request_id: str,
    returning: bool,
) -> list[tuple]:
    """One event per loan (or hold), in one statement. With `returning`, answers the rows inserted,
    (id, loan_id, hold_id, sequence, kind, occurred_at); otherwise nothing."""
    params = [kind, run.db_datetime(occurred_at), caller, caller_key_prefix, request_id, list(ids)]
    if not returning:
        run.execute(INSERT_ANONYMISED_EVENTS[subject], params)
        return []
    return run.fetch_all(INSERT_ANONYMISED_EVENTS[subject] + RETURNING_RECORDED, params)


def checkpoint_wal() -> bool:
    """Whether SQLite's checkpoint was busy (a reader on an older snapshot): then the next one completes it."""
    row = run.fetch_one(CHECKPOINT_WAL)
    return row is None or bool(row[0])
