"""Firing API requests all at once, each from its own thread and database connection."""

from __future__ import annotations

import threading

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
