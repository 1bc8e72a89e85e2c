"""Prepared statements (DATABASE_PREPARED_STATEMENTS): PostgreSQL sessions bind parameters server-side
and prepare a statement run more than PREPARE_AFTER times (again after a rollback, which makes psycopg
forget them); the statements that answer whole rows list their columns, so a migration that adds a
column (a rolling deploy's) does not fail the release still running."""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction

import lending.db
from lending.db import locks, run
from lending.models import BookStock
from tests.processes import ROOT, database_url

pytestmark = pytest.mark.postgres

# A SELECT or RETURNING of every column: what a prepared statement may not answer (its shape would change).
EVERY_COLUMN = re.compile(r"\b(SELECT|RETURNING)\s+(\w+\.)?\*", re.IGNORECASE)


def _prepared(fragment: str) -> int:
    """How many of this session's prepared statements contain `fragment`."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", [f"%{fragment}%"])
        return cursor.fetchone()[0]


def _prepare(statement: str, params: list) -> None:
    """Runs the statement past the threshold, so that the session holds it prepared."""
    for _ in range(settings.PREPARE_AFTER + 1):
        run.fetch_all(statement, params)


@pytest.mark.django_db
def test_sessions_bind_server_side_and_prepare_repeated_statements():
    with connection.cursor() as cursor:
        assert cursor.cursor.__class__.__name__ == "ServerBindingCursor"
    assert connection.connection.prepare_threshold == settings.PREPARE_AFTER
    assert _prepared("title IS NOT NULL") == 0
    _prepare("SELECT count(*) FROM lending_bookstock WHERE book_id = %s AND title IS NOT NULL", [1])
    assert _prepared("title IS NOT NULL") == 1


@pytest.mark.django_db(transaction=True)
def test_a_refused_write_costs_the_prepared_statements_only_until_their_second_run():
    """A rollback (a refused write) makes psycopg deallocate every prepared statement of the connection;
    the next runs prepare them again from the second, not the sixth (psycopg's default)."""
    statement = "SELECT copies FROM lending_bookstock WHERE book_id = %s AND version >= 0"
    _prepare(statement, [1])
    assert _prepared("version >= 0") == 1

    class Refused(Exception):
        pass

    with pytest.raises(Refused), transaction.atomic():
        run.fetch_all(statement, [1])
        raise Refused
    assert _prepared("version >= 0") == 0
    for _ in range(settings.PREPARE_AFTER + 1):
        run.fetch_all(statement, [1])
    assert _prepared("version >= 0") == 1


@pytest.mark.django_db(transaction=True)
def test_a_prepared_row_statement_survives_a_new_column():
    """The old release's lock of a book, prepared, then a migration adds a column: the next lock works.
    The same statement written `SELECT *` fails there (the reason the door lists columns)."""
    BookStock.objects.create(book_id=41, title="Dune", copies=2)
    star = "SELECT * FROM lending_bookstock WHERE book_id = %s FOR UPDATE"
    try:
        with transaction.atomic():
            _prepare(locks.LOCK_BOOK.postgresql, [41])
            _prepare(star, [41])
        _migrate_on_another_connection("ALTER TABLE lending_bookstock ADD COLUMN shelf text")
        with transaction.atomic():
            assert locks.lock_book(41).copies == 2
        with pytest.raises(DatabaseError, match="cached plan must not change result type"), transaction.atomic():
            run.fetch_all(star, [41])
    finally:
        _migrate_on_another_connection("ALTER TABLE lending_bookstock DROP COLUMN IF EXISTS shelf")


def _migrate_on_another_connection(statement: str) -> None:
    """As the migration Job does: its own session (psycopg forgets this session's prepared statements
    after an ALTER it runs itself, which would hide the failure)."""
    migrator = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with migrator.cursor() as cursor:
            cursor.execute(statement)
    finally:
        migrator.close()


def _postgresql_statements() -> dict[str, str]:
    """Every statement constant of lending/db, in PostgreSQL's text (a Variants' postgresql side)."""
    found = {}
    for module_info in pkgutil.iter_modules(lending.db.__path__):
        module = importlib.import_module(f"lending.db.{module_info.name}")
        for name, value in vars(module).items():
            if isinstance(value, run.Variants):
                value = value.postgresql
            if name.isupper() and isinstance(value, str):
                found[f"{module_info.name}.{name}"] = value
    return found


def test_no_statement_of_the_door_answers_every_column():
    """`counts.*` (lending/db/state.py) reads the statement's own subquery, whose shape is its text."""
    statements = _postgresql_statements()
    assert "locks.LOCK_BOOK" in statements and "outbox.CLAIMABLE" in statements
    offenders = [name for name, text in statements.items() if EVERY_COLUMN.search(text.replace("counts.*", ""))]
    assert offenders == []


def test_the_setting_off_binds_client_side_and_prepares_nothing():
    """Behind a PgBouncer older than 1.21 (no max_prepared_statements): DATABASE_PREPARED_STATEMENTS=false."""
    code = (
        "from django.db import connection\n"
        "with connection.cursor() as c:\n"
        "    print(type(c.cursor).__name__, connection.connection.prepare_threshold)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": database_url()}
    answers = {}
    for value in ("false", "true"):
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
            cwd=ROOT,
            env={**env, "DATABASE_PREPARED_STATEMENTS": value},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        answers[value] = done.stdout.split()[-2:]
    assert answers == {"false": ["Cursor", "None"], "true": ["ServerBindingCursor", str(settings.PREPARE_AFTER)]}


def test_run_columns_lists_the_models_columns_in_order():
    assert run.columns(BookStock) == "book_id, title, copies, version, updated_at"
