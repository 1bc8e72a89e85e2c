"""The per-request health check of a kept PostgreSQL connection (lending/db/postgresql/base.py): no round
trip, and a connection the server ended is still found unusable, so the next request opens a new one."""

from __future__ import annotations

import select
import time

import psycopg
import pytest
from django.db import close_old_connections, connection, connections

from tests.conftest import post_json

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def terminate_from_elsewhere(backend_pid: int) -> None:
    """Ends the session as a restart or an operator would, from another connection, and waits until its
    notice has reached our socket (a wait for an event, not a timing)."""
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        dbname=settings["NAME"],
        password=settings["PASSWORD"] or None,
        autocommit=True,
    ) as other:
        assert other.execute("SELECT pg_terminate_backend(%s)", [backend_pid]).fetchone() == (True,)
    deadline = time.monotonic() + 10
    while not select.select([connection.connection.fileno()], [], [], 0.1)[0]:
        assert time.monotonic() < deadline, "the server's notice never came"


@pytest.fixture(autouse=True)
def _fresh_connection_after():
    """A test that ended its session leaves the next one (and the database's flush) a new connection."""
    yield
    connection.close()


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_a_live_idle_connection_is_usable_without_a_query(monkeypatch):
    backend_pid()
    sent = []
    for method in ("cursor", "execute"):  # Django's own check: a cursor of the raw connection, `SELECT 1`
        monkeypatch.setattr(connection.connection, method, lambda *args, **kwargs: sent.append(args))

    assert connection.is_usable()
    assert sent == []


def test_a_connection_the_server_ended_is_not_usable():
    terminate_from_elsewhere(backend_pid())

    assert not connection.is_usable()


def test_a_connection_inside_a_transaction_is_not_taken_for_idle():
    backend_pid()
    connection.set_autocommit(False)
    try:
        backend_pid()  # BEGIN sent: the session is in a transaction
        assert not connection.is_usable()
    finally:
        connection.rollback()
        connection.set_autocommit(True)


def test_the_request_after_the_server_ended_its_session_gets_a_new_one(api, peers, patron, book):
    # The connection is kept between requests and checked before each, as in production.
    kept = {name: connections["default"].settings_dict[name] for name in ("CONN_MAX_AGE", "CONN_HEALTH_CHECKS")}
    connections["default"].settings_dict.update(CONN_MAX_AGE=60, CONN_HEALTH_CHECKS=True)
    try:
        first = post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})
        assert first.status_code == 201, first.content
        ended = backend_pid()
        terminate_from_elsewhere(ended)
        close_old_connections()  # what a server's request_started does (Django's test client does not)

        returned = post_json(api, "/returnBook/", {"user_email": patron, "book_id": book["id"]})

        assert returned.status_code == 200, returned.content
        assert backend_pid() != ended
    finally:
        connections["default"].settings_dict.update(kept)
