"""Firing API requests all at once, each from its own thread and database connection; a table held by
another session; one crowd of connections at a time.

`make test` runs the tests in two processes (pytest-xdist) against one PostgreSQL server, whose
`max_connections` is 100 by default. A race opens a connection per request: two races of 50 at once would
be refused ("too many clients already"). A test that opens more than `CROWD` connections at once is marked
`many_connections`, and holds the crowd lock (`one_crowd_at_a_time`) while it runs: at most one such test at a
time, beside tests that open a few."""

from __future__ import annotations

import fcntl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from django.db import connection
from rest_framework.test import APIClient

# More connections than this at once, and a test is a crowd: it must be marked `many_connections`.
CROWD = 10
_crowd_held = threading.Event()


@contextmanager
def one_crowd_at_a_time() -> Iterator[None]:
    """Holds the crowd lock until the block ends: a file lock, so that every test process on this machine
    sees it, `make test`'s workers and a second run's alike. One for the machine, whichever server a run
    uses: one file, and crowds rarely meet."""
    with open(Path(tempfile.gettempdir()) / "lending-tests-crowd.lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        _crowd_held.set()
        try:
            yield
        finally:
            _crowd_held.clear()
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def require_crowd_lock(connections: int) -> None:
    """Fails a test that opens `connections` at once without the crowd lock, naming the marker."""
    if connections > CROWD and not _crowd_held.is_set():
        raise AssertionError(
            f"{connections} connections at once: mark the test `@pytest.mark.many_connections` "
            "(tests/racing.py), so that no other crowd runs against the server meanwhile"
        )


def race(requests: list[tuple[str, dict]]) -> list[tuple[int, str | None]]:
    """All requests at once, each from its own thread and connection: (status, error code) each."""
    require_crowd_lock(len(requests))
    barrier = threading.Barrier(len(requests))
    answers: list[tuple[int, str | None]] = [(0, None)] * len(requests)

    def run(index: int, path: str, body: dict) -> None:
        try:
            client = APIClient()
            barrier.wait()
            response = client.post(path, body, format="json")
            error = response.json().get("error") if response.status_code >= 400 else None
            answers[index] = (response.status_code, error["code"] if error else None)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, path, body)) for i, (path, body) in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return answers


@contextmanager
def table_locked_elsewhere(table: str, *, lock_timeout: str = "100ms") -> Iterator[None]:
    """Another session holds `table` (ACCESS EXCLUSIVE) while this process's connections give up on a
    lock after `lock_timeout`: set at connect time, so a connection the code under test opens anew keeps
    it. PostgreSQL only."""
    options = connection.settings_dict["OPTIONS"]
    saved = options.get("options")
    options["options"] = f"-c lock_timeout={lock_timeout}"
    connection.close()
    blocker = psycopg.connect(**connection.get_connection_params())
    try:
        blocker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        blocker.rollback()
        blocker.close()
        if saved is None:
            options.pop("options")
        else:
            options["options"] = saved
        connection.close()
