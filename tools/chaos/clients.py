"""Careful clients: threads that lend and return books over their own patrons, retrying with the same
Idempotency-Key on 503, 429, 409 "still in progress" and dropped connections, and writing what was
acknowledged into the ledger."""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import requests

from tools.chaos.stats import Ledger, Stats

LEND, RETURN = "/lendBook/", "/returnBook/"


@dataclass
class Outcome:
    status: int | None  # None: never acknowledged (gave up)
    body: Any = None  # the decoded JSON answer
    key: str = ""


class Client(threading.Thread):
    OP_DEADLINE = 90.0  # seconds one operation keeps retrying before it counts as never acknowledged

    def __init__(
        self,
        index: int,
        users: list[str],
        books: list[int],
        urls: list[str],
        stop: threading.Event,
        stats: Stats,
        ledger: Ledger,
        seed: int,
    ) -> None:
        super().__init__(name=f"client{index}", daemon=True)
        self.users, self.books, self.urls = list(users), books, urls
        self.stop, self.stats, self.ledger = stop, stats, ledger
        self.random = random.Random(seed)
        self.session = requests.Session()
        self.held: dict[str, dict[int, int]] = {user: {} for user in users}  # user -> book -> loan id

    def run(self) -> None:
        while not self.stop.is_set() and self.users:
            user = self.random.choice(self.users)
            held = self.held[user]
            if held and (len(held) >= 3 or self.random.random() < 0.45):
                self.return_book(user, self.random.choice(list(held)))
            else:
                self.lend(user, self.random.choice([b for b in self.books if b not in held]))
            if self.random.random() < 0.03:
                self.read()

    def lend(self, user: str, book: int) -> None:
        outcome = self.call(LEND, {"user_email": user, "book_id": book})
        self.stats.add("lend attempts")
        if outcome.status == 201:
            loan = outcome.body
            if (loan.get("user_email"), loan.get("book_id"), loan.get("status")) != (user, book, "ACTIVE"):
                self.stats.violation(f"lend {user} {book} acknowledged with a wrong loan: {loan}")
            self.held[user][book] = loan["id"]
            with self.ledger.lock:
                self.ledger.lends[loan["id"]] = (user, book)
            self.stats.add("lends acknowledged")
        elif outcome.status == 409 and _code(outcome.body) == "no_copy_available":
            self.stats.add("lends refused: no copy available")
        else:
            self.settle_unexpected("lend", user, book, outcome)

    def return_book(self, user: str, book: int) -> None:
        loan_id = self.held[user][book]
        outcome = self.call(RETURN, {"user_email": user, "book_id": book})
        self.stats.add("return attempts")
        if outcome.status == 200:
            loan = outcome.body
            if loan.get("id") != loan_id or loan.get("status") != "RETURNED":
                self.stats.violation(f"return of loan {loan_id} acknowledged with a wrong loan: {loan}")
            del self.held[user][book]
            with self.ledger.lock:
                self.ledger.returns.add(loan_id)
            self.stats.add("returns acknowledged")
        else:
            self.settle_unexpected("return", user, book, outcome)

    def settle_unexpected(self, op: str, user: str, book: int, outcome: Outcome) -> None:
        if outcome.status is None:
            # Never acknowledged: the write may or may not have happened; stop using this patron.
            self.stats.add(f"{op}s never acknowledged")
            with self.ledger.lock:
                self.ledger.uncertain.add((user, book))
            self.users.remove(user)
            return
        self.stats.violation(f"{op} {user} book {book}: unexpected HTTP {outcome.status} {outcome.body}")
        self.users.remove(user)

    def read(self) -> None:
        url = self.random.choice(self.urls)
        with contextlib.suppress(requests.RequestException):
            response = self.session.get(f"{url}/getExpiredBooks/", timeout=(2, 20))
            self.stats.status("getExpiredBooks", response.status_code)
            if response.status_code >= 500 and response.status_code != 503:
                self.stats.violation(f"GET /getExpiredBooks/ answered {response.status_code}")

    def call(self, path: str, body: dict) -> Outcome:
        """POST until an answer that is not "retry later", always with the same Idempotency-Key."""
        key = uuid.uuid4().hex
        headers = {"Idempotency-Key": key, "X-Request-ID": f"chaos-{key[:16]}"}
        started = time.monotonic()
        pause = 0.05
        for attempt in range(10_000):
            if time.monotonic() - started > self.OP_DEADLINE:
                return Outcome(None, key=key)
            if attempt:
                self.stats.add("retries")
                time.sleep(pause * self.random.uniform(0.5, 1.0))
                pause = min(pause * 2, 1.0)
            url = self.random.choice(self.urls)
            try:
                response = self.session.post(f"{url}{path}", json=body, headers=headers, timeout=(2, 20))
            except requests.RequestException:
                self.stats.add("dropped connections")
                self.session.close()
                continue
            status = response.status_code
            self.stats.status(path, status)
            try:
                data = response.json()
            except ValueError:
                self.stats.violation(f"POST {path} answered HTTP {status} with a body that is not JSON")
                continue
            if response.headers.get("Idempotent-Replayed") == "true":
                self.stats.add("replayed answers")
            if status >= 500 and status != 503:
                self.stats.violation(f"POST {path} answered HTTP {status}: {data}")
                continue
            if status == 503:
                if not response.headers.get("Retry-After"):
                    self.stats.violation(f"POST {path} answered 503 without Retry-After")
                continue
            if status == 429 or (status == 409 and _code(data) == "idempotency_request_in_progress"):
                continue
            return Outcome(status, data, key)
        return Outcome(None, key=key)


def _code(body) -> str | None:
    return body.get("error", {}).get("code") if isinstance(body, dict) else None
