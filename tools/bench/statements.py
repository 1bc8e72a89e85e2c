"""CPU per statement of the write path, side by side: the ORM building and compiling the same query on
every call against the literal statement the service runs (`lending.db`): the lend's loan INSERT, its
one read of counts, holds and blocks, the calendar read, the outbox INSERT, and the relay's claim,
availability read and settling UPDATE. The ORM versions are written here, for the comparison only.

`python -m tools.bench.statements <calls>` with the service's environment (DJANGO_SETTINGS_MODULE and a
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
    from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
    from django.db.models.functions import Coalesce
    from django.utils import timezone

    from lending import calendar
    from lending.db import calendar as calendar_statements
    from lending.db import loans, outbox, state
    from lending.db.outbox import NewMessage
    from lending.events import history
    from lending.models import BookStock, EventKind, Hold, Loan, OutboxKind, OutboxMessage, OutboxStatus, PatronBlock
    from lending.outbox import messages

    calendar.set_calendar(["sunday"], [f"2026-12-{day}" for day in range(20, 32)])
    for book_id in (1, 2, 3):
        BookStock.objects.create(book_id=book_id, title="Bench", copies=1, version=7)
    pending = OutboxMessage.objects.bulk_create(
        [OutboxMessage(kind=OutboxKind.AVAILABILITY, book_id=1, next_attempt_at=timezone.now()) for _ in range(12)]
    )
    batch = [message.pk for message in pending[2:]]
    now = timezone.now() + timedelta(hours=1)

    def new_messages() -> list[NewMessage]:
        return [messages.availability_message(1), messages.availability_message(1)]

    patrons = (f"bench-{n}@example.com" for n in itertools.count())  # one open loan per patron and book

    def new_loan() -> Loan:
        return Loan(user_email=next(patrons), book_id=1, book_title="Bench", date_borrowed=now, date_due=now)

    def orm_lend_writes() -> None:
        loan = Loan.objects.create(**_fields(new_loan()))
        messages.enqueue(*new_messages())
        history.record(history.loan_event(loan, EventKind.LENT, at=now, caller=history.SYSTEM))

    loan_ids = itertools.count(10_000_000)

    def lend_writes() -> None:
        loan = new_loan()
        loan.pk = next(loan_ids)
        event = history.loan_event(loan, EventKind.LENT, at=now, caller=history.SYSTEM)
        history.record_with([loans.loan_with_id_insert(loan), outbox.messages_insert(new_messages())], event)

    def orm_claim() -> int:
        due = OutboxMessage.objects.filter(status=OutboxStatus.PENDING, next_attempt_at__lte=far_ahead)
        ids = [m.pk for m in due.order_by("next_attempt_at", "id").select_for_update(skip_locked=True)[:10]]
        return OutboxMessage.objects.filter(pk__in=ids).update(next_attempt_at=now)

    def orm_availability() -> list:
        def counted(queryset):
            counts = queryset.order_by().values("book_id").annotate(n=Count("pk")).values("n")
            return Coalesce(Subquery(counts, output_field=IntegerField()), Value(0))

        return list(
            BookStock.objects.filter(book_id__in=[1, 2, 3])
            .annotate(
                open_loans=counted(Loan.objects.open().filter(book_id=OuterRef("book_id"))),
                open_holds=counted(Hold.objects.open().filter(book_id=OuterRef("book_id"))),
            )
            .values_list("book_id", "copies", "version", "open_loans", "open_holds")
        )

    def orm_lend_read() -> tuple:
        return (
            loans.count_book_and_patron_loans(1, "bench@example.com", now),
            list(Hold.objects.open().filter(book_id=1).order_by("id")),
            list(PatronBlock.objects.of("bench@example.com").in_force(now).order_by("id")),
        )

    far_ahead = now + timedelta(days=30)  # every message stays due, whatever lease a claim gave it
    results: dict[str, dict[str, Callable[[], object]]] = {
        "relay: claim a batch of 10 and take its lease": {
            "ORM": orm_claim,
            "lending.db": lambda: outbox.take_lease([m.pk for m in outbox.claimable(far_ahead, 10)], now),
        },
        "relay: availability of a batch's books (3)": {
            "ORM": orm_availability,
            "lending.db": lambda: loans.books_availability([1, 2, 3]),
        },
        "lend: counts, the book's holds and the patron's blocks": {
            "three statements (counts, then holds and blocks by the ORM)": orm_lend_read,
            "lending.db (one statement)": lambda: state.read_book_and_patron(1, "bench@example.com", now),
        },
        "lend: the loan, its two outbox rows and its event": {
            "three statements (Loan.objects.create, enqueue, record)": orm_lend_writes,
            "lending.db (one statement)": lend_writes,
        },
        "calendar read": {
            "ORM": lambda: calendar.current_calendar().closed_days(),
            "lending.db": lambda: calendar_statements.read_closed_days(calendar.CALENDAR_ID),
        },
        "relay: mark a batch delivered (10)": {
            "ORM": lambda: OutboxMessage.objects.filter(pk__in=batch).update(
                status=OutboxStatus.DELIVERED, delivered_at=now, last_error=""
            ),
            "lending.db": lambda: outbox.mark_delivered(batch, now),
        },
        "outbox: enqueue a lend's two messages": {
            "ORM (bulk_create of model instances)": lambda: OutboxMessage.objects.bulk_create(
                [
                    OutboxMessage(kind=OutboxKind.AVAILABILITY, book_id=1, next_attempt_at=now),
                    OutboxMessage(kind=OutboxKind.AVAILABILITY, book_id=1, next_attempt_at=now),
                ]
            ),
            "lending.db": lambda: messages.enqueue(*new_messages()),
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
