"""The chaos run's broker faults and events check, in small: the proxy's drops, stalls and refusals
make the relay's publisher fail (and recover) against the real local RabbitMQ, and the comparison of
received events with the database finds what is missing, invented or out of order."""

from __future__ import annotations

import uuid

import pytest

from lending.models import OutboxKind, OutboxMessage
from lending.outbox import broker
from tools.chaos.broker_proxy import BrokerProxy
from tools.chaos.events import BROKER, broker_answers, compare
from tools.chaos.stats import Stats

LENT, RETURNED = "org.library.lending.loan.lent.v1", "org.library.lending.loan.returned.v1"
EXPECTED = {"loan-1-1": (LENT, "1", 1), "loan-1-2": (RETURNED, "1", 2), "loan-2-1": (LENT, "2", 1)}


def event(event_id: str) -> dict:
    event_type, subject, sequence = EXPECTED[event_id]
    return {"id": event_id, "type": event_type, "subject": subject, "sequence": sequence}


def test_every_event_once_or_more_in_any_order_passes():
    stats = Stats()
    facts = compare(EXPECTED, [event("loan-1-2"), event("loan-2-1"), event("loan-1-1"), event("loan-1-2")], stats)
    assert not stats.violations, stats.violations
    assert facts["events: missing / unjustified"] == "0 / 0"
    assert facts["events: received on the bound queue"] == "4 (1 redelivered copies)"


def test_a_missing_event_is_a_violation():
    stats = Stats()
    compare(EXPECTED, [event("loan-1-1"), event("loan-2-1")], stats)
    assert stats.violations == ["1 recorded events never reached the queue, e.g. ['loan-1-2']"]


def test_an_event_the_database_does_not_justify_is_a_violation():
    stats = Stats()
    swapped = {**event("loan-1-1"), "type": RETURNED}
    compare(EXPECTED, [swapped, event("loan-1-2"), event("loan-2-1")], stats)
    assert any("is not what the database recorded" in v for v in stats.violations)
    assert any("reordered by sequence" in v for v in stats.violations)


needs_broker = pytest.mark.skipif(not broker_answers(), reason=f"no RabbitMQ at {BROKER}")


@pytest.fixture
def proxied(settings):
    proxy = BrokerProxy(BROKER).start()
    settings.EVENTS_BROKER_URL = f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F"
    settings.EVENTS_EXCHANGE = f"lending.events.test-{uuid.uuid4().hex[:8]}"
    settings.EVENTS_BROKER_TIMEOUT_SECONDS = 1
    broker.close()
    yield proxy
    broker.close()
    proxy.close()


def publish_one(n: int = 1) -> tuple[bool, list[str]]:
    message = OutboxMessage(kind=OutboxKind.EVENT, book_id=1, payload={"id": f"loan-1-{n}", "type": LENT})
    failures: list[str] = []
    confirmed = broker.publish([message], on_failure=lambda m, error, permanent: failures.append(error))
    return bool(confirmed), failures


@needs_broker
@pytest.mark.parametrize("fault", ["drops", "stalls", "refuses"])
def test_the_publisher_fails_on_each_broker_fault_then_recovers(proxied, fault):
    assert publish_one(1) == (True, [])
    if fault == "drops":
        proxied.drop()
    elif fault == "stalls":
        proxied.stalled.set()
    else:
        proxied.refusing.set()
        proxied.drop()
    confirmed, failures = publish_one(2)
    assert not confirmed and failures and "broker unavailable" in failures[0]
    proxied.stalled.clear()
    proxied.refusing.clear()
    assert publish_one(3) == (True, []), "the failed connection was dropped; the next publish opens a new one"
