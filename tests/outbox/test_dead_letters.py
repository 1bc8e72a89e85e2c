"""Dead letters: kept with their last error, counted, listed and replayed back to delivery."""

import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from lending.clients.http import all_peer_clients
from lending.models import OutboxKind, OutboxMessage, OutboxStatus
from lending.outbox import dead_letters, relay
from tests.conftest import post_json

pytestmark = pytest.mark.django_db


def command(*args) -> str:
    out = StringIO()
    call_command("dead_letters", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def run_relay_until_settled(timeout: float = 30) -> None:
    """Run the relay until no message is pending (backoff is made due at once)."""
    deadline = time.monotonic() + timeout
    while OutboxMessage.objects.filter(status=OutboxStatus.PENDING).exists():
        assert time.monotonic() < deadline, "the relay never settled"
        OutboxMessage.objects.filter(status=OutboxStatus.PENDING).update(next_attempt_at=timezone.now())
        relay.run_once()
        time.sleep(0.05)


@pytest.fixture
def dead(api, peers, patron, book, settings):
    """Two lends whose notifications exhausted their attempts while the Notification peer was down."""
    settings.OUTBOX_MAX_ATTEMPTS = 3
    other = peers.book.add_book("Second", "A", 1)
    post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})
    post_json(api, "/lendBook/", {"user_email": patron, "book_id": other["id"]})
    peers.notification.faults.status = 503
    run_relay_until_settled()
    peers.notification.faults.clear()
    for client in all_peer_clients():
        client.breaker.close()
    return list(OutboxMessage.objects.filter(status=OutboxStatus.DEAD).order_by("id"))


def test_exhausted_messages_are_kept_dead_with_their_last_error(dead):
    assert [m.kind for m in dead] == [OutboxKind.NOTIFICATION] * 2
    assert all(m.attempts == 3 and "Notification service is unavailable" in m.last_error for m in dead)
    assert OutboxMessage.objects.filter(kind=OutboxKind.AVAILABILITY, status=OutboxStatus.DELIVERED).exists()
    assert dead_letters.count() == 2
    assert command("count").strip() == "2"


def test_list_shows_id_key_kind_attempts_and_last_error(dead):
    lines = command("list").splitlines()
    assert len(lines) == 2
    fields = lines[0].split("\t")
    assert fields[:4] == [str(dead[0].pk), str(dead[0].key), "notification", "3"]
    assert "Notification service is unavailable" in fields[4]
    limited = command("list", "--limit", "1").splitlines()
    assert len(limited) == 2 and limited[1].startswith("... 1 more")


def test_replay_by_id_or_key_requeues_and_the_relay_delivers(dead, peers):
    assert "replayed 1 " in command("replay", str(dead[0].pk))
    replayed = OutboxMessage.objects.get(pk=dead[0].pk)
    assert (replayed.status, replayed.attempts) == (OutboxStatus.PENDING, 0)
    assert dead_letters.count() == 1

    assert "replayed 1 " in command("replay", str(dead[1].key))
    assert "replayed 0 " in command("replay", str(dead[1].key)), "replaying a live message does nothing"
    run_relay_until_settled()

    assert dead_letters.count() == 0
    delivered_keys = {n["idempotency_key"] for n in peers.notification.notifications}
    assert {str(m.key) for m in dead} <= delivered_keys


def test_replay_all(dead):
    assert "replayed 2 " in command("replay", "--all")
    assert dead_letters.count() == 0
    assert OutboxMessage.objects.filter(status=OutboxStatus.PENDING).count() == 2


def test_replay_function_takes_a_queryset_and_ignores_messages_that_are_not_dead(dead):
    assert dead_letters.replay(OutboxMessage.objects.all()) == 2


@pytest.mark.parametrize("args", [("replay",), ("replay", "--all", "1"), ("replay", "not-a-key")])
def test_replay_needs_all_or_valid_references(dead, args):
    with pytest.raises(CommandError):
        command(*args)
    assert dead_letters.count() == 2


def test_a_refused_message_is_dead_at_once(api, peers, patron, book):
    post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})
    peers.notification.faults.status = 400
    relay.run_once()
    message = OutboxMessage.objects.get(kind=OutboxKind.NOTIFICATION)
    assert (message.status, message.attempts) == (OutboxStatus.DEAD, 1)
    assert "refused" in message.last_error
