"""The relay delivers a claimed batch's notifications in one call (`POST /send-notifications`) when the
Notification service takes batches, one call each when it answers 404 there; each message keeps its
own outcome (delivered, retried with backoff, dead), and a repeat after a failure or a dead relay is
dropped by its idempotency key."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from lending.clients import notifications
from lending.models import Loan, OutboxMessage, OutboxStatus
from lending.outbox import relay
from lending.outbox.messages import MessageType, enqueue_notification
from tests.outbox.killed import run_once_killed_before_settling
from tests.processes import wait_until
from tools.reference_peers.server import PeerServer, Request, Router


@pytest.fixture(autouse=True)
def _batch_support_unknown():
    """Each test starts (and leaves the process) asking the peer for batches."""
    notifications.forget_missing_batch_endpoint()
    yield
    notifications.forget_missing_batch_endpoint()


def make_notifications(count: int) -> list[OutboxMessage]:
    """`count` lending confirmations of loans made in bulk (no availability message, no peer call)."""
    now, run = timezone.now(), uuid.uuid4().hex[:8]
    loans = Loan.objects.bulk_create(
        Loan(user_email=f"batch{i}-{run}@example.com", book_id=800_000 + i, date_borrowed=now, date_due=now)
        for i in range(count)
    )
    return [enqueue_notification(loan, MessageType.LENDING_CONFIRMATION) for loan in loans]


def statuses(messages: list[OutboxMessage]) -> list[str]:
    return [OutboxMessage.objects.get(pk=message.pk).status for message in messages]


def stored_once(peers, messages: list[OutboxMessage]) -> bool:
    received = [n["idempotency_key"] for n in peers.notification.notifications]
    return all(received.count(str(message.key)) == 1 for message in messages)


def make_due(messages: list[OutboxMessage]) -> None:
    """The backoff (or the lease) ran out."""
    OutboxMessage.objects.filter(pk__in=[m.pk for m in messages]).update(next_attempt_at=timezone.now())


@pytest.mark.django_db
def test_a_batch_of_notifications_goes_in_one_call(peers):
    messages = make_notifications(5)
    batches, received = len(peers.notification.batches), len(peers.notification.notifications)

    relay.run_once()

    assert statuses(messages) == [OutboxStatus.DELIVERED] * 5
    assert peers.notification.batches[batches:] == [5]
    assert len(peers.notification.notifications) == received + 5, "no call but the batch"
    assert stored_once(peers, messages)
    sent = next(n for n in peers.notification.notifications if n["idempotency_key"] == str(messages[0].key))
    assert {k: sent[k] for k in messages[0].payload} == messages[0].payload, "the single call's body"


@pytest.mark.django_db
def test_a_claimed_batch_over_the_peers_cap_is_sent_in_several_calls(peers, settings):
    settings.OUTBOX_BATCH_SIZE = notifications.MAX_BATCH + 20
    messages = make_notifications(notifications.MAX_BATCH + 1)
    batches = len(peers.notification.batches)

    relay.run_once()

    assert peers.notification.batches[batches:] == [notifications.MAX_BATCH, 1]
    assert set(statuses(messages)) == {OutboxStatus.DELIVERED}


@pytest.mark.django_db
def test_an_item_the_peer_refuses_is_dead_and_the_others_delivered(peers):
    messages = make_notifications(3)
    refused = messages[1]
    OutboxMessage.objects.filter(pk=refused.pk).update(payload={**refused.payload, "user_email": ""})

    relay.run_once()

    assert statuses(messages) == [OutboxStatus.DELIVERED, OutboxStatus.DEAD, OutboxStatus.DELIVERED]
    dead = OutboxMessage.objects.get(pk=refused.pk)
    assert dead.attempts == 1 and "400" in dead.last_error
    assert stored_once(peers, [messages[0], messages[2]])


@pytest.mark.django_db
def test_a_peer_without_the_batch_endpoint_gets_one_call_per_notification(peers, monkeypatch):
    monkeypatch.setattr(peers.notification, "accepts_batches", False)
    first = make_notifications(3)
    batches = len(peers.notification.batches)

    relay.run_once()  # the batch call answers 404: the same messages go one by one

    assert statuses(first) == [OutboxStatus.DELIVERED] * 3 and stored_once(peers, first)
    assert not notifications.batches_accepted()

    def asked_again(batch):
        raise AssertionError("the batch endpoint was asked again within the while")

    monkeypatch.setattr(notifications, "send_notifications", asked_again)
    second = make_notifications(3)
    relay.run_once()

    assert statuses(second) == [OutboxStatus.DELIVERED] * 3 and stored_once(peers, second)
    assert len(peers.notification.batches) == batches


@pytest.mark.django_db
def test_a_batch_failing_with_5xx_is_retried_for_every_message(peers, settings):
    settings.PEER_BREAKER_FAIL_MAX = 100
    settings.OUTBOX_BACKOFF_BASE_SECONDS = 30
    settings.OUTBOX_BACKOFF_MAX_SECONDS = 60
    peers.notification.faults.status = 503
    messages = make_notifications(3)

    relay.run_once()

    for message in OutboxMessage.objects.filter(pk__in=[m.pk for m in messages]):
        assert message.status == OutboxStatus.PENDING and message.attempts == 1 and "503" in message.last_error
        assert message.next_attempt_at > timezone.now() + timedelta(seconds=10), "retried after its backoff"

    peers.notification.faults.clear()
    batches = len(peers.notification.batches)
    make_due(messages)
    relay.run_once()

    assert statuses(messages) == [OutboxStatus.DELIVERED] * 3 and stored_once(peers, messages)
    assert peers.notification.batches[batches:] == [3]


@pytest.mark.django_db
def test_a_batch_applied_after_its_timeout_is_not_stored_twice(peers, settings):
    settings.PEER_READ_TIMEOUT = 0.2
    settings.PEER_BREAKER_FAIL_MAX = 100
    peers.notification.faults.latency = 0.5
    messages = make_notifications(3)

    relay.run_once()

    assert [m.attempts for m in OutboxMessage.objects.filter(pk__in=[m.pk for m in messages])] == [1, 1, 1]
    assert wait_until(lambda: stored_once(peers, messages), timeout=5), "the late batch landed"

    peers.notification.faults.clear()
    duplicates = peers.notification.dedupe.duplicates
    make_due(messages)
    relay.run_once()

    assert statuses(messages) == [OutboxStatus.DELIVERED] * 3
    assert stored_once(peers, messages)
    assert peers.notification.dedupe.duplicates == duplicates + 3, "the retry reached the peer, which kept the first"


@pytest.mark.django_db
def test_a_relay_killed_after_the_batch_and_before_settling_delivers_each_once(peers, monkeypatch):
    messages = make_notifications(4)
    run_once_killed_before_settling(monkeypatch)
    for claimed in OutboxMessage.objects.filter(pk__in=[m.pk for m in messages]):
        assert (claimed.status, claimed.claims, claimed.attempts) == (OutboxStatus.PENDING, 1, 0)
    assert stored_once(peers, messages), "the batch landed before the relay died"

    duplicates = peers.notification.dedupe.duplicates
    make_due(messages)  # the lease ran out
    relay.run_once()

    assert statuses(messages) == [OutboxStatus.DELIVERED] * 4
    assert stored_once(peers, messages)
    assert peers.notification.dedupe.duplicates == duplicates + 4


class _OneItemFailingPeer(PeerServer):
    """A Notification service that fails the batch's first item (503) and takes the others."""

    def register_routes(self, router: Router) -> None:
        router.add("POST", "/send-notifications", self.send_batch)

    def send_batch(self, request: Request) -> tuple[int, Any]:
        keys = [item["idempotency_key"] for item in request.body["notifications"]]
        return 200, {"results": [{"idempotency_key": key, "status": 503 if key == keys[0] else 202} for key in keys]}


@pytest.mark.django_db
def test_an_item_the_peer_fails_is_retried_and_the_others_delivered(peers, settings):
    failing = _OneItemFailingPeer().start()
    try:
        settings.NOTIFICATION_SERVICE_URL = failing.url
        messages = make_notifications(3)
        relay.run_once()
    finally:
        failing.stop()

    assert statuses(messages) == [OutboxStatus.PENDING, OutboxStatus.DELIVERED, OutboxStatus.DELIVERED]
    retried = OutboxMessage.objects.get(pk=messages[0].pk)
    assert retried.attempts == 1 and "503" in retried.last_error
