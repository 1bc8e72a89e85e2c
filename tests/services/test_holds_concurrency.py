"""The holds queue under real concurrency on PostgreSQL: returns racing lends must hand the copies
to the queue, in order, never to whoever is fastest."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from lending.models import Hold, HoldStatus, Loan
from tests.racing import race
from tests.rules import set_policy

pytestmark = [pytest.mark.postgres, pytest.mark.many_connections, pytest.mark.django_db(transaction=True)]


def post(path: str, email: str, book_id: int) -> int:
    return APIClient().post(path, {"user_email": email, "book_id": book_id}, format="json").status_code


def test_returns_racing_lends_hand_the_copies_to_the_first_two_in_the_queue(peers):
    book = peers.book.add_book("Queued", "A", 2)["id"]
    people = lambda tag, n: [peers.user.add_user(f"{tag}{i}-{book}@example.com")["email"] for i in range(n)]  # noqa: E731
    holders, queue, others = people("holder", 2), people("queued", 5), people("other", 10)
    for email in holders:
        assert post("/lendBook/", email, book) == 201
    for email in queue:
        assert post("/reserveBook/", email, book) == 201

    answers = race(
        [("/returnBook/", {"user_email": e, "book_id": book}) for e in holders]
        + [("/lendBook/", {"user_email": e, "book_id": book}) for e in others]
    )

    assert answers[:2] == [(200, None), (200, None)]
    assert all(status == 409 and code in {"no_copy_available", "copies_on_hold"} for status, code in answers[2:])
    ready = Hold.objects.filter(book_id=book, status=HoldStatus.READY).values_list("user_email", flat=True)
    assert sorted(ready) == sorted(queue[:2])
    assert not Loan.objects.filter(book_id=book, date_returned__isnull=True).exists()

    # Everyone in the queue now tries at once: exactly the first two get the copies.
    answers = race([("/lendBook/", {"user_email": e, "book_id": book}) for e in queue])

    assert [status for status, _ in answers] == [201, 201, 409, 409, 409]
    borrowers = Loan.objects.filter(book_id=book, date_returned__isnull=True).values_list("user_email", flat=True)
    assert sorted(borrowers) == sorted(queue[:2])
    waiting = Hold.objects.filter(book_id=book, status=HoldStatus.WAITING).order_by("id")
    assert list(waiting.values_list("user_email", flat=True)) == queue[2:]


def test_concurrent_reservations_queue_each_patron_once_in_arrival_order(peers):
    book = peers.book.add_book("Wanted", "A", 1)["id"]
    holder = peers.user.add_user(f"h-{book}@example.com")["email"]
    assert post("/lendBook/", holder, book) == 201
    patrons = [peers.user.add_user(f"r{i}-{book}@example.com")["email"] for i in range(10)]

    answers = race([("/reserveBook/", {"user_email": e, "book_id": book}) for e in patrons * 2])

    assert sorted(status for status, _ in answers) == [201] * 10 + [409] * 10
    holds = Hold.objects.filter(book_id=book, status=HoldStatus.WAITING)
    assert sorted(holds.values_list("user_email", flat=True)) == sorted(patrons)
    positions = [h["queue_position"] for h in APIClient().get("/reservations/", {"book_id": book}).json()["results"]]
    assert positions == list(range(1, 11))


def test_a_patron_at_the_loan_limit_cannot_exceed_it_with_concurrent_lends(peers, settings):
    set_policy(max_loans=3)
    patron = peers.user.add_user("limit-race@example.com")["email"]
    books = [peers.book.add_book(f"Limit race {i}", "A", 1)["id"] for i in range(8)]

    answers = race([("/lendBook/", {"user_email": patron, "book_id": b}) for b in books])

    assert sorted(status for status, _ in answers) == [201] * 3 + [409] * 5
    assert Loan.objects.filter(user_email=patron, date_returned__isnull=True).count() == 3
