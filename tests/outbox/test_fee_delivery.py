"""The relay delivers fee messages to the Fees service (POST /fees): exactly one fee per assessment
under retries, timeouts and a relay that dies between the POST and settling; a conflicting fee is
a dead letter at once."""

from __future__ import annotations

import signal
import uuid

import pytest
from django.utils import timezone

from lending import services
from lending.models import Loan, OutboxKind, OutboxMessage, OutboxStatus
from lending.outbox import relay
from lending.outbox.messages import enqueue, fee_message, fee_payload
from lending.patron_ref import patron_ref
from tests.outbox.killed import run_once_killed_before_settling
from tests.processes import service_env, start_manage, wait_until


def enqueue_fee(loan, *, kind: str = "overdue", amount: str = "0.75") -> OutboxMessage:
    payload = fee_payload(assessment_id=str(uuid.uuid4()), loan=loan, kind=kind, amount=amount, currency="EUR")
    return enqueue(fee_message(payload, book_id=loan.book_id))[0]


def fees_with_id(peers, fee_id: str) -> list[dict]:
    return [fee for fee in peers.fees.fees.values() if fee["id"] == fee_id]


@pytest.fixture
def loan(peers, patron, book):
    return services.loan_lend(user_email=patron, book_id=book["id"])


@pytest.mark.django_db
def test_the_fee_message_carries_the_contract_and_no_email(loan):
    message = enqueue_fee(loan)
    assert message.kind == OutboxKind.FEE
    assert set(message.payload) == {"id", "patron_ref", "loan_id", "kind", "amount", "currency"}
    assert message.payload["patron_ref"] == patron_ref(loan.user_email)
    assert loan.user_email not in str(message.payload)


@pytest.mark.django_db
def test_a_fee_reaches_the_fees_service_once_and_counts_in_the_balance(peers, loan):
    message = enqueue_fee(loan, amount="1.25")
    relay.run_once()
    relay.run_once()

    assert OutboxMessage.objects.get(pk=message.pk).status == OutboxStatus.DELIVERED
    assert fees_with_id(peers, message.payload["id"]) == [message.payload]
    assert str(peers.fees.balance_of(message.payload["patron_ref"])) == "1.25"
    assert not [n for n in peers.notification.notifications if n.get("id") == message.payload["id"]]


@pytest.mark.django_db
def test_a_fee_failing_with_5xx_is_retried_and_recorded_once(peers, loan, settings):
    settings.PEER_BREAKER_FAIL_MAX = 100
    peers.fees.faults.status = 503
    message = enqueue_fee(loan)
    relay.run_once()

    failed = OutboxMessage.objects.get(pk=message.pk)
    assert failed.status == OutboxStatus.PENDING and failed.attempts == 1 and "503" in failed.last_error
    assert fees_with_id(peers, message.payload["id"]) == []

    peers.fees.faults.clear()
    OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())  # the backoff elapsed
    relay.run_once()
    assert OutboxMessage.objects.get(pk=message.pk).status == OutboxStatus.DELIVERED
    assert len(fees_with_id(peers, message.payload["id"])) == 1


@pytest.mark.django_db
def test_a_fee_applied_after_its_timeout_is_not_recorded_twice(peers, loan, settings):
    """The relay stops waiting, the Fees service records the fee anyway; the retry with the same
    id is answered 200 with the fee as stored, and the ledger holds it once."""
    settings.PEER_READ_TIMEOUT = 0.2
    settings.PEER_BREAKER_FAIL_MAX = 100
    peers.fees.faults.latency = 0.5
    message = enqueue_fee(loan)
    relay.run_once()
    assert OutboxMessage.objects.get(pk=message.pk).attempts == 1
    assert wait_until(lambda: fees_with_id(peers, message.payload["id"]), timeout=5), "the late write landed"

    peers.fees.faults.clear()
    repeats = peers.fees.repeats
    OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    relay.run_once()

    assert OutboxMessage.objects.get(pk=message.pk).status == OutboxStatus.DELIVERED
    assert len(fees_with_id(peers, message.payload["id"])) == 1
    assert peers.fees.repeats == repeats + 1, "the retry reached the peer, which kept the first"


@pytest.mark.django_db
def test_a_relay_killed_after_the_post_and_before_settling_leaves_one_fee(peers, loan, monkeypatch):
    message = enqueue_fee(loan, amount="2.00")
    run_once_killed_before_settling(monkeypatch)
    claimed = OutboxMessage.objects.get(pk=message.pk)
    assert claimed.status == OutboxStatus.PENDING and claimed.claims == 1 and claimed.attempts == 0
    assert len(fees_with_id(peers, message.payload["id"])) == 1, "the POST landed before the relay died"

    OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())  # the lease ran out
    relay.run_once()

    assert OutboxMessage.objects.get(pk=message.pk).status == OutboxStatus.DELIVERED
    assert len(fees_with_id(peers, message.payload["id"])) == 1
    assert str(peers.fees.balance_of(message.payload["patron_ref"])) == "2.00"


@pytest.mark.django_db
def test_a_conflicting_fee_with_the_same_id_is_dead_at_once(peers, loan):
    message = enqueue_fee(loan, amount="0.75")
    peers.fees.add_fee(message.payload["patron_ref"], "9.99", fee_id=message.payload["id"])
    relay.run_once()

    dead = OutboxMessage.objects.get(pk=message.pk)
    assert dead.status == OutboxStatus.DEAD and dead.attempts == 1 and "409" in dead.last_error
    assert [fee["amount"] for fee in fees_with_id(peers, message.payload["id"])] == ["9.99"]


@pytest.mark.django_db
def test_a_fee_the_service_refuses_as_malformed_is_dead_at_once(peers, loan):
    message = enqueue_fee(loan)
    OutboxMessage.objects.filter(pk=message.pk).update(payload={**message.payload, "amount": "-1"})
    relay.run_once()
    dead = OutboxMessage.objects.get(pk=message.pk)
    assert dead.status == OutboxStatus.DEAD and "400" in dead.last_error


def make_fees(count: int) -> list[dict]:
    """`count` fee messages of loans made in bulk (no peer involved)."""
    now = timezone.now()
    loans = Loan.objects.bulk_create(
        Loan(user_email=f"fees{i}@example.com", book_id=900_000 + i, date_borrowed=now, date_due=now)
        for i in range(count)
    )
    return [enqueue_fee(loan, amount="0.50").payload for loan in loans]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_relay_process_killed_mid_run_charges_every_fee_once(peers):
    """A real relay is killed while POSTing (some fees landed, their messages not settled); the next
    relay redelivers them with the same ids and the Fees service keeps one fee per id."""
    sent = make_fees(40)
    peers.fees.faults.latency = 0.05
    env = service_env(peers, OUTBOX_BATCH_SIZE="20", OUTBOX_LEASE_SECONDS="2")
    victim = start_manage("relay_outbox", env=env)
    assert wait_until(lambda: delivered_fees() >= 5, timeout=30)
    victim.kill()
    victim.wait()
    assert delivered_fees() < len(sent), "the relay finished before it could be killed"

    survivor = start_manage("relay_outbox", env=env)
    try:
        assert wait_until(lambda: delivered_fees() == len(sent), timeout=60)
    finally:
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(timeout=10)
    for fee in sent:
        assert fees_with_id(peers, fee["id"]) == [fee]


def delivered_fees() -> int:
    return OutboxMessage.objects.filter(kind=OutboxKind.FEE, status=OutboxStatus.DELIVERED).count()
