"""Delete idempotency records older than IDEMPOTENCY_KEY_TTL_HOURS: `manage.py purge_idempotency_keys`."""

from django.core.management.base import BaseCommand

from lending import idempotency
from lending.management.output import report


class Command(BaseCommand):
    help = "Delete expired idempotency keys (kept IDEMPOTENCY_KEY_TTL_HOURS, 24 h by default)."

    def handle(self, *args, **options):
        deleted = idempotency.purge_expired()
        report(self, f"purged {deleted} expired idempotency key(s)", "idempotency_keys_purged", deleted=deleted)
