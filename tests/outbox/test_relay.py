"""Invariant 3: the outbox relay delivers every side effect, retries with backoff, parks dead
letters, publishes availability as the current state, and runs safely as several processes."""

from __future__ import annotations

import signal
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from lending import services
from lending.models import Loan, OutboxKind, OutboxMessage, OutboxStatus
from lending.outbox import relay
from lending.outbox.messages import MessageType, enqueue_notification
from tests.processes import service_env, start_manage, wait_until


def notifications_for(peers, email: str) -> list[dict]:
    return [n for n in peers.notification.notifications if n["user_email"] == email]


def deliver_everything_due() -> None:
    relay.run_once()


@pytest.mark.django_db
def test_lend_then_return_reach_the_peers_once_each(peers, patron, book):
    services.loan_lend(user_email=patron, book_id=book["id"])
    deliver_everything_due()
    assert peers.book.books[book["id"]]["available"] is False
    assert [n["message_type"] for n in notifications_for(peers, patron)] == ["lending_confirmation"]

    services.loan_return(user_email=patron, book_id=book["id"])
    deliver_everything_due()
    deliver_everything_due()

    assert peers.book.books[book["id"]]["available"] is True
    assert [n["message_type"] for n in notifications_for(peers, patron)] == [
        "lending_confirmation",
        "return_confirmation",
    ]
    assert not OutboxMessage.objects.exclude(status=OutboxStatus.DELIVERED).exists()
    assert not OutboxMessage.objects.filter(payload__has_key=relay.RECHECK).exists(), "no re-check without doubt"


@pytest.mark.django_db
def test_notification_carries_the_contract_fields_and_a_stable_key(peers, patron, book):
    loan = services.loan_lend(user_email=patron, book_id=book["id"])
    deliver_everything_due()
    [sent] = notifications_for(peers, patron)
    assert sent["book_title"] == "Test book"
    assert sent["due_date"] == loan.date_due.date().isoformat()
    message = OutboxMessage.objects.get(kind=OutboxKind.NOTIFICATION)
    assert sent["idempotency_key"] == str(message.key)


@pytest.mark.django_db
def test_failed_delivery_backs_off_then_succeeds(peers, patron, book, settings):
    settings.OUTBOX_BACKOFF_BASE_SECONDS = 30
    settings.OUTBOX_BACKOFF_MAX_SECONDS = 60
    peers.notification.faults.status = 503
    services.loan_lend(user_email=patron, book_id=book["id"])
    deliver_everything_due()

    message = OutboxMessage.objects.get(kind=OutboxKind.NOTIFICATION)
    assert message.status == OutboxStatus.PENDING
    assert message.attempts == 1 and "503" in message.last_error
    assert message.next_attempt_at > timezone.now() + timedelta(seconds=10)
    deliver_everything_due()
    assert OutboxMessage.objects.get(pk=message.pk).attempts == 1, "retried before its backoff"

    peers.notification.faults.clear()
    OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())  # the backoff elapsed
    assert wait_until(
        lambda: (relay.run_once(), OutboxMessage.objects.get(pk=message.pk).status)[1] == OutboxStatus.DELIVERED,
        timeout=5,
    )
    assert len(notifications_for(peers, patron)) == 1


