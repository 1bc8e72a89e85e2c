"""The PostgreSQL session limits (statement_timeout, lock_timeout): what is in force, and setting
them on the database role.

The service sends its limits as the connection's libpq `options` (config/settings.py), but a pooler
in front of PostgreSQL drops that startup parameter (PgBouncer's `ignore_startup_parameters`, which a
CloudNativePG Pooler always sets). So the migration Job, which reaches the primary directly, also
makes them the role's own defaults (`manage.py apply_role_timeouts`), and every long-running process
(web worker, relay, scheduler) reads back at start what its sessions really get, warning when that
differs from its settings: a deploy behind a pooler without the role's limits is seen at once.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from lending.db import session as db_session

logger = logging.getLogger(__name__)

# In the order they are logged; both are in milliseconds in pg_settings.
LIMITS = ("statement_timeout", "lock_timeout")


def shown(milliseconds: int) -> str:
    """A limit as PostgreSQL's SHOW prints it (15000 -> "15s", 0 -> "0")."""
    if milliseconds == 0:
        return "0"
    for unit, size in (("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if milliseconds % size == 0:
            return f"{milliseconds // size}{unit}"
    return f"{milliseconds}ms"


def expected(name: str) -> int:
    """The limit the settings ask for (DATABASE_*_TIMEOUT_MS), in milliseconds; 0: the server's."""
    return settings.DATABASE_SESSION_TIMEOUTS_MS[name]


def in_force(connection: BaseDatabaseWrapper) -> dict[str, int]:
    """The limits of this connection's session, in milliseconds."""
    return db_session.read_settings(connection, LIMITS)


def log_session_timeouts(process: str, connection: BaseDatabaseWrapper | None = None) -> list[str]:
    """Log the limits in force for `process`; warn for each that differs from the settings (a limit
    set to 0 there means "the server's default", which is not compared). Returns the names that
    differ. Never raises: a database that cannot be reached yet is the health checks' business."""
    connection = connection or connections["default"]
    if connection.vendor != "postgresql":
        return []
    try:
        actual = in_force(connection)
    except DatabaseError as error:
        logger.warning("%s: database session limits could not be read: %s", process, error)
        return []
    finally:
        # The check's connection is not one a request thread or the loop would reuse.
        connection.close()
    logger.info(
        "%s: database session limits in force: %s",
        process,
        " ".join(f"{name}={shown(actual[name])}" for name in LIMITS),
    )
    differing = [name for name in LIMITS if expected(name) and actual[name] != expected(name)]
    for name in differing:
        logger.warning(
            "%s: %s is %s in force, %s expected (DATABASE_%s_MS): behind a pooler that drops the "
            "connection's options, run `manage.py apply_role_timeouts` (the migration Job does)",
            process,
            name,
            shown(actual[name]),
            shown(expected(name)),
            name.upper(),
        )
    return differing


def apply_role_timeouts(role: str | None = None, connection: BaseDatabaseWrapper | None = None) -> dict[str, str]:
    """Make the settings' limits the role's own defaults (ALTER ROLE ... SET; RESET for a 0), so a
    session opened without `options` gets them too. `role`: the connection's user by default (a
    role may always set its own defaults). Idempotent: a limit already in place is left alone.
    Returns, per limit, "set", "reset" or "unchanged"."""
    connection = connection or connections["default"]
    if role is None:
        role = db_session.current_role(connection)
    current = db_session.read_role_defaults(connection, role)
    outcome = {}
    for name in LIMITS:
        milliseconds = expected(name)
        wanted = f"{milliseconds}ms" if milliseconds else None
        if current.get(name) == wanted:
            outcome[name] = "unchanged"
        elif wanted is None:
            db_session.reset_role_default(connection, role, name)
            outcome[name] = "reset"
        else:
            db_session.set_role_default(connection, role, name, milliseconds)
            outcome[name] = "set"
    return outcome
