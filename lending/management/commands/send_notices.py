"""Run the scheduled jobs: `manage.py send_notices` (one pass) or `--loop [--interval N]`."""

import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from lending import notices, services
from lending.management.output import report

logger = logging.getLogger(__name__)

# One pass runs these in order; each takes no argument and returns how many items it handled.
JOBS = [
    notices.mark_overdue_loans,
    notices.send_due_soon_reminders,
    notices.send_overdue_notices,
    services.expire_ready_holds,
]


class Command(BaseCommand):
    help = "Persist OVERDUE and queue due-soon reminders and overdue notices (once, or in a loop)."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="Run a pass every --interval seconds until stopped.")
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            help="Seconds between passes with --loop (default: NOTICES_INTERVAL_SECONDS).",
        )

    def handle(self, *args, loop: bool = False, interval: float | None = None, **options):
        if not loop:
            self.run_pass()
            return
        interval = settings.NOTICES_INTERVAL_SECONDS if interval is None else interval
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        while not stop.is_set():
            try:
                self.run_pass()
            except Exception:  # a database blip must not end the loop; the next pass retries
                logger.exception("scheduled jobs pass failed")
                close_old_connections()
            stop.wait(interval)

    def run_pass(self) -> None:
        for job in JOBS:
            count = job()
            report(self, f"{job.__name__}: {count}", "scheduled_job_finished", job=job.__name__, count=count)
