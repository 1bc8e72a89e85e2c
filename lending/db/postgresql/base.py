"""Django's PostgreSQL backend, with the per-request health check (CONN_HEALTH_CHECKS) made without a
round trip, and a cursor kept for the statements of `lending.db` (`door_cursor`).

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

import psycopg
from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    # psycopg's cursor for `lending.db.run`'s statements on this connection (`door_cursor`).
    _door_cursor: psycopg.Cursor | None = None

    def door_cursor(self) -> psycopg.Cursor:
        """psycopg's own cursor, kept for the connection's life, for the statements of `lending.db`: one
        statement through it costs about half the client CPU of one through Django's cursor, which is
        made anew and wrapped twice for every statement (`lending.db.run` wraps the errors and the
        rollback as Django does). Checked and connected as Django's `cursor()` does first."""
        self.close_if_health_check_failed()
        if self.connection is None:
            self.ensure_connection()
        cursor = self._door_cursor
        if cursor is None or cursor.connection is not self.connection or cursor.closed:
            cursor = self._door_cursor = self.connection.cursor()
        return cursor

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
