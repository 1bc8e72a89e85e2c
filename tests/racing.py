"""Firing API requests all at once, each from its own thread and database connection; a table held by
another session."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import connection
from rest_framework.test import APIClient


def race(requests: list[tuple[str, dict]]) -> list[tuple[int, str | None]]:
    """All requests at once, each from its own thread and connection: (status, error code) each."""
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
