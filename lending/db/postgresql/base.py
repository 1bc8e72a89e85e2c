"""Django's PostgreSQL backend, with the per-request health check (CONN_HEALTH_CHECKS) made without a
round trip.

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

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
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
