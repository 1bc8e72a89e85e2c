"""Invariant 1 under real concurrency on PostgreSQL: many threads, each with its own connection,
racing through the API for the same book."""

from __future__ import annotations

from collections import Counter

import pytest
from rest_framework.test import APIClient

from lending.models import Loan
from tests.racing import race

pytestmark = [pytest.mark.postgres, pytest.mark.many_connections, pytest.mark.django_db(transaction=True)]


def statuses_of(requests: list[tuple[str, dict]]) -> list[int]:
    return [status for status, _ in race(requests)]


def readers(peers, count: int, tag: str) -> list[str]:
    return [peers.user.add_user(f"{tag}-{i}@example.com")["email"] for i in range(count)]


@pytest.mark.parametrize("copies", [1, 3])
def test_fifty_patrons_racing_for_a_book_get_exactly_its_copies(peers, copies):
    book = peers.book.add_book(f"{copies}-copy race", "A", copies)
    emails = readers(peers, 50, f"race{book['id']}")

    statuses = statuses_of([("/lendBook/", {"user_email": e, "book_id": book["id"]}) for e in emails])

    assert Counter(statuses) == {201: copies, 409: 50 - copies}
    assert Loan.objects.filter(book_id=book["id"], date_returned__isnull=True).count() == copies


def test_twenty_identical_lends_by_one_patron_create_one_loan(peers):
    book = peers.book.add_book("Popular", "A", 5)
    email = readers(peers, 1, f"same{book['id']}")[0]

    statuses = statuses_of([("/lendBook/", {"user_email": email, "book_id": book["id"]})] * 20)

    assert Counter(statuses) == {201: 1, 409: 19}
    assert Loan.objects.filter(book_id=book["id"]).count() == 1


def test_returns_racing_lends_never_exceed_the_copies(peers):
    book = peers.book.add_book("Busy", "A", 2)
    holders = readers(peers, 2, f"holder{book['id']}")
    for email in holders:
        assert (
            APIClient().post("/lendBook/", {"user_email": email, "book_id": book["id"]}, format="json").status_code
            == 201
        )
    newcomers = readers(peers, 10, f"new{book['id']}")

    statuses = statuses_of(
        [("/returnBook/", {"user_email": e, "book_id": book["id"]}) for e in holders]
        + [("/lendBook/", {"user_email": e, "book_id": book["id"]}) for e in newcomers]
    )

    assert statuses[:2] == [200, 200]
    assert 0 <= statuses[2:].count(201) <= 2 and set(statuses[2:]) <= {201, 409}
    assert Loan.objects.filter(book_id=book["id"], date_returned__isnull=True).count() <= 2
