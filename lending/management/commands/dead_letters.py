"""Dead letters of the outbox: `manage.py dead_letters count | list | replay (--all | ID_OR_KEY...)`."""

import uuid

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from lending.models import OutboxMessage
from lending.outbox import dead_letters


class Command(BaseCommand):
    help = "Count, list and replay outbox messages that exhausted their delivery attempts."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser("count", help="How many dead letters there are.")
        listing = actions.add_parser("list", help="One line per dead letter: id, key, kind, attempts, last error.")
        listing.add_argument("--limit", type=int, default=100, help="At most this many (default 100; 0 = all).")
        replay = actions.add_parser("replay", help="Put dead letters back in the queue with attempts reset.")
        replay.add_argument("--all", action="store_true", help="Replay every dead letter.")
        replay.add_argument("messages", nargs="*", metavar="ID_OR_KEY", help="Message ids or keys (UUIDs).")

    def handle(self, *args, action: str, **options):
        getattr(self, f"handle_{action}")(**options)

    def handle_count(self, **options):
        self.stdout.write(str(dead_letters.count()))

    def handle_list(self, *, limit: int, **options):
        messages = dead_letters.dead_letters()
        total = messages.count()
        shown = messages if limit <= 0 else messages[:limit]
        for message in shown:
            error = " ".join(message.last_error.split())
            self.stdout.write(f"{message.pk}\t{message.key}\t{message.kind}\t{message.attempts}\t{error}")
        if limit > 0 and total > limit:
            self.stdout.write(f"... {total - limit} more (use --limit 0 to see all)")
        self.stderr.write(f"{total} dead letter(s)")

    def handle_replay(self, *, all: bool, messages: list[str], **options):
        if all == bool(messages):
            raise CommandError("Give either --all or one or more message ids or keys.")
        if all:
            replayed = dead_letters.replay()
        else:
            replayed = dead_letters.replay(OutboxMessage.objects.filter(_selector(messages)))
        self.stdout.write(f"replayed {replayed} dead letter(s)")


def _selector(references: list[str]) -> Q:
    ids, keys = [], []
    for reference in references:
        if reference.isdigit():
            ids.append(int(reference))
            continue
        try:
            keys.append(uuid.UUID(reference))
        except ValueError:
            raise CommandError(f"{reference!r} is neither a message id nor a key.") from None
    return Q(pk__in=ids) | Q(key__in=keys)
