"""Publishing the domain events' outbox messages to RabbitMQ (EVENTS_BROKER_URL), for the relay.

Each message goes to the durable topic exchange EVENTS_EXCHANGE with the event's type as routing
key, persistent, on a channel in confirm mode: a message counts as delivered only once the broker
confirmed it. A refusal (nack) or a broken connection is a failure like a peer's, retried with the
relay's backoff; a broken connection fails the rest of the batch at once (they would wait for the
same dead socket) and is reopened on the next batch. A broker that stops answering is noticed by
the AMQP heartbeat and the socket timeouts (EVENTS_BROKER_TIMEOUT_SECONDS), so a stall cannot hold
the relay for long.

One connection per relay process, used from the relay's own thread only (pika's connections are not
thread-safe; the thread pool makes only the HTTP calls).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pika
import pika.exceptions
from django.conf import settings

from lending.models import OutboxMessage
from lending.observability import tracing

logger = logging.getLogger(__name__)

CLOUDEVENTS_JSON = "application/cloudevents+json"
PERSISTENT = pika.DeliveryMode.Persistent

Failure = Callable[..., None]  # relay._record_failure(message, error, permanent=...)

_lock = threading.Lock()
_connection: pika.BlockingConnection | None = None
_channel = None


def connection_parameters(url: str) -> pika.URLParameters:
    """The URL's parameters; timeouts the URL does not set come from EVENTS_BROKER_TIMEOUT_SECONDS."""
    parameters = pika.URLParameters(url)
    given = parse_qs(urlsplit(url).query)
    timeout = settings.EVENTS_BROKER_TIMEOUT_SECONDS
    defaults = {
        "heartbeat": max(1, math.ceil(timeout)),
        "socket_timeout": timeout,
        "stack_timeout": 2 * timeout,
        "blocked_connection_timeout": timeout,
        "connection_attempts": 1,
    }
    for name, value in defaults.items():
        if name not in given:
            setattr(parameters, name, value)
    return parameters


def _open_channel():
    global _connection, _channel
    if _channel is not None and _channel.is_open:
        return _channel
    close()
    _connection = pika.BlockingConnection(connection_parameters(settings.EVENTS_BROKER_URL))
    channel = _connection.channel()
    channel.exchange_declare(settings.EVENTS_EXCHANGE, exchange_type="topic", durable=True)
    channel.confirm_delivery()
    _channel = channel
    return channel


def close() -> None:
    """Drops the connection (the next publish opens a new one)."""
    global _connection, _channel
    connection, _connection, _channel = _connection, None, None
    if connection is not None and connection.is_open:
        try:
            connection.close()
        except Exception:  # already broken: nothing to close cleanly
            logger.debug("closing the broker connection failed", exc_info=True)


def body(message: OutboxMessage) -> bytes:
    """The CloudEvent as published: the stored one plus the trace context of the change."""
    event = dict(message.payload)
    if message.traceparent:
        event["traceparent"] = message.traceparent
    return json.dumps(event, separators=(",", ":")).encode()


def publish(messages: list[OutboxMessage], on_failure: Failure) -> list[OutboxMessage]:
    """Publishes the messages in order; returns those the broker confirmed. Each failure is handed
    to `on_failure` (the relay records it and schedules the retry)."""
    if not messages:
        return []
    with _lock:
        return _publish_all(messages, on_failure)


def _publish_all(messages: list[OutboxMessage], on_failure: Failure) -> list[OutboxMessage]:
    confirmed: list[OutboxMessage] = []
    for index, message in enumerate(messages):
        try:
            _publish_one(message)
        except pika.exceptions.NackError:
            on_failure(message, "the broker refused the event (nack)", permanent=False)
        except (pika.exceptions.AMQPError, OSError) as error:
            close()
            reason = f"broker unavailable: {type(error).__name__} {error}".strip()
            for failed in messages[index:]:
                on_failure(failed, reason, permanent=False)
            break
        else:
            confirmed.append(message)
    return confirmed


def _publish_one(message: OutboxMessage) -> None:
    event_type = message.payload["type"]
    with tracing.continuing(message.traceparent, f"publish {event_type}", **{"messaging.system": "rabbitmq"}):
        _open_channel().basic_publish(
            exchange=settings.EVENTS_EXCHANGE,
            routing_key=event_type,
            body=body(message),
            properties=pika.BasicProperties(
                content_type=CLOUDEVENTS_JSON,
                delivery_mode=PERSISTENT,
                message_id=message.payload["id"],
                type=event_type,
            ),
        )
