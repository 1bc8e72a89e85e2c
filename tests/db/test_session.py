"""lending/db/session.py: whether the database answers, the session limits in force, and the role's
own defaults for them."""

from __future__ import annotations

import os

import pytest
from django.db import connection, transaction

from lending.db import run
from lending.db import session as db_session

pytestmark = pytest.mark.django_db


def test_check_database_answers_on_either_backend():
    db_session.check_database_answers(connection)


@pytest.mark.postgres
def test_read_settings_answers_the_limits_in_milliseconds():
    with transaction.atomic():
        run.execute("SET LOCAL statement_timeout = '2500ms'")
        run.execute("SET LOCAL lock_timeout = '3s'")
        assert db_session.read_settings(connection, ["statement_timeout", "lock_timeout"]) == {
            "statement_timeout": 2500,
            "lock_timeout": 3000,
        }


@pytest.mark.postgres
def test_current_role_is_the_connections_user():
    assert db_session.current_role(connection) == run.fetch_one("SELECT session_user")[0]


@pytest.fixture
def role():
    """A role created in the test's transaction (rolled back with it)."""
    name = f"lending_db_session_{os.getpid()}"
    run.execute(f'CREATE ROLE "{name}"')
    return name


@pytest.mark.postgres
def test_a_roles_defaults_set_read_and_reset(role):
    assert db_session.read_role_defaults(connection, role) == {}

    db_session.set_role_default(connection, role, "statement_timeout", 2500)
    db_session.set_role_default(connection, role, "lock_timeout", 750)
    assert db_session.read_role_defaults(connection, role) == {"statement_timeout": "2500ms", "lock_timeout": "750ms"}

    db_session.reset_role_default(connection, role, "statement_timeout")
    assert db_session.read_role_defaults(connection, role) == {"lock_timeout": "750ms"}


def test_a_role_default_is_kept_for_the_limits_only():
    with pytest.raises(ValueError, match="not a setting"):
        db_session.set_role_default(connection, "anyone", "search_path", 1)
