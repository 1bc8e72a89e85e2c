"""When the database cannot serve a write in time (no connection to be had, a lock or statement
timeout, a deadlock), the caller gets what a peer failure gets: 503 with `Retry-After` in the one
error shape, never a 500 that says "a bug"."""

import pytest
from django.db import connection

from tests.conftest import post_json
from tests.racing import table_locked_elsewhere

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def book_stock_locked():
    """Another session holds the book stock table; this process's connections give up after 100 ms."""
    with table_locked_elsewhere("lending_bookstock"):
        yield


def test_a_lend_that_times_out_on_a_lock_is_503_with_retry_after(api, patron, book, book_stock_locked):
    answer = post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})
    assert answer.status_code == 503, answer.content
    assert answer.json()["error"]["code"] == "database_unavailable"
    assert int(answer["Retry-After"]) >= 1


def test_a_database_refusing_connections_is_503_not_a_bug(api, patron, book):
    saved_port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = "1"  # nothing listens there: as a server that is full or down
    try:
        answer = post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})
    finally:
        connection.close()
        connection.settings_dict["PORT"] = saved_port
    assert answer.status_code == 503, answer.content
    assert answer.json()["error"]["code"] == "database_unavailable"
