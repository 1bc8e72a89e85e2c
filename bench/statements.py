"""CPU per statement of the write path, side by side: the ORM building and compiling it on every call
(as the code did before) against the statement as the service now runs it (lending/precompiled.py, or
SQL written from the model's columns): the lend's loan INSERT, holds and blocks SELECTs, the calendar
read, the outbox INSERT, and the relay's claim, availability read and settling UPDATEs.

`python -m bench.statements <calls>` with the service's environment (DJANGO_SETTINGS_MODULE and a
migrated PostgreSQL database in DATABASE_URL): everything runs in one transaction rolled back at the
end, so the database is left as it was. Prints JSON: CPU milliseconds of this process per call of
each way (alternating blocks of 50), and the calls each.
"""

from __future__ import annotations

import itertools
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

    from lending import blocks, book_state, calendar, selectors
    from lending.models import BookStock, Loan, OutboxKind, OutboxMessage
    from lending.outbox import messages, relay
    from lending.precompiled import insert

    calendar.set_calendar(["sunday"], [f"2026-12-{day}" for day in range(20, 32)])
    for book_id in (1, 2, 3):
        BookStock.objects.create(book_id=book_id, title="Bench", copies=1, version=7)
    pending = OutboxMessage.objects.bulk_create(
        [OutboxMessage(kind=OutboxKind.AVAILABILITY, book_id=1, next_attempt_at=timezone.now()) for _ in range(12)]
    )
    claimed, batch = [pending[0].pk, pending[1].pk], [message.pk for message in pending[2:]]
    now = timezone.now() + timedelta(hours=1)

    def new_messages() -> list[OutboxMessage]:
        return [messages.availability_message(1), messages.availability_message(1)]

    patrons = (f"bench-{n}@example.com" for n in itertools.count())  # one open loan per patron and book

    def new_loan() -> Loan:
        return Loan(user_email=next(patrons), book_id=1, book_title="Bench", date_borrowed=now, date_due=now)

    far_ahead = now + timedelta(days=30)  # every message stays due, whatever lease a claim gave it
    results: dict[str, dict[str, Callable[[], object]]] = {
        "relay: claim a batch of 10 and take its lease": {
            "ORM": lambda: relay._take_lease_query(
                [m.pk for m in relay._claimable_query(far_ahead, 10)], lease_end=now
            ),
            "precompiled": lambda: relay._TAKE_LEASE(
                ids=[m.pk for m in relay._CLAIMABLE(due_by=far_ahead, limit=10)], lease_end=now
            ),
        },
        "relay: availability of a batch's books (3)": {
            "ORM": lambda: list(selectors._books_availability_query([1, 2, 3])),
            "precompiled": lambda: selectors._BOOKS_AVAILABILITY(book_ids=[1, 2, 3]),
        },
        "lend: the book's open holds": {
            "ORM": lambda: list(book_state._open_holds_query(1)),
            "precompiled": lambda: book_state._OPEN_HOLDS(book_id=1),
        },
        "lend: the patron's blocks in force": {
            "ORM": lambda: list(blocks._blocks_in_force_query("bench@example.com", now)),
            "precompiled": lambda: blocks._BLOCKS_IN_FORCE(user_email="bench@example.com", now=now),
        },
        "lend: insert the loan": {
            "ORM (Loan.objects.create)": lambda: Loan.objects.create(**_fields(new_loan())),
            "insert": lambda: insert([new_loan()]),
        },
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


def _fields(loan) -> dict:
    return {
        field.attname: getattr(loan, field.attname) for field in loan._meta.concrete_fields if field.attname != "id"
    }


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
