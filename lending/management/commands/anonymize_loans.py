"""Forget patrons on time: `manage.py anonymize_loans [--retention-days N] [--no-purge]`.

Anonymises loans returned (and holds closed) more than LOAN_HISTORY_RETENTION_DAYS ago, then purges
delivered outbox rows older than OUTBOX_RETENTION_DAYS and expired idempotency records. Run by the
scheduler (`send_notices --loop`) and the `lending-privacy` CronJob; safe to run several at once and
to kill half way (each batch is its own short transaction).
"""

from django.core.management.base import BaseCommand, CommandError

from lending import idempotency, privacy
from lending.management.output import report


class Command(BaseCommand):
    help = "Anonymise loans returned more than LOAN_HISTORY_RETENTION_DAYS ago; purge old outbox and idempotency rows."

    def add_arguments(self, parser):
        parser.add_argument(
            "--retention-days",
            type=int,
            default=None,
            help="Override LOAN_HISTORY_RETENTION_DAYS for this run (0: every returned loan).",
        )
        parser.add_argument("--batch-size", type=int, default=None, help="Rows per transaction (PRIVACY_BATCH_SIZE).")
        parser.add_argument(
            "--no-purge", action="store_true", help="Anonymise only; leave the outbox and idempotency purges."
        )

    def handle(self, *args, retention_days=None, batch_size=None, no_purge=False, **options):
        if retention_days is not None and retention_days < 0:
            raise CommandError("--retention-days must be 0 or more.")
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be 1 or more.")
        done = privacy.anonymize_returned_loans(retention_days=retention_days, batch_size=batch_size)
        report(
            self,
            f"anonymised {done.loans} loan(s) and {done.holds} hold(s); forgot {done.notifications} "
            f"notification(s) and {done.idempotency_records} idempotency record(s)",
            "loans_anonymised",
            **done.as_dict(),
        )
        if no_purge:
            return
        purged = privacy.purge_delivered_outbox()
        report(self, f"purged {purged} delivered outbox row(s)", "outbox_purged", deleted=purged)
        expired = idempotency.purge_expired()
        report(self, f"purged {expired} expired idempotency key(s)", "idempotency_keys_purged", deleted=expired)
