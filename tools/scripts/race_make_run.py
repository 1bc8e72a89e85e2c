"""Checks a running `make run` from outside: 50 patrons race for a 1-copy and a 3-copy book (exactly
1 and 3 lends may succeed), then one lend and one return are timed at the reference peers
(availability published, one notification per event).

    make run            # in one terminal
    .venv/bin/python tools/scripts/race_make_run.py
"""

from __future__ import annotations

import collections
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

SERVICE, BOOKS, USERS, NOTICES = (f"http://127.0.0.1:{port}" for port in (8000, 8001, 8002, 8003))


def call(method: str, url: str, body: dict | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, method=method, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def new_patron(tag: str) -> str:
    return call("POST", f"{USERS}/users", {"email": f"{tag}-{uuid.uuid4().hex[:8]}@example.com"})[1]["email"]


def new_book(title: str, copies: int) -> int:
    """A book the service has never lent: the reference peers start afresh with each `make run`, but
    the service's database keeps the loans of the books that had the same ids before."""
    while True:
        book_id = call("POST", f"{BOOKS}/books", {"title": title, "quantity": copies})[1]["id"]
        if call("GET", f"{SERVICE}/loans/?book_id={book_id}")[1]["count"] == 0:
            return book_id


def race(book_id: int, patrons: int = 50) -> dict[int, int]:
    """Every patron asks for the book at the same instant; returns the count of each status."""
    emails = [new_patron("racer") for _ in range(patrons)]
    start, statuses = threading.Barrier(patrons), collections.Counter[int]()

    def lend(email: str) -> None:
        start.wait()
        statuses[call("POST", f"{SERVICE}/lendBook/", {"user_email": email, "book_id": book_id})[0]] += 1

    threads = [threading.Thread(target=lend, args=(email,)) for email in emails]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return dict(statuses)


def seconds_until(condition, timeout: float = 10.0) -> float | None:
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > timeout:
            return None
        time.sleep(0.01)
    return round(time.perf_counter() - started, 3)


def main() -> None:
    print("50 lends of a 1-copy book:", race(new_book("Race, one copy", 1)))
    print("50 lends of a 3-copy book:", race(new_book("Race, three copies", 3)))

    book, patron = new_book("Timed", 1), new_patron("timed")

    def available() -> bool:
        return call("GET", f"{BOOKS}/getBooks/{book}")[1]["available"]

    def notices() -> list[str]:
        return [n["message_type"] for n in call("GET", f"{NOTICES}/notifications")[1] if n["user_email"] == patron]

    body = {"user_email": patron, "book_id": book}
    print(
        "lend:",
        call("POST", f"{SERVICE}/lendBook/", body)[0],
        "| available=false after",
        seconds_until(lambda: available() is False),
        "s",
        "| notification after",
        seconds_until(lambda: len(notices()) == 1),
        "s more",
    )
    print(
        "return:",
        call("POST", f"{SERVICE}/returnBook/", body)[0],
        "| available=true after",
        seconds_until(lambda: available() is True),
        "s",
        "| notification after",
        seconds_until(lambda: len(notices()) == 2),
        "s more",
    )
    time.sleep(2)
    print("notifications of the patron after 2 s more:", notices())


if __name__ == "__main__":
    main()
