"""Run the outbox relay: `manage.py relay_outbox` (until SIGTERM/Ctrl-C) or `--once`.

With RELAY_METRICS_PORT (or `--metrics-port`) it also serves `/metrics` and `/health/live` there
(lending/observability/ops_server.py); the liveness check fails once no pass has completed for RELAY_STALL_SECONDS.
"""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from lending.clients import books, notifications
from lending.db_session import log_session_timeouts
from lending.management.output import report
from lending.observability import ops_server
from lending.outbox import relay


class Command(BaseCommand):
    help = "Deliver pending outbox messages to the peers, with retries and backoff."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Deliver what is due now, then exit.")
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=None,
            help="Serve /metrics and /health/live on this port (default: RELAY_METRICS_PORT; 0: off).",
        )

    def handle(self, *args, once: bool = False, metrics_port: int | None = None, **options):
        if once:
            attempted = relay.run_once()
            report(self, f"attempted {attempted} message(s)", "relay_pass_finished", attempted=attempted)
            return
        log_session_timeouts("relay")
        heartbeat = ops_server.Heartbeat("relay", stall_after=settings.RELAY_STALL_SECONDS)
        for peer in (books, notifications):
            peer.client()  # its breaker's state is exported (closed) before the first delivery
        port = settings.RELAY_METRICS_PORT if metrics_port is None else metrics_port
        server = ops_server.start(heartbeat, port, address=settings.METRICS_ADDRESS, domain_state=True)
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        try:
            relay.run_forever(stop, heartbeat)
        finally:
            if server is not None:
                server.shutdown()
