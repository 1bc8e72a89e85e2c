"""The floor of `make bench` (tools/bench/floor.py) is a correct lend: race-correct under concurrency, with the
service's answers and outbox rows. Its WSGI function is called directly, from threads, each with its own
database connection (no gunicorn)."""

from __future__ import annotations

import io
import json
import threading
from collections import Counter

import pytest
from django.db import connection

from lending.models import BookStock, Loan, OutboxMessage
from tests.racing import require_crowd_lock
from tools.bench.floor import Floor, Settings

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def floor(peers):
    db = connection.settings_dict
    url = f"postgresql://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    app = Floor(Settings(database_url=url, user_url=peers.user.url, book_url=peers.book.url))
    yield app
    app.close()


def post(app: Floor, path: str, body: dict) -> tuple[int, dict]:
    raw = json.dumps(body).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "CONTENT_LENGTH": str(len(raw)),
        "wsgi.input": io.BytesIO(raw),
    }
    answered: list[str] = []
    chunks = app(environ, lambda status, headers: answered.append(status))
    return int(answered[0].split()[0]), json.loads(b"".join(chunks))


def race(app: Floor, path: str, bodies: list[dict]) -> list[tuple[int, dict]]:
    """Every request at once, each from its own thread (so its own connection)."""
    require_crowd_lock(len(bodies))
    barrier = threading.Barrier(len(bodies))
    answers: list[tuple[int, dict]] = [(0, {})] * len(bodies)

    def run(index: int) -> None:
        barrier.wait()
        answers[index] = post(app, path, bodies[index])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


@pytest.mark.many_connections
def test_fifty_patrons_racing_for_a_one_copy_book_through_the_floor_get_one_loan(peers, floor):
    book = peers.book.add_book("Floor race", "A", 1)["id"]
    emails = [peers.user.add_user(f"floor{book}-{i}@example.com")["email"] for i in range(50)]

    answers = race(floor, "/lendBook/", [{"user_email": e, "book_id": book} for e in emails])

    assert Counter(status for status, _ in answers) == {201: 1, 409: 49}
    assert {body["error"]["code"] for status, body in answers if status == 409} == {"no_copy_available"}
    [winner] = [body for status, body in answers if status == 201]
    assert winner["user_email"] in emails and winner["book_id"] == book and winner["status"] == "ACTIVE"
    assert Loan.objects.filter(book_id=book, date_returned__isnull=True).count() == 1
    assert sorted(OutboxMessage.objects.filter(book_id=book).values_list("kind", flat=True)) == [
        "availability",
        "notification",
    ]
    assert OutboxMessage.objects.get(book_id=book, kind="notification").payload["loan_id"] == winner["id"]
    assert BookStock.objects.get(book_id=book).version == 1  # refused lends leave the version alone

    status, returned = post(floor, "/returnBook/", {"user_email": winner["user_email"], "book_id": book})
    assert (status, returned["id"], returned["status"]) == (200, winner["id"], "RETURNED")
    assert returned["date_returned"].endswith("Z")
    other = next(e for e in emails if e != winner["user_email"])
    status, lent = post(floor, "/lendBook/", {"user_email": other, "book_id": book})
    assert (status, lent["user_email"]) == (201, other)
    assert OutboxMessage.objects.filter(book_id=book).count() == 6
    assert BookStock.objects.get(book_id=book).version == 3


def test_the_floor_refuses_as_the_service_does(peers, floor, patron, book):
    lend = {"user_email": patron, "book_id": book["id"]}
    assert post(floor, "/lendBook/", lend)[0] == 201

    refusals = [
        post(floor, "/lendBook/", lend),
        post(floor, "/lendBook/", {"user_email": "nobody@example.com", "book_id": book["id"]}),
        post(floor, "/lendBook/", {"user_email": patron, "book_id": 987_654_321}),
        post(floor, "/returnBook/", {"user_email": patron, "book_id": 987_654_321}),
        post(floor, "/lendBook/", {"user_email": patron, "book_id": "1"}),
    ]

    assert [(status, body["error"]["code"]) for status, body in refusals] == [
        (409, "already_borrowed"),
        (404, "user_not_found"),
        (404, "book_not_found"),
        (404, "loan_not_found"),
        (400, "invalid_request"),
    ]
