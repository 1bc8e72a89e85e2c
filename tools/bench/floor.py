"""The floor of `make bench`: the least a correct lend costs in Python here, to measure the service against.

A plain WSGI function (no framework, no middleware) served by gunicorn with the service's worker settings
(tools/bench/floor_gunicorn.py), psycopg 3 (a small pool of connections per worker, FLOOR_DB_CONNECTIONS, 8 by
default: the bench's PostgreSQL also serves the service's 32) and urllib3 to the same reference peers:

- `POST /lendBook/` `{"user_email", "book_id"}`: two peer GETs (the patron is active, the book's copies),
  then one transaction of two statements sent in one round trip (psycopg's pipeline mode):
  1. `LOCK_BOOK`: upsert the book's row of the service's own `lending_bookstock` (title, copies, version + 1).
     The row lock it takes is the service's per-book lock, held until commit: lends of one book queue here.
  2. `LEND`: one statement that inserts the loan only if a copy is free and the patron holds no open loan of
     the book, together with its two outbox rows (the availability update and the lending confirmation),
     into the service's `lending_loan` and `lending_outboxmessage`, so the service's relay delivers them.
  201 with the loan as the service shows it; 409 `no_copy_available` / `already_borrowed`; 404
  `user_not_found` / `book_not_found`; 403 `user_inactive`.
- `POST /returnBook/` likewise: `LOCK_BOOK_FOR_RETURN` (the version bump, no peer call), then `RETURN`, which
  closes the open loan and writes its two outbox rows in one statement; 200 with the loan, 404
  `loan_not_found`.

Why two statements and not one: under READ COMMITTED every statement reads one snapshot, taken when it
starts. A single statement that waited for the book lock inside itself would then count the open loans as
they were before the lend it waited for committed, and lend the same copy twice. The second statement
starts after the lock is granted, so its snapshot holds every loan committed before: the count is exact.
(The partial unique index `one_open_loan_per_user_and_book` backs "one open loan per patron and book".)

What the floor leaves out, on purpose: holds, blocks, loan limits, closed days, history, idempotency,
logs, metrics, authentication. Due dates are the end of the library's day LOAN_PERIOD_DAYS from now.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import quote

import psycopg
import urllib3

# The book's row, refreshed from the Book service's answer (as the service's own lend does), locked.
LOCK_BOOK = """
INSERT INTO lending_bookstock (book_id, title, copies, version, updated_at)
VALUES (%(book_id)s, %(title)s, %(copies)s, 0, now())
ON CONFLICT (book_id) DO UPDATE SET title = EXCLUDED.title, copies = EXCLUDED.copies, updated_at = now()
"""

# A write bumps the book's version (the relay publishes a book's state only at the version it read).
BUMP_VERSION = "UPDATE lending_bookstock SET version = version + 1 WHERE book_id = %(book_id)s AND EXISTS"


def outbox_rows(message_type: str) -> str:
    """The outbox rows of a write, one pair per row of its `loan`: the availability update (its payload
    empty: the relay publishes the book's state at delivery) and the patron's notification, as the
    service's own outbox holds them; every column without a database default is written."""
    return f"""
    INSERT INTO lending_outboxmessage
        (key, kind, book_id, payload, status, attempts, claims, next_attempt_at, last_error, created_at, traceparent)
    SELECT gen_random_uuid(), message.kind, loan.book_id, message.payload, 'PENDING', 0, 0, now(), '', now(), ''
    FROM loan, LATERAL (VALUES
        ('availability', '{{}}'::jsonb),
        ('notification', jsonb_build_object(
            'user_email', loan.user_email, 'message_type', '{message_type}', 'book_title', loan.book_title,
            'due_date', to_char(loan.date_due AT TIME ZONE %(zone)s, 'YYYY-MM-DD'),
            'loan_id', loan.id, 'book_id', loan.book_id))
    ) AS message (kind, payload)"""


# The loan, if a copy is free and the patron holds none, and then its two outbox rows; the last SELECT
# says why not when no loan was written. `now()` is the transaction's start: one moment for every row.
LEND = f"""
WITH open_loans AS (
    SELECT user_email FROM lending_loan WHERE book_id = %(book_id)s AND date_returned IS NULL
), refusal AS (
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM open_loans WHERE user_email = %(user_email)s) THEN 'already_borrowed'
        WHEN (SELECT count(*) FROM open_loans) >= %(copies)s THEN 'no_copy_available'
    END AS code
), loan AS (
    INSERT INTO lending_loan (user_email, book_id, book_title, date_borrowed, date_due, status, renewals)
    SELECT %(user_email)s, %(book_id)s, %(title)s, now(),
           (date_trunc('day', (now() + make_interval(days => %(loan_days)s)) AT TIME ZONE %(zone)s)
            + interval '1 day' - interval '1 microsecond') AT TIME ZONE %(zone)s,
           'ACTIVE', 0
    FROM refusal WHERE code IS NULL
    RETURNING id, user_email, book_id, book_title, date_borrowed, date_due, date_returned, status
), version AS (
    {BUMP_VERSION} (SELECT 1 FROM loan)
), outbox AS ({outbox_rows("lending_confirmation")}
)
SELECT refusal.code, loan.id, loan.user_email, loan.book_id, loan.date_borrowed, loan.date_due,
       loan.date_returned, loan.status
FROM refusal LEFT JOIN loan ON true
"""

# A return asks no peer: it locks the book's row as it is.
LOCK_BOOK_FOR_RETURN = "SELECT 1 FROM lending_bookstock WHERE book_id = %(book_id)s FOR UPDATE"

RETURN = f"""
WITH loan AS (
    UPDATE lending_loan SET status = 'RETURNED', date_returned = now()
    WHERE id = (
        SELECT id FROM lending_loan
        WHERE user_email = %(user_email)s AND book_id = %(book_id)s AND date_returned IS NULL
        LIMIT 1
    ) AND date_returned IS NULL
    RETURNING id, user_email, book_id, book_title, date_borrowed, date_due, date_returned, status
), version AS (
    {BUMP_VERSION} (SELECT 1 FROM loan)
), outbox AS ({outbox_rows("return_confirmation")}
)
SELECT NULL, id, user_email, book_id, date_borrowed, date_due, date_returned, status FROM loan
"""

LOAN_FIELDS = ("id", "user_email", "book_id", "date_borrowed", "date_due", "date_returned", "status")
MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class Settings:
    database_url: str
    user_url: str
    book_url: str
    loan_days: int = 60
    zone: str = "UTC"
    connections: int = 8  # per process

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            database_url=os.environ["DATABASE_URL"],
            user_url=os.environ["USER_MANAGEMENT_URL"].rstrip("/"),
            book_url=os.environ["BOOK_MANAGEMENT_URL"].rstrip("/"),
            loan_days=int(os.environ.get("LOAN_PERIOD_DAYS", "60")),
            zone=os.environ.get("LIBRARY_TIME_ZONE", "UTC"),
            connections=int(os.environ.get("FLOOR_DB_CONNECTIONS", "8")),
        )


