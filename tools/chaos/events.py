"""Domain events under chaos: the relays publish through a faulty proxy (tools/chaos/broker_proxy.py) to the
local RabbitMQ, on an exchange of the run's own, and a queue bound with `#` before the first request
collects what the broker confirmed. After the drain, `check` compares it with the database:

- every event the database records (its `Event` rows of published kinds) arrived at least once;
- a subject's events, reordered by `sequence` and with duplicates dropped, are 1..n with the types
  the database gives them in that order;
- nothing arrived that the database does not justify (an unknown id, or one whose type or subject
  disagrees with the row).

Without a broker on 127.0.0.1:5672 the run goes on without events, and the report says so.
"""

from __future__ import annotations

import json
import os
import random
import socket
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from tools.chaos.broker_proxy import BrokerFaults, BrokerProxy
from tools.chaos.stats import Stats

BROKER = ("127.0.0.1", 5672)
CREDENTIALS = "guest:guest"


def broker_answers() -> bool:
    try:
        socket.create_connection(BROKER, timeout=1).close()
        return True
    except OSError:
        return False


@dataclass
class EventsUnderChaos:
    """The proxy, the run's exchange and queue, and the broker faults of one chaos run."""

    env: dict[str, str]
    name: str = field(default_factory=lambda: f"lending.events.chaos-{os.getpid()}")
    proxy: BrokerProxy | None = None
    faults: BrokerFaults | None = None
    stopping: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def wire(cls, env: dict[str, str]) -> EventsUnderChaos | None:
        """Points the service's environment at the proxy (before any process starts); None without a broker."""
        if not broker_answers():
            return None
        events = cls(env)
        events.proxy = BrokerProxy(BROKER).start()
        env.update(
            {
                "EVENTS_BROKER_URL": f"amqp://{CREDENTIALS}@127.0.0.1:{events.proxy.port}/%2F",
                "EVENTS_EXCHANGE": events.name,
                # A stalled broker is given up on fast, so a relay is back to its other work quickly.
                "EVENTS_BROKER_TIMEOUT_SECONDS": "2",
            }
        )
        events.bind()
        return events

    def _channel(self):
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(f"amqp://{CREDENTIALS}@{BROKER[0]}:{BROKER[1]}/%2F"))
        return connection, connection.channel()

    def bind(self) -> None:
        """The consumer's queue, bound from the start (it keeps what arrives while nobody reads)."""
        connection, channel = self._channel()
        channel.exchange_declare(self.name, exchange_type="topic", durable=True)
        channel.queue_declare(self.name, durable=True)
        channel.queue_bind(self.name, self.name, routing_key="#")
        connection.close()

    def start_faults(self, interval: float, rng: random.Random) -> None:
        """Broker faults every `interval` seconds or so, until `stop_faults`."""
        if self.proxy is None:
            raise RuntimeError("the broker proxy is not running: start it before its faults")
        self.faults = BrokerFaults(self.proxy, interval, self.stopping, rng)
        self.faults.start()

    def stop_faults(self) -> None:
        self.stopping.set()
        if self.faults is not None:
            self.faults.join(30)

    def received(self) -> list[dict]:
        connection, channel = self._channel()
        events = []
        while True:
            method, _, body = channel.basic_get(self.name, auto_ack=True)
            if method is None:
                break
            events.append(json.loads(body))
        connection.close()
        return events

    def clean_up(self) -> None:
        if self.proxy is not None:
            self.proxy.close()
        try:
            connection, channel = self._channel()
            channel.queue_delete(self.name)
            channel.exchange_delete(self.name)
            connection.close()
        except Exception as exc:  # the report matters more than the clean-up
            print(f"events: could not delete queue and exchange {self.name}: {exc}", flush=True)

    def check(self, stats: Stats) -> dict:
        """Compares the events received with the database; violations go to `stats`. Returns the facts."""
        expected = expected_events()
        received = self.received()
        facts = compare(expected, received, stats)
        if self.faults is not None:
            facts["events: broker faults (1-4 s each)"] = self.faults.summary()
        return facts


def expected_events() -> dict[str, tuple[str, str, int]]:
    """id -> (type, subject, sequence) of every event the database justifies."""
    from lending.events import domain_events
    from lending.models import Event

    expected = {}
    for event in Event.objects.filter(kind__in=list(domain_events.VERBS)).order_by("id"):
        entity, subject = ("loan", event.loan_id) if event.loan_id else ("hold", event.hold_id)
        event_id = f"{entity}-{subject}-{event.sequence}"
        expected[event_id] = (domain_events.event_type(entity, event.kind), str(subject), event.sequence)
    return expected


def compare(expected: dict[str, tuple[str, str, int]], received: list[dict], stats: Stats) -> dict:
    copies = Counter(event["id"] for event in received)
    unjustified = [e for e in received if expected.get(e["id"]) != (e["type"], e["subject"], e["sequence"])]
    missing = [event_id for event_id in expected if event_id not in copies]
    for event in unjustified[:5]:
        stats.violation(f"event {event['id']} ({event['type']}) is not what the database recorded")
    if missing:
        stats.violation(f"{len(missing)} recorded events never reached the queue, e.g. {missing[:5]}")
    out_of_order = _subjects_out_of_order(expected, received)
    for subject in out_of_order[:5]:
        stats.violation(f"{subject}: its events reordered by sequence are not the database's")
    return {
        "events: recorded in the database": len(expected),
        "events: received on the bound queue": f"{len(received)} ({len(received) - len(copies)} redelivered copies)",
        "events: missing / unjustified": f"{len(missing)} / {len(unjustified)}",
        "events: subjects in order after reordering": f"{len(_by_subject(expected)) - len(out_of_order)} of "
        f"{len(_by_subject(expected))}",
    }


def _by_subject(expected: dict[str, tuple[str, str, int]]) -> dict[str, list[tuple[int, str]]]:
    subjects = defaultdict(list)
    for event_type, subject, sequence in expected.values():
        subjects[f"{event_type.split('.')[3]} {subject}"].append((sequence, event_type))
    return subjects


def _subjects_out_of_order(expected: dict, received: list[dict]) -> list[str]:
    """Subjects whose received events, deduplicated and sorted by sequence, are not the database's
    (numbered 1..n, with its types in its order). A missing event is reported as missing, not here."""
    got: dict[str, dict[int, str]] = defaultdict(dict)
    for event in received:
        got[f"{event['type'].split('.')[3]} {event['subject']}"][event["sequence"]] = event["type"]
    wrong = []
    for subject, events in _by_subject(expected).items():
        recorded = dict(sorted(events))
        numbered = list(recorded) == list(range(1, len(recorded) + 1))
        arrived = [got[subject][sequence] for sequence in sorted(got[subject])]
        if not numbered or arrived != [kind for sequence, kind in recorded.items() if sequence in got[subject]]:
            wrong.append(subject)
    return wrong
