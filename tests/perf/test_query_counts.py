"""Queries per request, pinned: each one is a database round trip, and under load the round trips,
not the SQL, are what a lend or a return costs (see tools/bench/REPORT.md). A change that adds one should
say why. Counts, never timings: timings live in `make bench`.

Counted as in production: outside a test transaction, so BEGIN and COMMIT are included. With
REQUIRE_API_KEY on (production), a call whose key the process has not verified in the last
API_KEY_CACHE_SECONDS costs one more query: the key lookup.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from lending import circulation_rules
from lending.models import Loan, OutboxKind, OutboxMessage
from lending.outbox import relay
from tests.conftest import post_json

pytestmark = pytest.mark.django_db(transaction=True)


def lend(api, patron, book):
    return post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})


@pytest.fixture(autouse=True)
def _rules_read(db):
    """This process has read the circulation rules once already, as a running service has: then a write
    reads only their version, in the patron lock's statement (lending.circulation_rules)."""
    circulation_rules.in_force()


# A write's rows: one statement on PostgreSQL, one per table on SQLite (whose WITH takes no INSERT nor
# UPDATE: lending.db.run.together). A lend's loan, outbox rows and events; a return's outbox rows and
# events; a renewal's loan, notice and events; a reservation's hold and event.
ON_POSTGRESQL = connection.vendor == "postgresql"
LEND_WRITES = 1 if ON_POSTGRESQL else 3
RETURN_WRITES = 1 if ON_POSTGRESQL else 2
RENEW_WRITES = 1 if ON_POSTGRESQL else 3
RESERVE_WRITES = 1 if ON_POSTGRESQL else 2
# A lend's and a reservation's locks: the book's upsert and the patron lock (with the rules' version) in
# one statement on PostgreSQL; SQLite has no patron lock (one writer at a time anyway) and reads the
# version alone (lending.db.locks).
LOCKS = 1 if ON_POSTGRESQL else 2


def test_lend_is_five_queries(api, peers, patron, book, django_assert_num_queries):
    # BEGIN, upsert of the book row (the lock and the version bump) and then the patron lock (with the
    # circulation rules' version) in one statement, then what the lend decides on in one statement, read live
    # under the patron lock (lending.db.state): the open loans of the book and of the patron with
    # everything the rules and the automated blocks count, the book's holds, the patron's blocks in
    # force, the library calendar (the due date; kept for the transaction, so the pickup deadline that
    # promote_waiting computes reads it no more: lending.calendar) and the loan's id; then the loan, both
    # outbox rows and its `lent` event (the audit trail: lending.events.history) in one statement;
    # COMMIT.
    with django_assert_num_queries(3 + LOCKS + LEND_WRITES):
        assert lend(api, patron, book).status_code == 201


def test_reserve_counts_the_patrons_loans_once(api, peers, patron, book, django_assert_num_queries):
    lend(api, patron, book)
    waiting = peers.user.add_user(f"waiting-{book['id']}@example.com")["email"]
    # BEGIN, upsert of the book row and the patron lock (with the rules' version), the book's and the
    # patron's open loans, the book's holds, the patron's blocks and the hold's id (one query,
    # lending.db.state), the hold and its `reserved` event (one statement), COMMIT.
    with django_assert_num_queries(3 + LOCKS + RESERVE_WRITES):
        answer = post_json(api, "/reserveBook/", {"user_email": waiting, "book_id": book["id"]})
    assert answer.status_code == 201, answer.content


def test_return_is_five_queries(api, peers, patron, book, django_assert_num_queries):
    lend(api, patron, book)
    # BEGIN, lock of the book row with its version bump (one UPDATE), the loan closed (one UPDATE
    # that also says nobody waits for the book), its `returned` event and both outbox rows (one
    # statement), COMMIT.
    with django_assert_num_queries(4 + RETURN_WRITES):
        response = post_json(api, "/returnBook/", {"user_email": patron, "book_id": book["id"]})
    assert response.status_code == 200


def test_renew_is_seven_queries(api, peers, patron, book, django_assert_num_queries):
    lend(api, patron, book)
    # BEGIN, the book lock (SELECT ... FOR UPDATE), the loan (FOR UPDATE), patron lock (with the rules'
    # version), then in one statement (lending.db.state) the patron's blocks and loans (for the automated
    # blocks), the book's holds (whether anyone else waits) and the calendar (the new due date); the
    # loan's UPDATE with its `renewed` event and its notice (one statement), COMMIT. No peer.
    with django_assert_num_queries(6 + RENEW_WRITES):
        response = post_json(api, "/renewBook/", {"user_email": patron, "book_id": book["id"]})
    assert response.status_code == 200, response.content