class Refused(Exception):
    """An answer other than the loan: the service's error shape and status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Book:
    id: int
    title: str
    copies: int


Row = tuple[Any, ...]
StartResponse = Callable[..., Any]


class Floor:
    """The WSGI application: `Floor(Settings(...))(environ, start_response)`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.http = urllib3.PoolManager(maxsize=64, timeout=urllib3.Timeout(connect=2, read=5), retries=False)
        self.pool = ConnectionPool(settings.database_url, settings.connections)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            status, body = self.route(environ)
        except Refused as refusal:
            status, body = refusal.status, {"error": {"code": refusal.code, "message": refusal.message}}
        payload = json.dumps(body).encode()
        start_response(
            f"{status} {STATUS_TEXT.get(status, '')}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    def route(self, environ: dict[str, Any]) -> tuple[int, dict]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path not in ("/lendBook/", "/returnBook/"):
            raise Refused(404, "not_found", f"No endpoint {path}.")
        if method != "POST":
            raise Refused(405, "method_not_allowed", f"{method} is not allowed here.")
        user_email, book_id = read_request(environ)
        if path == "/lendBook/":
            return 201, self.lend(user_email, book_id)
        return 200, self.return_book(user_email, book_id)

    def lend(self, user_email: str, book_id: int) -> dict:
        self.ensure_active_user(user_email)
        book = self.get_book(book_id)
        params = {
            "book_id": book.id,
            "title": book.title,
            "copies": book.copies,
            "user_email": user_email,
            "loan_days": self.settings.loan_days,
            "zone": self.settings.zone,
        }
        row = self.in_one_round_trip(LOCK_BOOK, LEND, params)
        refusal = row[0] if row is not None else "no_copy_available"
        if refusal == "already_borrowed":
            raise Refused(409, refusal, f"{user_email} already has book {book_id} on loan.")
        if row is None or refusal is not None:
            raise Refused(409, "no_copy_available", f"No copy of book {book_id} is available.")
        return loan_body(row)

    def return_book(self, user_email: str, book_id: int) -> dict:
        params = {"user_email": user_email, "book_id": book_id, "zone": self.settings.zone}
        row = self.in_one_round_trip(LOCK_BOOK_FOR_RETURN, RETURN, params)
        if row is None:
            raise Refused(404, "loan_not_found", f"{user_email} has no open loan of book {book_id}.")
        return loan_body(row)

    def in_one_round_trip(self, lock: str, write: str, params: dict[str, Any]) -> Row | None:
        """`lock` then `write` in one transaction, pipelined: BEGIN, both statements and COMMIT go out
        together, in one round trip. The write's first row (a refused write changes nothing but the
        book's stock row, refreshed from the Book service's answer)."""
        try:
            with self.pool.connection() as conn:
                with conn.pipeline(), conn.transaction():
                    conn.execute(lock, params)
                    cursor = conn.execute(write, params)
                return cursor.fetchone()
        except psycopg.errors.UniqueViolation:
            # `one_open_loan_per_user_and_book`: only when a loan was written outside the book lock.
            raise Refused(409, "already_borrowed", "The patron already has this book on loan.") from None

    def close(self) -> None:
        self.pool.close()

    def ensure_active_user(self, email: str) -> None:
        answer = self.http.request("GET", f"{self.settings.user_url}/users/{quote(email, safe='@')}")
        if answer.status == 404:
            raise Refused(404, "user_not_found", f"User {email} does not exist.")
        user = peer_json(answer, "User Management")
        if user.get("active", True) is False:
            raise Refused(403, "user_inactive", f"User {email} is not active.")

    def get_book(self, book_id: int) -> Book:
        answer = self.http.request("GET", f"{self.settings.book_url}/getBooks/{book_id}")
        if answer.status == 404:
            raise Refused(404, "book_not_found", f"Book {book_id} does not exist.")
        data = peer_json(answer, "Book Management")
        copies = next((data[f] for f in ("quantity", "copies") if data.get(f) is not None), 1)
        if not isinstance(copies, int) or isinstance(copies, bool) or copies < 0:
            raise Refused(503, "peer_unavailable", "The Book Management service answered outside its contract.")
        return Book(book_id, str(data.get("title") or "")[:500], copies)


class ConnectionPool:
    """At most `size` connections, opened when first needed and shared by a process's threads."""

    def __init__(self, url: str, size: int) -> None:
        self.url = url
        self.slots = threading.BoundedSemaphore(size)
        self.idle: queue.LifoQueue[psycopg.Connection] = queue.LifoQueue()
        self.opened: list[psycopg.Connection] = []

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with self.slots:
            try:
                conn = self.idle.get_nowait()
            except queue.Empty:
                conn = psycopg.connect(self.url, autocommit=True)
                self.opened.append(conn)
            try:
                yield conn
            finally:
                # Back to the pool when it is usable as it is: open, and no transaction left behind.
                if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.close()
                    self.opened.remove(conn)
                else:
                    self.idle.put(conn)

    def close(self) -> None:
        """Closes every connection (a test's end; gunicorn's workers just exit)."""
        for conn in self.opened:
            conn.close()


STATUS_TEXT = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    503: "Service Unavailable",
}


