"""Event latency against a running `make run`: from a lend's (or return's) answer to its CloudEvent on a
queue bound to `lending.events` with `#`.

    .venv/bin/python tools/scripts/event_latency.py [--port 8000] [--peers-port 8001] [--rounds 20]

Each round lends a demo book to a demo patron (patronN@example.com, book N+10 of the demo catalogue),
waits for `loan.lent` with the loan's id as subject, returns it and waits for `loan.returned`, each
request after a random pause (so requests fall anywhere in the relay's polling cycle). Prints the
median, p95 and max latency of each type.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid

import pika
import requests

BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
EXCHANGE = "lending.events"
WAIT_SECONDS = 10.0


class Consumer:
    """An exclusive queue bound with `#` before the first request."""

    def __init__(self, url: str) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()
        self.channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
        self.queue = self.channel.queue_declare(f"event-latency-{uuid.uuid4().hex[:8]}", exclusive=True).method.queue
        self.channel.queue_bind(self.queue, EXCHANGE, routing_key="#")
        self.seen: list[dict] = []

    def wait_for(self, event_type: str, subject: str) -> float:
        """The monotonic time at which the event arrived."""
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            method, _, body = self.channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                time.sleep(0.002)
                continue
            event = json.loads(body)
            self.seen.append(event)
            if event["type"].endswith(f".{event_type}.v1") and event["subject"] == subject:
                return time.monotonic()
        raise TimeoutError(f"no {event_type} event for loan {subject} within {WAIT_SECONDS} s")


def post(base: str, path: str, body: dict) -> tuple[dict, float]:
    response = requests.post(f"{base}{path}", json=body, timeout=10)
    answered = time.monotonic()
    response.raise_for_status()
    return response.json(), answered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--broker-url", default=BROKER_URL)
    args = parser.parse_args(argv)
    base = f"http://127.0.0.1:{args.port}"
    consumer = Consumer(args.broker_url)
    latencies: dict[str, list[float]] = {"lent": [], "returned": []}
    for n in range(args.rounds):
        body = {"user_email": f"patron{n + 1}@example.com", "book_id": 10 + n + 1}
        time.sleep(random.uniform(0, 0.5))  # requests at random points of the relay's polling cycle
        loan, answered = post(base, "/lendBook/", body)
        latencies["lent"].append(consumer.wait_for("lent", str(loan["id"])) - answered)
        time.sleep(random.uniform(0, 0.5))
        _, answered = post(base, "/returnBook/", body)
        latencies["returned"].append(consumer.wait_for("returned", str(loan["id"])) - answered)
    for kind, values in latencies.items():
        values = sorted(value * 1000 for value in values)
        p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
        print(
            f"loan.{kind}: n={len(values)} median={statistics.median(values):.0f} ms "
            f"p95={p95:.0f} ms max={values[-1]:.0f} ms (answer -> event on a queue bound with '#')"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