@pytest.mark.django_db
def test_message_is_parked_dead_after_the_configured_attempts(peers, patron, book, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 3
    settings.PEER_BREAKER_FAIL_MAX = 100
    peers.notification.faults.status = 500
    services.loan_lend(user_email=patron, book_id=book["id"])

    message = OutboxMessage.objects.get(kind=OutboxKind.NOTIFICATION)
    assert wait_until(
        lambda: (relay.run_once(), OutboxMessage.objects.get(pk=message.pk).status)[1] == OutboxStatus.DEAD, timeout=5
    )
    message.refresh_from_db()
    assert message.attempts == 3 and "500" in message.last_error


def test_backoff_grows_exponentially_up_to_the_cap(settings):
    settings.OUTBOX_BACKOFF_BASE_SECONDS = 1
    settings.OUTBOX_BACKOFF_MAX_SECONDS = 10
    assert 0.5 <= relay.backoff_seconds(1) <= 1
    assert 4 <= relay.backoff_seconds(4) <= 8
    assert 5 <= relay.backoff_seconds(9) <= 10


@pytest.mark.django_db
def test_a_refusal_by_the_peer_is_dead_at_once(peers, patron, book):
    peers.notification.faults.status = 400
    services.loan_lend(user_email=patron, book_id=book["id"])
    deliver_everything_due()
    message = OutboxMessage.objects.get(kind=OutboxKind.NOTIFICATION)
    assert message.status == OutboxStatus.DEAD and message.attempts == 1


@pytest.mark.django_db
def test_availability_is_the_state_at_delivery_not_at_enqueue(peers, patron, book):
    services.loan_lend(user_email=patron, book_id=book["id"])
    services.loan_return(user_email=patron, book_id=book["id"])
    peers.book.books[book["id"]]["available"] = False  # whatever the peer held before

    deliver_everything_due()

    assert peers.book.books[book["id"]]["available"] is True
    availability = OutboxMessage.objects.filter(kind=OutboxKind.AVAILABILITY)
    assert availability.count() == 2 and set(availability.values_list("status", flat=True)) == {"DELIVERED"}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_change_during_delivery_is_published_too(peers, patron, book):
    """The book is returned while the 'unavailable' update is on the wire: the relay notices the
    newer version and publishes again, so the peer ends with the truth."""
    services.loan_lend(user_email=patron, book_id=book["id"])
    peers.book.faults.latency = 0.5
    delivering = threading.Thread(target=lambda: (relay.run_once(), connection.close()))
    delivering.start()
    assert wait_until(
        lambda: OutboxMessage.objects.filter(kind=OutboxKind.AVAILABILITY, next_attempt_at__gt=timezone.now()).exists(),
        timeout=5,
    )
    services.loan_return(user_email=patron, book_id=book["id"])
    delivering.join()
    peers.book.faults.clear()

    deliver_everything_due()

    assert peers.book.books[book["id"]]["available"] is True
    assert not OutboxMessage.objects.exclude(status=OutboxStatus.DELIVERED).exists()


@pytest.mark.django_db
def test_a_stale_update_that_overtakes_a_newer_one_is_corrected(peers, patron, book, monkeypatch):
    """Two deliveries of one book reach the peer out of order: the newer state first, then the
    stale one. The newer delivery leaves the stale one's message alone (its relay could die before
    checking); the stale delivery sees the book changed and publishes the truth again under a key
    of its own (the peer would drop a repeat of the newer key)."""
    services.loan_lend(user_email=patron, book_id=book["id"])
    publish = relay.books.publish_availability

    def newer_delivery_lands_first(book_id, available, *, idempotency_key):
        monkeypatch.setattr(relay.books, "publish_availability", publish)
        services.loan_return(user_email=patron, book_id=book_id)
        newer = OutboxMessage.objects.filter(kind=OutboxKind.AVAILABILITY).latest("id")
        relay.deliver(newer)
        assert peers.book.books[book_id]["available"] is True
        in_flight = OutboxMessage.objects.filter(kind=OutboxKind.AVAILABILITY).earliest("id")
        assert in_flight.status == OutboxStatus.PENDING, "a delivery settled a message still in flight"
        return publish(book_id, available, idempotency_key=idempotency_key)  # the stale "lent" lands

    monkeypatch.setattr(relay.books, "publish_availability", newer_delivery_lands_first)
    deliver_everything_due()
    assert peers.book.books[book["id"]]["available"] is False, "the stale update did not land"

    deliver_everything_due()

    assert peers.book.books[book["id"]]["available"] is True
    assert not OutboxMessage.objects.exclude(status=OutboxStatus.DELIVERED).exists()


@pytest.mark.django_db
def test_a_message_delivered_without_a_claim_is_reopened_all_the_same(peers, patron, book, monkeypatch):
    """`deliver` of a message no relay claimed (an operator's shell, a test): when the book changes
    on the way, the message is reopened, its claim count staying at zero."""
    services.loan_lend(user_email=patron, book_id=book["id"])
    message = OutboxMessage.objects.get(kind=OutboxKind.AVAILABILITY)
    publish = relay.books.publish_availability

    def returned_on_the_way(book_id, available, *, idempotency_key):
        services.loan_return(user_email=patron, book_id=book_id)
        return publish(book_id, available, idempotency_key=idempotency_key)

    monkeypatch.setattr(relay.books, "publish_availability", returned_on_the_way)
    relay.deliver(message)

    message.refresh_from_db()
    assert (message.status, message.claims) == (OutboxStatus.PENDING, 0)


@pytest.mark.django_db
def test_an_update_applied_after_its_timeout_is_corrected_by_a_recheck(peers, patron, book, settings):
    """The Book peer hangs: our 'lent' update times out, yet the peer applies it after the newer
    'returned' update. The re-check left by the timeout publishes the truth once more."""
    settings.PEER_READ_TIMEOUT = 0.3
    settings.OUTBOX_RECHECK_SECONDS = 2.0  # due well after the steps below, even on a loaded machine
    services.loan_lend(user_email=patron, book_id=book["id"])
    peers.book.faults.latency = 1.0
    deliver_everything_due()  # the "lent" update times out; the peer applies it 1 s after it came
    peers.book.faults.clear()
    recheck = OutboxMessage.objects.get(payload__has_key=relay.RECHECK)
    assert recheck.status == OutboxStatus.PENDING and recheck.next_attempt_at > timezone.now()

    services.loan_return(user_email=patron, book_id=book["id"])
    deliver_everything_due()  # "returned" is published and settles the lend's message, not the re-check
    assert OutboxMessage.objects.get(pk=recheck.pk).status == OutboxStatus.PENDING
    assert wait_until(lambda: peers.book.books[book["id"]]["available"] is False, timeout=5), (
        "the abandoned update never landed"
    )

    assert wait_until(
        lambda: (relay.run_once(), OutboxMessage.objects.get(pk=recheck.pk).status)[1] == OutboxStatus.DELIVERED,
        timeout=10,
    )
    assert peers.book.books[book["id"]]["available"] is True


@pytest.mark.django_db
def test_taking_over_an_abandoned_delivery_leaves_a_recheck(peers, patron, book):
    """A relay claimed the update and died, its request perhaps still on the wire. Another delivery
    of the book leaves that message alone; the relay that takes it over after the lease publishes,
    and leaves a re-check for the late write."""
    services.loan_lend(user_email=patron, book_id=book["id"])
    [abandoned] = [m for m in relay.claim_batch() if m.kind == OutboxKind.AVAILABILITY]  # then it died
    OutboxMessage.objects.filter(pk=abandoned.pk).update(next_attempt_at=timezone.now())  # the lease ran out
    services.loan_return(user_email=patron, book_id=book["id"])
    newer = OutboxMessage.objects.filter(kind=OutboxKind.AVAILABILITY).latest("id")

    relay.deliver(newer)
    assert OutboxMessage.objects.get(pk=abandoned.pk).status == OutboxStatus.PENDING, "settled by another"
    assert not OutboxMessage.objects.filter(payload__has_key=relay.RECHECK).exists()

    deliver_everything_due()

    assert OutboxMessage.objects.get(pk=abandoned.pk).status == OutboxStatus.DELIVERED
    assert peers.book.books[book["id"]]["available"] is True
    recheck = OutboxMessage.objects.get(payload__has_key=relay.RECHECK)
    assert recheck.status == OutboxStatus.PENDING and recheck.next_attempt_at > timezone.now()


@pytest.mark.django_db
def test_a_book_that_keeps_timing_out_gets_one_recheck_per_window(peers, patron, book, settings):
    settings.OUTBOX_RECHECK_SECONDS = 3600
    services.loan_lend(user_email=patron, book_id=book["id"])
    for _ in range(5):  # five attempts of one book time out within the hour
        relay._enqueue_recheck(book["id"])
    [recheck] = OutboxMessage.objects.filter(payload__has_key=relay.RECHECK)
    wait = (recheck.next_attempt_at - timezone.now()).total_seconds()
    assert 3600 - 5 <= wait <= 7200

    settings.OUTBOX_RECHECK_SECONDS = 0  # off
    OutboxMessage.objects.filter(pk=recheck.pk).delete()
    relay._enqueue_recheck(book["id"])
    assert not OutboxMessage.objects.filter(payload__has_key=relay.RECHECK).exists()


def make_notifications(count: int) -> list[str]:
    loans = Loan.objects.bulk_create(
        Loan(user_email=f"bulk{i}@example.com", book_id=i + 1, date_borrowed=timezone.now(), date_due=timezone.now())
        for i in range(count)
    )
    return [str(enqueue_notification(loan, MessageType.LENDING_CONFIRMATION).key) for loan in loans]


def delivered_count() -> int:
    return OutboxMessage.objects.filter(status=OutboxStatus.DELIVERED).count()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_relay_processes_deliver_each_message_exactly_once(peers):
    keys = make_notifications(300)
    before = len(peers.notification.notifications)
    duplicates_before = peers.notification.dedupe.duplicates
    env = service_env(peers, OUTBOX_BATCH_SIZE="10")
    relays = [start_manage("relay_outbox", env=env) for _ in range(2)]
    try:
        assert wait_until(lambda: delivered_count() == len(keys), timeout=60)
    finally:
        for process in relays:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)
    received = [n["idempotency_key"] for n in peers.notification.notifications[before:]]
    assert sorted(received) == sorted(keys)
    assert peers.notification.dedupe.duplicates == duplicates_before


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_relay_killed_mid_run_loses_nothing(peers):
    keys = make_notifications(60)
    before = len(peers.notification.notifications)
    # A claimed batch's notifications go in one call: slow enough that the kill lands mid-run.
    peers.notification.faults.latency = 0.3
    env = service_env(peers, OUTBOX_BATCH_SIZE="20", OUTBOX_LEASE_SECONDS="2")
    victim = start_manage("relay_outbox", env=env)
    assert wait_until(lambda: delivered_count() >= 5, timeout=30)
    victim.kill()
    victim.wait()
    assert delivered_count() < len(keys), "the relay finished before it could be killed"

    survivor = start_manage("relay_outbox", env=env)
    try:
        assert wait_until(lambda: delivered_count() == len(keys), timeout=60)
    finally:
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(timeout=10)
    received = {n["idempotency_key"] for n in peers.notification.notifications[before:]}
    assert received == set(keys)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_running_relay_publishes_a_lend_and_a_return_within_seconds(api, peers, patron, book):
    relay_process = start_manage("relay_outbox", env=service_env(peers))
    try:
        # The clock starts once the relay is up: it has delivered a warm-up message.
        make_notifications(1)
        assert wait_until(lambda: delivered_count() == 1, timeout=60)
        assert api.post("/lendBook/", {"user_email": patron, "book_id": book["id"]}, format="json").status_code == 201
        assert wait_until(lambda: peers.book.books[book["id"]]["available"] is False, timeout=5)
        assert wait_until(lambda: len(notifications_for(peers, patron)) == 1, timeout=5)

        assert api.post("/returnBook/", {"user_email": patron, "book_id": book["id"]}, format="json").status_code == 200
        assert wait_until(lambda: peers.book.books[book["id"]]["available"] is True, timeout=5)
        assert wait_until(lambda: len(notifications_for(peers, patron)) == 2, timeout=5)
    finally:
        relay_process.send_signal(signal.SIGTERM)
        relay_process.wait(timeout=10)
    assert [n["message_type"] for n in notifications_for(peers, patron)] == [
        "lending_confirmation",
        "return_confirmation",
    ]
