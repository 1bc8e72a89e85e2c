"""Run the scheduled jobs: `manage.py send_notices` (one pass) or `--loop [--interval N]`.

Each job runs on its own: one that raises is logged ("scheduled job failed", with its `job`), counted
in `lending_scheduler_job_failures_total{scheduler_job}`, and the pass goes on with the next job. A
one-shot run then exits with an error naming the failed jobs; the loop counts the pass as failed and
carries on (its liveness holds: a restart would not mend a job).
"""

import logging
import signal
import threading
from collections.abc import Callable

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from lending import auto_renew, idempotency, notices, privacy, services
from lending.db_session import log_session_timeouts
from lending.management.output import report
from lending.observability import metrics, ops_server

logger = logging.getLogger(__name__)

# One pass runs these in order; each takes no argument and returns how many items it handled.
JOBS: list[Callable[[], int]] = [
    notices.mark_overdue_loans,
    # Before the notices: a loan aged to lost (LOST_AFTER_OVERDUE_DAYS) gets no overdue notice.
    services.age_overdue_to_lost,
    # Before the reminders: a loan renewed here is no longer due soon.
    auto_renew.auto_renew_loans,
    notices.send_due_soon_reminders,
    notices.send_overdue_notices,
    # After both: with NOTICE_DIGEST, the two above record their notices and this queues one digest
    # per patron (and whatever a killed run left waiting). Without it, it finds nothing to do.
    notices.send_notice_digests,
    services.expire_ready_holds,
    # Personal data has a lifetime (lending.privacy): the same work as `manage.py anonymize_loans`.
    privacy.anonymize_expired_loans,
    privacy.purge_delivered_outbox,
    idempotency.purge_expired,
]
for _job in JOBS:
    metrics.scheduler_job_failures.labels(_job.__name__)  # at 0 from the start: increase() sees the first


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
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=None,
            help="With --loop: serve /metrics and /health/live here (default: SCHEDULER_METRICS_PORT; 0: off).",
        )

    def handle(self, *args, loop: bool = False, interval: float | None = None, metrics_port=None, **options):
        if not loop:
            failed = self.run_pass()
            if failed:
                raise CommandError(f"scheduled job(s) failed: {', '.join(failed)}")
            return
        interval = settings.NOTICES_INTERVAL_SECONDS if interval is None else interval
        log_session_timeouts("scheduler")
        # Liveness fails once no pass completed within SCHEDULER_STALL_INTERVALS intervals.
        heartbeat = ops_server.Heartbeat("scheduler", stall_after=settings.SCHEDULER_STALL_INTERVALS * interval)
        port = settings.SCHEDULER_METRICS_PORT if metrics_port is None else metrics_port
        server = ops_server.start(heartbeat, port, address=settings.METRICS_ADDRESS, domain_state=False)
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        while not stop.is_set():
            try:
                if self.run_pass():
                    heartbeat.completed_with_failures()
                else:
                    heartbeat.beat()
            except Exception:  # nothing must end the loop (a job's own failure is handled in run_pass)
                logger.exception("scheduled jobs pass failed")
                heartbeat.beat(ok=False)
                close_old_connections()
            stop.wait(interval)
        if server is not None:
            server.shutdown()

    def run_pass(self) -> list[str]:
        """Runs every job, each on its own; returns the names of those that failed."""
        failed = []
        for job in JOBS:
            name = job.__name__
            try:
                count = job()
            except Exception:
                logger.exception("scheduled job failed", extra={"job": name})
                metrics.scheduler_job_failures.labels(name).inc()
                close_old_connections()  # a connection the failure broke is replaced before the next job
                failed.append(name)
                continue
            metrics.scheduler_job_items.labels(name).inc(count or 0)
            report(self, f"{name}: {count}", "scheduled_job_finished", job=name, count=count)
        return failed
