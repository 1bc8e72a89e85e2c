"""The Notification service's optional batch call, `POST /send-notifications`: the reference peer's
side (per-item outcomes, idempotency keys shared with the single call, the cap, faults) and the
client's (per-item statuses, a 404 remembered for a while, an answer outside the contract)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from lending.clients import notifications
from lending.errors import PeerUnavailable
from tools.reference_peers.notification import MAX_BATCH
from tools.reference_peers.server import PeerServer, Request, Router


@pytest.fixture(autouse=True)
def _batch_support_unknown():
    """Each test starts (and leaves the process) asking the peer for batches."""
    notifications.forget_missing_batch_endpoint()
    yield
    notifications.forget_missing_batch_endpoint()


def notification(email: str, message_type: str = "lending_confirmation") -> dict:
    return {"user_email": email, "message_type": message_type, "book_title": "T", "due_date": "2030-01-01"}


def new_key() -> str:
    return str(uuid.uuid4())


def post(url: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def stored(peers, key: str) -> list[dict]:
    return [n for n in peers.notification.notifications if n["idempotency_key"] == key]


def test_a_batch_answers_each_item_as_the_single_call_would(peers):
    seen_before, fresh, malformed = new_key(), new_key(), new_key()
    assert notifications.send_notification(notification("a@example.com"), idempotency_key=seen_before) == 202
    batches = len(peers.notification.batches)

    statuses = notifications.send_notifications(
        [
            (seen_before, notification("a@example.com")),
            (fresh, notification("b@example.com")),
            (malformed, {"user_email": "c@example.com"}),
        ]
    )

    assert statuses == [200, 202, 400]
    assert peers.notification.batches[batches:] == [3], "one call for the three"
    assert len(stored(peers, seen_before)) == 1 and len(stored(peers, fresh)) == 1 and not stored(peers, malformed)
    # A key the batch took is a repeat for the single call too.
    assert notifications.send_notification(notification("b@example.com"), idempotency_key=fresh) == 200


def test_the_peer_refuses_a_list_over_its_cap_or_of_another_shape_whole(peers):
    url = f"{peers.notification.url}/send-notifications"
    received = len(peers.notification.notifications)
    too_many = [{"idempotency_key": new_key(), "notification": notification("x@example.com")}] * (MAX_BATCH + 1)
    assert post(url, {"notifications": too_many})[0] == 413
    for body in ([], {"notifications": {}}, {"notifications": [{"notification": {}}]}, {"notifications": ["k"]}):
        assert post(url, body)[0] == 400, body
    assert len(peers.notification.notifications) == received, "a refused batch applies nothing"
    assert post(url, {"notifications": []}) == (200, {"results": []})


def test_the_client_never_sends_more_than_the_cap(peers):
    with pytest.raises(ValueError):
        notifications.send_notifications([(new_key(), notification("x@example.com"))] * (notifications.MAX_BATCH + 1))
    assert notifications.MAX_BATCH <= MAX_BATCH


def test_the_peers_faults_apply_to_the_batch_call(peers, settings):
    settings.PEER_BREAKER_FAIL_MAX = 100
    key = new_key()
    peers.notification.faults.status = 503
    with pytest.raises(PeerUnavailable):
        notifications.send_notifications([(key, notification("f@example.com"))])
    assert not stored(peers, key)


def test_a_peer_without_the_batch_endpoint_is_not_asked_again_for_a_while(peers, monkeypatch):
    monkeypatch.setattr(peers.notification, "accepts_batches", False)
    assert notifications.batches_accepted()
    assert notifications.send_notifications([(new_key(), notification("n@example.com"))]) is None
    assert not notifications.batches_accepted()
    remembered = notifications._no_batch_until[peers.notification.url] - time.monotonic()
    assert notifications.NO_BATCH_MEMORY_SECONDS - 60 < remembered <= notifications.NO_BATCH_MEMORY_SECONDS

    notifications._no_batch_until[peers.notification.url] = time.monotonic() - 1  # the while has passed
    assert notifications.batches_accepted()


def test_another_refusal_of_the_whole_batch_means_one_by_one_this_time(peers):
    peers.notification.faults.status = 413  # a peer with a smaller cap
    assert notifications.send_notifications([(new_key(), notification("s@example.com"))]) is None
    assert notifications.batches_accepted(), "only a 404 is remembered"


class _OffContractPeer(PeerServer):
    """A Notification service whose batch answer is not the contract's."""

    answer: Any = {"results": []}

    def register_routes(self, router: Router) -> None:
        router.add("POST", "/send-notifications", self.send_batch)

    def send_batch(self, request: Request) -> tuple[int, Any]:
        return 200, self.answer


@pytest.mark.parametrize(
    "answer",
    [
        {"results": []},  # the item is missing
        {"results": [{"idempotency_key": "someone-else", "status": 202}]},
        {"results": [{"idempotency_key": "k", "status": "202"}]},
        {"results": [{"idempotency_key": "k", "status": True}]},
        {"results": "202"},
        ["202"],
    ],
)
def test_an_answer_outside_the_contract_is_a_failure_of_the_whole_batch(peers, settings, answer):
    off_contract = _OffContractPeer()
    off_contract.answer = answer
    off_contract.start()
    try:
        settings.NOTIFICATION_SERVICE_URL = off_contract.url
        with pytest.raises(PeerUnavailable):
            notifications.send_notifications([("k", notification("o@example.com"))])
    finally:
        off_contract.stop()
