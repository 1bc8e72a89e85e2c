"""CPU per statement of the write path, side by side: the ORM building and compiling it on every call
(as the code did before) against the statement as the service now runs it (lending/precompiled.py, or
SQL written from the model's columns).

`python -m bench.statements <calls>` with the service's environment (DJANGO_SETTINGS_MODULE and a
migrated PostgreSQL database in DATABASE_URL): everything runs in one transaction rolled back at the
end, so the database is left as it was. Prints JSON: CPU milliseconds of this process per call of
each way (alternating blocks of 50), and the calls each.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import timedelta

import django


class _RolledBack(Exception):
    pass


def side_by_side(ways: dict[str, Callable[[], object]], calls: int, block: int = 50) -> dict[str, float]:
    spent = dict.fromkeys(ways, 0.0)
    for way in ways.values():  # compile once, warm the caches
        way()
    rounds = max(1, calls // block)
    for _ in range(rounds):
        for name, way in ways.items():
            started = time.process_time()
            for _ in range(block):
                way()
            spent[name] += time.process_time() - started
    return {name: round(1000 * seconds / (rounds * block), 3) for name, seconds in spent.items()}


def measure(calls: int) -> dict:
    from django.utils import timezone

    from lending import calendar
    from lending.models import BookStock, OutboxKind, OutboxMessage
    from lending.outbox import messages, relay

    calendar.set_calendar(["sunday"], [f"2026-12-{day}" for day in range(20, 32)])
    BookStock.objects.create(book_id=1, title="Bench", copies=1, version=7)
    pending = OutboxMessage.objects.bulk_create(
        [OutboxMessage(kind=OutboxKind.AVAILABILITY, book_id=1, next_attempt_at=timezone.now()) for _ in range(12)]
    )
    claimed, batch = [pending[0].pk, pending[1].pk], [message.pk for message in pending[2:]]
    now = timezone.now() + timedelta(hours=1)

    def new_messages() -> list[OutboxMessage]:
        return [messages.availability_message(1), messages.availability_message(1)]

    results: dict[str, dict[str, Callable[[], object]]] = {
        "calendar read": {
            "ORM": lambda: calendar.current_calendar().closed_days(),
            "SQL from the model's columns": calendar._read_closed_days,
        },
        "relay: settle one book's availability (2 claimed)": {
            "ORM": lambda: relay._settle_availability_query(1, claimed, 7, now),
            "precompiled": lambda: relay._SETTLE_AVAILABILITY(book_id=1, claimed=claimed, version=7, now=now),
        },
        "relay: mark a batch delivered (10)": {
            "ORM": lambda: relay._mark_delivered_query(batch, now),
            "precompiled": lambda: relay._MARK_DELIVERED(ids=batch, now=now),
        },
        "outbox: enqueue a lend's two messages": {
            "ORM (bulk_create)": lambda: OutboxMessage.objects.bulk_create(new_messages()),
            "enqueue": lambda: messages.enqueue(*new_messages()),
        },
    }
    return {name: side_by_side(ways, calls) for name, ways in results.items()} | {"calls_each": calls}


def main(calls: int) -> dict:
    django.setup()
    from django.db import transaction

    answer: dict = {}
    try:
        with transaction.atomic():
            answer = measure(calls)
            raise _RolledBack
    except _RolledBack:
        pass
    return answer


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)))
