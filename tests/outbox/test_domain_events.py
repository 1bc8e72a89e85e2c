"""Domain events: each change of a loan or hold, written to the outbox with the change and published
by the relay as a CloudEvent on the real local RabbitMQ (127.0.0.1:5672), with publisher confirms."""

from __future__ import annotations

import json
import os
import socket
import uuid

import pika
import pytest
from prometheus_client import REGISTRY

from lending import services
from lending.events import domain_events
from lending.models import EventKind, OutboxKind, OutboxMessage, OutboxStatus
from lending.outbox import broker, relay
from lending.patron_ref import patron_ref

pytestmark = pytest.mark.django_db

BROKER_URL = os.environ.get("TEST_EVENTS_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def _broker_answers() -> bool:
    parameters = pika.URLParameters(BROKER_URL)
    try:
        socket.create_connection((parameters.host, parameters.port), timeout=1).close()
        return True
    except OSError:
        return False


needs_broker = pytest.mark.skipif(not _broker_answers(), reason=f"no RabbitMQ at {BROKER_URL}")


@pytest.fixture
def events_on(settings):
    """Events on, with a source of this test's own, so events of other runs on the broker are told apart."""
    settings.EVENTS_BROKER_URL = BROKER_URL
    settings.EVENTS_SOURCE = f"/lending/test-{uuid.uuid4().hex[:8]}"
    broker.close()
    yield settings
    broker.close()


@pytest.fixture
def consumer(events_on):
    """A queue bound to the exchange with `#` before anything is published; yields a reader of this
    test's events."""
    connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
    channel = connection.channel()
    channel.exchange_declare(events_on.EVENTS_EXCHANGE, exchange_type="topic", durable=True)
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, events_on.EVENTS_EXCHANGE, routing_key="#")

    def received() -> list[tuple[pika.BasicProperties, dict]]:
        messages = []
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return messages
            event = json.loads(body)
            if event["source"] == events_on.EVENTS_SOURCE:
                messages.append((method, properties, event))

    yield received
    connection.close()


def deliver_everything_due() -> None:
    relay.run_once()


@needs_broker
def test_a_lend_a_renewal_and_a_return_are_three_cloudevents_in_order(peers, patron, book, consumer):
    loan = services.loan_lend(user_email=patron, book_id=book["id"])
    services.loan_renew(user_email=patron, book_id=book["id"])
    services.loan_return(user_email=patron, book_id=book["id"])
    deliver_everything_due()

    received = consumer()
    events = [event for _, _, event in received]
    assert [event["type"] for event in events] == [
        "org.library.lending.loan.lent.v1",
        "org.library.lending.loan.renewed.v1",
        "org.library.lending.loan.returned.v1",
    ]
    assert [event["sequence"] for event in events] == [1, 2, 3]
    assert {event["subject"] for event in events} == {str(loan.pk)}
    assert len({event["id"] for event in events}) == 3
    assert [event["data"]["status"] for event in events] == ["ACTIVE", "ACTIVE", "RETURNED"]
    assert events[1]["data"]["renewals"] == 1
    for method, properties, event in received:
        assert event["specversion"] == "1.0" and event["time"].endswith("Z")
        assert "user_email" not in event["data"], "a broadcast never carries the patron"
        assert patron not in json.dumps(event) and event["data"]["patron_ref"] == patron_ref(patron)
        assert event["data"]["item_barcode"] is None, "a title-level loan"
        assert method.routing_key == event["type"]
        assert properties.delivery_mode == pika.DeliveryMode.Persistent.value
        assert properties.content_type == "application/cloudevents+json"
    assert not OutboxMessage.objects.filter(kind=OutboxKind.EVENT).exclude(status=OutboxStatus.DELIVERED).exists()


@needs_broker
def test_a_hold_is_its_own_subject(peers, patron, book, consumer):
    other = peers.user.add_user(f"other-{uuid.uuid4().hex[:8]}@example.com")["email"]
    services.loan_lend(user_email=other, book_id=book["id"])
    hold = services.hold_reserve(user_email=patron, book_id=book["id"]).hold
    services.loan_return(user_email=other, book_id=book["id"])
    deliver_everything_due()

    hold_events = [event for _, _, event in consumer() if event["type"].startswith("org.library.lending.hold.")]
    assert [(event["type"], event["subject"], event["sequence"]) for event in hold_events] == [
        ("org.library.lending.hold.placed.v1", str(hold.pk), 1),
        ("org.library.lending.hold.ready.v1", str(hold.pk), 2),
    ]
    assert hold_events[1]["data"]["status"] == "READY" and hold_events[1]["data"]["pickup_deadline"]


