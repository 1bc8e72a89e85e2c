"""Django's PostgreSQL backend, with the per-request health check (CONN_HEALTH_CHECKS) made without a
round trip, and cursors kept for the statements of `lending.db` (`door_cursor`).

Django checks a kept connection before each request's first query with `SELECT 1`: one round trip per
request, about as much of a lend's PostgreSQL time as one of its own statements. A server that ends a
session (a restart, a failover, `pg_terminate_backend`, `idle_session_timeout`, a pooler closing it) sends
its reason before closing the socket, and a peer that resets the connection makes it readable too; while
a connection sits idle between requests nothing else arrives on it (this service does not LISTEN on the
web's connections). So an idle connection whose socket has nothing to read is alive, as far as a round
trip could tell at that moment; one that has something to read, or is not idle, is closed and a new one
opened, as after a failed `SELECT 1`. A connection that vanished without a word (a cable pulled) fails its
request's first statement, which is a 503 the client retries, as it would have been after the check.
"""

from __future__ import annotations

import select
from datetime import UTC

import psycopg
from django.db.backends.postgresql import base
from psycopg import pq

# psycopg's own reader of a `timestamptz` column: compiled (psycopg-binary), and it answers the
# session's time zone, UTC as `datetime.UTC`. Django reads them through a Python subclass of psycopg's
# pure-Python reader that sets its own time zone on each value: about ten times its CPU (5.5 against
# 0.5 µs a value), three or four values in every loan a write reads back.
COMPILED_TIMESTAMPTZ_LOADER = psycopg.adapters.get_loader(psycopg.postgres.types["timestamptz"].oid, pq.Format.TEXT)

# The statements of `lending.db` are a few dozen texts; a text built for a number of rows (a batch of
# outbox messages, of history events) adds one per size seen.
MAX_DOOR_CURSORS = 256


class DatabaseWrapper(base.DatabaseWrapper):
    # psycopg's cursors for `lending.db.run`'s statements on this connection, one per statement text
    # (`door_cursor`), and the connection they belong to.
    _door_cursors: dict[str, psycopg.Cursor]
    _door_cursors_of: psycopg.Connection | None = None

    def door_cursor(self, statement: str) -> psycopg.Cursor:
        """psycopg's own cursor for `statement`, kept for the connection's life, for the statements of
        `lending.db`: one statement through it costs about half the client CPU of one through Django's
        cursor, which is made anew and wrapped twice for every statement (`lending.db.run` wraps the
        errors and the rollback as Django does). One cursor per statement text, because psycopg keeps a
        cursor's adapters (how each parameter type is sent, how each column is read) only while the
        cursor runs the same text again: a cursor shared by a lend's statements built them anew for
        each. Checked and connected as Django's `cursor()` does first."""
        self.close_if_health_check_failed()
        if self.connection is None:
            self.ensure_connection()
        if self._door_cursors_of is not self.connection:
            self._door_cursors, self._door_cursors_of = {}, self.connection
        cursor = self._door_cursors.get(statement)
        if cursor is None or cursor.closed:
            if len(self._door_cursors) >= MAX_DOOR_CURSORS:  # texts built with a varying number of rows
                self._door_cursors.clear()
            cursor = self._door_cursors[statement] = self.connection.cursor()
            # On each kept cursor, not on the connection: Django's own `cursor()` reads its reader's
            # `timezone` from the connection's adapters, which the compiled reader does not have.
            if self._answers_utc():
                cursor.adapters.register_loader("timestamptz", COMPILED_TIMESTAMPTZ_LOADER)
        return cursor

    def _answers_utc(self) -> bool:
        """Whether psycopg's compiled reader gives the very values Django's gives: Django wants UTC
        date-times (USE_TZ, no TIME_ZONE of the database's own) and the session answers in UTC (which
        Django's connection set-up makes sure of)."""
        assert self.connection is not None
        return self.timezone is UTC and self.connection.info.parameter_status("TimeZone") == "UTC"

    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        if connection.info.transaction_status != pq.TransactionStatus.IDLE:
            return False
        try:
            readable, _, _ = select.select([connection.fileno()], [], [], 0)
        except (OSError, ValueError):  # the socket is gone
            return False
        return not readable
