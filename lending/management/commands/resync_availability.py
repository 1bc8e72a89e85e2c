"""Publish books' current availability again: `manage.py resync_availability [BOOK_ID ...]`.

After the Book service lost its state (the in-memory reference peers after a restart, a restore from
a backup), it may show lent books as available. This queues one availability message per book in the
outbox; the relay computes each book's state from our loans at delivery time, as for any lend."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from lending.management.output import report
from lending.models import BookStock, Hold, Loan
from lending.outbox.messages import availability_message, enqueue


def known_book_ids() -> list[int]:
    """Every book this service ever lent or reserved (each has a BookStock row; loans and holds are
    read too, so no book is missed whatever wrote it)."""
    ids = set(BookStock.objects.values_list("book_id", flat=True))
    ids.update(Loan.objects.values_list("book_id", flat=True).distinct())
    ids.update(Hold.objects.values_list("book_id", flat=True).distinct())
    return sorted(ids)


class Command(BaseCommand):
    help = "Queue an availability update for every known book (or the given ones); the relay publishes it."

    def add_arguments(self, parser):
        parser.add_argument("book_ids", nargs="*", metavar="BOOK_ID", help="Only these books (default: all known).")

    def handle(self, *args, book_ids: list[str], **options):
        ids = [self.parse_book_id(raw) for raw in book_ids] or known_book_ids()
        with transaction.atomic():
            enqueue(*(availability_message(book_id) for book_id in ids))
        report(
            self,
            f"queued availability of {len(ids)} book(s)",
            "availability_resync_queued",
            books=len(ids),
        )

    @staticmethod
    def parse_book_id(raw: str) -> int:
        if not raw.isdigit() or not 0 < int(raw) <= 2**31 - 1:
            raise CommandError(f"BOOK_ID must be a positive integer, not {raw!r}")
        return int(raw)
