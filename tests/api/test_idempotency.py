"""Idempotency keys on writes (Stripe's contract): replay, conflicts, validation, failures that do not
consume the key."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from lending import idempotency
from lending.models import IdempotencyRecord, Loan, OutboxKind, OutboxMessage, OutboxStatus
from lending.outbox import relay
from tests.conftest import post_json

pytestmark = pytest.mark.django_db


def lend(api, patron, book_id, key, **headers):
    return post_json(
        api, "/lendBook/", {"user_email": patron, "book_id": book_id}, **{"Idempotency-Key": key}, **headers
    )


def notifications_for(peers, loan_id: int, message_type: str) -> list[dict]:
    """By the loan's key (the patron, unique to the test, and the id: SQLite reuses the ids of rolled
    back tests)."""
    loan = Loan.objects.get(pk=loan_id)
    wanted = (loan_id, loan.user_email, message_type)
    return [
        n
        for n in peers.notification.notifications
        if (n.get("loan_id"), n.get("user_email"), n.get("message_type")) == wanted
    ]


def test_a_lend_retried_ten_times_creates_one_loan_and_one_notification(api, peers, patron, book):
    key = f"lend-{uuid.uuid4()}"
    responses = [lend(api, patron, book["id"], key) for _ in range(10)]

    assert [r.status_code for r in responses] == [201] * 10
    assert all(r.json() == responses[0].json() for r in responses), "every retry replays the first answer"
    assert "Idempotent-Replayed" not in responses[0]
    assert all(r["Idempotent-Replayed"] == "true" for r in responses[1:])
    loan_id = responses[0].json()["id"]
    assert Loan.objects.filter(book_id=book["id"]).count() == 1
    confirmations = OutboxMessage.objects.filter(kind=OutboxKind.NOTIFICATION, payload__loan_id=loan_id)
    assert confirmations.count() == 1

    relay.run_once()
    # A relay that dies after delivering but before recording it redelivers with the same key.
    confirmations.update(status=OutboxStatus.PENDING, next_attempt_at=timezone.now())
    relay.run_once()

    assert confirmations.get().status == OutboxStatus.DELIVERED
    assert len(notifications_for(peers, loan_id, "lending_confirmation")) == 1


def test_a_return_retried_with_its_key_is_replayed(api, patron, book):
    post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})
    key = f"return-{uuid.uuid4()}"
    body = {"user_email": patron, "book_id": book["id"]}
    first = post_json(api, "/returnBook/", body, **{"Idempotency-Key": key})
    second = post_json(api, "/returnBook/", body, **{"Idempotency-Key": key})

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json() == first.json() and second["Idempotent-Replayed"] == "true"
    assert OutboxMessage.objects.filter(payload__message_type="return_confirmation").count() == 1


def test_the_same_key_with_another_body_is_422(api, peers, patron, book):
    other = peers.book.add_book("Other", "A", 1)
    key = f"k-{uuid.uuid4()}"
    assert lend(api, patron, book["id"], key).status_code == 201

    response = lend(api, patron, other["id"], key)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert not Loan.objects.filter(book_id=other["id"]).exists()


def test_the_same_key_on_another_endpoint_is_422(api, patron, book):
    key = f"k-{uuid.uuid4()}"
    assert lend(api, patron, book["id"], key).status_code == 201
    response = post_json(api, "/returnBook/", {"user_email": patron, "book_id": book["id"]}, **{"Idempotency-Key": key})
    assert (response.status_code, response.json()["error"]["code"]) == (422, "idempotency_key_reused")
    assert Loan.objects.get(book_id=book["id"]).date_returned is None


@pytest.mark.parametrize("length, status", [(255, 201), (256, 400), (1000, 400)])
def test_keys_longer_than_255_characters_are_400(api, patron, book, length, status):
    response = lend(api, patron, book["id"], "k" * length)
    assert response.status_code == status, response.content
    if status == 400:
        assert response.json()["error"]["code"] == "invalid_idempotency_key"
        assert not Loan.objects.exists() and not IdempotencyRecord.objects.exists()


def test_an_empty_key_is_400(api, patron, book):
    response = lend(api, patron, book["id"], "")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_idempotency_key")


def test_a_503_does_not_consume_the_key(api, peers, patron, book):
    key = f"k-{uuid.uuid4()}"
    peers.user.faults.status = 503

    down = lend(api, patron, book["id"], key)

    assert down.status_code == 503 and down["Retry-After"]
    assert not Loan.objects.exists() and not IdempotencyRecord.objects.filter(key=key).exists()
    peers.user.faults.clear()
    retry = lend(api, patron, book["id"], key)
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry
    assert Loan.objects.count() == 1


def test_a_refusal_is_the_answer_and_is_replayed(api, patron, book, peers):
    other = peers.user.add_user(f"first-{uuid.uuid4().hex[:8]}@example.com")["email"]
    lend(api, other, book["id"], f"k-{uuid.uuid4()}")
    key = f"k-{uuid.uuid4()}"

    first = lend(api, patron, book["id"], key)
    replay = lend(api, patron, book["id"], key)

    assert (first.status_code, replay.status_code) == (409, 409)
    assert replay.json() == first.json() and replay["Idempotent-Replayed"] == "true"


@pytest.mark.django_db(transaction=True)
def test_the_same_key_while_the_first_request_runs_is_409(peers, patron, book):
    key = f"k-{uuid.uuid4()}"
    peers.user.faults.latency = 1.5
    first: dict = {}

    def first_request() -> None:
        try:
            first["response"] = lend(APIClient(), patron, book["id"], key)
        finally:
            connection.close()

    thread = threading.Thread(target=first_request)
    thread.start()
    deadline = time.monotonic() + 30
    while not IdempotencyRecord.objects.filter(key=key).exists():
        assert time.monotonic() < deadline, "the first request never claimed its key"
        time.sleep(0.02)

    concurrent = lend(APIClient(), patron, book["id"], key)
    thread.join(60)

    assert concurrent.status_code == 409, concurrent.content
    assert concurrent.json()["error"]["code"] == "idempotency_request_in_progress"
    assert concurrent["Retry-After"]
    assert first["response"].status_code == 201
    peers.user.faults.clear()
    replay = lend(APIClient(), patron, book["id"], key)
    assert replay.status_code == 201 and replay.json() == first["response"].json()
    assert Loan.objects.count() == 1


def test_an_abandoned_claim_can_be_taken_over_after_the_lock_expires(api, patron, book, settings):
    """A worker killed mid-request leaves an unsettled claim: no loan was committed for it."""
    key = f"k-{uuid.uuid4()}"
    body = {"user_email": patron, "book_id": book["id"]}
    idempotency.claim(key, idempotency.fingerprint("POST", "/lendBook/", body), lambda loan: (201, {}))
    assert lend(api, patron, book["id"], key).status_code == 409

    IdempotencyRecord.objects.filter(key=key).update(
        locked_at=timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_LOCK_SECONDS + 1)
    )
    assert lend(api, patron, book["id"], key).status_code == 201
    assert Loan.objects.count() == 1


def unsalted_sha256(method: str, path: str, body: dict) -> str:
    import hashlib
    import json

    canonical = json.dumps([method, path.rstrip("/"), body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def test_a_stored_fingerprint_is_keyed_not_an_unsalted_hash_of_the_body_naming_the_patron(api, patron, book):
    """Anyone could hash guessed bodies (`{"user_email": ..., "book_id": ...}`) and find the patron in an
    unsalted fingerprint, after their erasure too (issue 28)."""
    body = {"user_email": patron, "book_id": book["id"]}
    assert lend(api, patron, book["id"], "keyed").status_code == 201

    stored = IdempotencyRecord.objects.get(key="keyed").fingerprint

    assert stored != unsalted_sha256("POST", "/lendBook/", body)
    assert stored == idempotency.fingerprint("POST", "/lendBook/", body)


def test_a_retry_of_a_request_the_previous_release_fingerprinted_is_still_replayed(api, patron, book):
    """A rolling deploy: the previous release stored the unsalted fingerprint; its retry replays."""
    body = {"user_email": patron, "book_id": book["id"]}
    assert lend(api, patron, book["id"], "across-deploy").status_code == 201
    IdempotencyRecord.objects.filter(key="across-deploy").update(
        fingerprint=unsalted_sha256("POST", "/lendBook/", body)
    )

    retry = lend(api, patron, book["id"], "across-deploy")

    assert (retry.status_code, retry["Idempotent-Replayed"]) == (201, "true")
    assert Loan.objects.count() == 1
