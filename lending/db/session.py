"""The session's statements, each on the connection it is given (a process's start-up check may use
its own): whether the database answers, the PostgreSQL session limits in force, and the role's own
defaults for them (`lending.db_session`, `lending.api.health`)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.backends.base.base import BaseDatabaseWrapper

DATABASE_ANSWERS = "SELECT 1"

# PostgreSQL only, below.
READ_SETTINGS = "SELECT name, setting::bigint FROM pg_settings WHERE name = ANY(%s)"
CURRENT_ROLE = "SELECT current_user"
READ_ROLE_DEFAULTS = (
    "SELECT unnest(s.setconfig) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
    "WHERE r.rolname = %s AND s.setdatabase = 0"
)
# ALTER ROLE takes no parameters: the role is quoted as an identifier, the setting is one of
# `SETTINGS_A_ROLE_MAY_SET` and the value an integer.
SET_ROLE_DEFAULT = "ALTER ROLE {role} SET {setting} = '{milliseconds}ms'"
RESET_ROLE_DEFAULT = "ALTER ROLE {role} RESET {setting}"
SETTINGS_A_ROLE_MAY_SET = frozenset({"statement_timeout", "lock_timeout"})


def check_database_answers(connection: BaseDatabaseWrapper) -> None:
    """Raises whatever the backend raises when the database cannot be reached."""
    with connection.cursor() as cursor:
        cursor.execute(DATABASE_ANSWERS)


def read_settings(connection: BaseDatabaseWrapper, names: Iterable[str]) -> dict[str, int]:
    """These settings of the connection's session, as pg_settings states them (milliseconds for a
    timeout)."""
    with connection.cursor() as cursor:
        cursor.execute(READ_SETTINGS, [list(names)])
        return dict(cursor.fetchall())


def current_role(connection: BaseDatabaseWrapper) -> str:
    with connection.cursor() as cursor:
        cursor.execute(CURRENT_ROLE)
        return cursor.fetchone()[0]


def read_role_defaults(connection: BaseDatabaseWrapper, role: str) -> dict[str, str]:
    """The role's own defaults for every database (ALTER ROLE ... SET), as name -> value."""
    with connection.cursor() as cursor:
        cursor.execute(READ_ROLE_DEFAULTS, [role])
        return dict(row[0].split("=", 1) for row in cursor.fetchall())


def set_role_default(connection: BaseDatabaseWrapper, role: str, setting: str, milliseconds: int) -> None:
    _alter_role(connection, SET_ROLE_DEFAULT, role, setting, milliseconds=int(milliseconds))


def reset_role_default(connection: BaseDatabaseWrapper, role: str, setting: str) -> None:
    _alter_role(connection, RESET_ROLE_DEFAULT, role, setting)


def _alter_role(connection: BaseDatabaseWrapper, statement: str, role: str, setting: str, **values: int) -> None:
    if setting not in SETTINGS_A_ROLE_MAY_SET:
        raise ValueError(f"not a setting a role's default is kept for: {setting!r}")
    with connection.cursor() as cursor:
        cursor.execute(statement.format(role=connection.ops.quote_name(role), setting=setting, **values))