def read_request(environ: dict[str, Any]) -> tuple[str, int]:
    """The body's `user_email` (a string with an @) and `book_id` (a positive integer), or a 400."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = -1
    if not 0 < length <= MAX_BODY:
        raise Refused(400, "invalid_request", "A JSON body of at most 64 KiB is required.")
    try:
        body = json.loads(environ["wsgi.input"].read(length))
    except ValueError:
        raise Refused(400, "invalid_request", "The body is not JSON.") from None
    email = body.get("user_email") if isinstance(body, dict) else None
    book_id = body.get("book_id") if isinstance(body, dict) else None
    if not isinstance(email, str) or "@" not in email or len(email) > 254:
        raise Refused(400, "invalid_request", "user_email must be an email address.")
    if not isinstance(book_id, int) or isinstance(book_id, bool) or not 0 < book_id < 2**31:
        raise Refused(400, "invalid_request", "book_id must be a positive integer.")
    return email, book_id


def peer_json(answer: urllib3.BaseHTTPResponse, peer: str) -> dict:
    try:
        data = json.loads(answer.data) if answer.status == 200 else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise Refused(503, "peer_unavailable", f"The {peer} service answered {answer.status}.")
    return data


def iso(value: datetime | None) -> str | None:
    """As the service writes a datetime: ISO 8601 in UTC, with `Z`."""
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def loan_body(row: Row) -> dict:
    """The loan as the service's `/lendBook/` and `/returnBook/` show it."""
    loan = dict(zip(LOAN_FIELDS, row[1:], strict=True))
    for name in ("date_borrowed", "date_due", "date_returned"):
        loan[name] = iso(loan[name])
    return loan


@cache
def _from_env() -> Floor:
    return Floor(Settings.from_env())


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """What gunicorn serves (`tools.bench.floor:application`), configured from the environment on first use."""
    return _from_env()(environ, start_response)