@needs_broker
def test_a_refusal_by_the_broker_leaves_the_event_pending_until_it_confirms(peers, patron, book, events_on):
    """A queue that rejects every publish makes the broker nack: the message is not delivered."""
    events_on.EVENTS_EXCHANGE = f"lending.events.test-{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
    channel = connection.channel()
    channel.exchange_declare(events_on.EVENTS_EXCHANGE, exchange_type="topic", durable=True)
    full = channel.queue_declare(
        "", exclusive=True, arguments={"x-max-length": 0, "x-overflow": "reject-publish"}
    ).method.queue
    channel.queue_bind(full, events_on.EVENTS_EXCHANGE, routing_key="#")
    try:
        services.loan_lend(user_email=patron, book_id=book["id"])
        deliver_everything_due()
        event = OutboxMessage.objects.get(kind=OutboxKind.EVENT)
        assert (event.status, event.attempts) == (OutboxStatus.PENDING, 1)
        assert "nack" in event.last_error

        channel.queue_delete(full)
        relay.deliver_batch(relay.claim_batch(due_by=event.next_attempt_at))
        event.refresh_from_db()
        assert event.status == OutboxStatus.DELIVERED
    finally:
        channel.exchange_delete(events_on.EVENTS_EXCHANGE)
        connection.close()


def deliveries(outcome: str, event_type: str = "loan_lent_v1") -> float:
    """Delivery attempts of events of one CloudEvent type (org.library.lending.loan.lent.v1)."""
    labels = {"channel": "amqp", "peer": "rabbitmq", "message_type": event_type, "outcome": outcome}
    return REGISTRY.get_sample_value("lending_outbox_deliveries_total", labels) or 0.0


@needs_broker
def test_deliveries_are_counted_on_the_amqp_channel_by_event_type(peers, patron, book, consumer):
    before = deliveries("delivered")
    services.loan_lend(user_email=patron, book_id=book["id"])
    deliver_everything_due()
    assert deliveries("delivered") == before + 1


def test_a_broker_that_does_not_answer_leaves_the_events_pending(peers, patron, book, events_on):
    retries = deliveries("retry")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nothing listens there once closed
    events_on.EVENTS_BROKER_URL = f"amqp://guest:guest@127.0.0.1:{port}/%2F"
    services.loan_lend(user_email=patron, book_id=book["id"])
    deliver_everything_due()

    event = OutboxMessage.objects.get(kind=OutboxKind.EVENT)
    assert (event.status, event.attempts) == (OutboxStatus.PENDING, 1)
    assert "broker unavailable" in event.last_error
    assert deliveries("retry") == retries + 1
    assert OutboxMessage.objects.get(kind=OutboxKind.NOTIFICATION).status == OutboxStatus.DELIVERED


def test_no_broker_url_writes_no_events(peers, patron, book, settings):
    settings.EVENTS_BROKER_URL = ""
    services.loan_lend(user_email=patron, book_id=book["id"])
    assert not OutboxMessage.objects.filter(kind=OutboxKind.EVENT).exists()


def test_the_event_message_is_written_with_the_change(peers, patron, book, events_on):
    loan = services.loan_lend(user_email=patron, book_id=book["id"])
    [message] = OutboxMessage.objects.filter(kind=OutboxKind.EVENT)
    assert message.payload["id"] == f"loan-{loan.pk}-1"
    assert message.payload["source"] == events_on.EVENTS_SOURCE
    assert message.payload["data"]["date_due"] == loan.date_due.isoformat().replace("+00:00", "Z")


@pytest.mark.django_db(transaction=False)
def test_every_kind_of_change_is_published_or_declared_internal():
    for kind in EventKind:
        assert (kind in domain_events.VERBS) != (kind in domain_events.INTERNAL_KINDS), kind