def test_check_out_is_seven_queries(api, peers, patron, django_assert_num_queries):
    barcode = peers.book.add_book("Counted copy", "A", 1)["items"][0]["barcode"]
    # A lend's five, and the copy's own two checks under the book lock: not out to anyone, not
    # trapped on the hold shelf for another patron.
    with django_assert_num_queries(5 + LOCKS + LEND_WRITES):
        response = post_json(api, "/checkouts/", {"item_barcode": barcode, "user_email": patron})
    assert response.status_code == 201, response.content


def test_check_in_is_seven_queries(api, peers, patron, django_assert_num_queries):
    barcode = peers.book.add_book("Counted check-in", "A", 1)["items"][0]["barcode"]
    post_json(api, "/checkouts/", {"item_barcode": barcode, "user_email": patron})
    # The copy's open loan (which book to lock), BEGIN, the book lock with its version bump, the loan
    # closed, its event and outbox rows (one statement), then the READY hold the copy goes to, if any
    # (one read: the one it is trapped for, else the book's first untrapped one), COMMIT. No peer for a
    # copy on loan.
    with django_assert_num_queries(6 + RETURN_WRITES):
        response = post_json(api, "/checkins/", {"item_barcode": barcode})
    assert response.status_code == 200, response.content


def test_cancel_is_six_queries(api, peers, patron, book, django_assert_num_queries):
    lend(api, patron, book)
    waiting = peers.user.add_user(f"cancelling-{book['id']}@example.com")["email"]
    post_json(api, "/reserveBook/", {"user_email": waiting, "book_id": book["id"]})
    # BEGIN, the book lock, the hold (FOR UPDATE), its UPDATE, its `cancelled` event, COMMIT.
    with django_assert_num_queries(6):
        response = post_json(api, "/cancelReservation/", {"user_email": waiting, "book_id": book["id"]})
    assert response.status_code == 200, response.content


def test_expired_books_page_is_one_query(api, django_assert_num_queries):
    now = timezone.now()
    Loan.objects.bulk_create(
        Loan(
            user_email=f"late{i}@example.com",
            book_id=1000 + i,
            date_borrowed=now - timedelta(days=90),
            date_due=now - timedelta(days=30, minutes=i),
            status="OVERDUE",
        )
        for i in range(150)
    )
    with django_assert_num_queries(1):
        response = api.get("/getExpiredBooks/?limit=100")
    assert response.status_code == 200 and len(response.json()) == 100


def test_patron_loans_is_two_queries(api, peers, patron, book, django_assert_num_queries):
    lend(api, patron, book)
    with django_assert_num_queries(2):  # the count, then the page
        response = api.get("/loans/", {"user_email": patron})
    assert response.status_code == 200 and response.json()["count"] == 1


def test_relay_delivers_availability_in_two_queries_and_a_notification_in_one(
    peers, patron, book, api, django_assert_num_queries
):
    lend(api, patron, book)
    with django_assert_num_queries(4):  # BEGIN, claim FOR UPDATE SKIP LOCKED, lease, COMMIT
        batch = relay.claim_batch()
    by_kind = {message.kind: message for message in batch}
    # The current state in one query, then the settle (if the version still holds) in one UPDATE.
    with django_assert_num_queries(2):
        relay.deliver(by_kind[OutboxKind.AVAILABILITY])
    with django_assert_num_queries(1):
        relay.deliver(by_kind[OutboxKind.NOTIFICATION])
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {"DELIVERED"}


def test_a_batch_costs_three_statements_besides_its_claim(peers, api, django_assert_num_queries):
    patrons = [peers.user.add_user(f"batch{i}@example.com")["email"] for i in range(5)]
    books = [peers.book.add_book(f"Batch book {i}", "A", 1) for i in range(5)]
    for patron, book in zip(patrons, books, strict=True):
        lend(api, patron, book)
    # The claim (BEGIN, FOR UPDATE SKIP LOCKED, lease, COMMIT); the five books' state (one query);
    # the five notifications (sent in one call) settled (one UPDATE); the five books settled, each
    # guarded by its version (one UPDATE); then the next claim finds nothing (BEGIN, SELECT, COMMIT).
    batches = len(peers.notification.batches)
    with django_assert_num_queries(4 + 1 + 1 + 1 + 3):
        assert relay.run_once() == 10
    assert peers.notification.batches[batches:] == [5]
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {"DELIVERED"}
    assert all(peers.book.books[book["id"]]["available"] is False for book in books)
