"""Run the outbox relay: `manage.py relay_outbox` (until SIGTERM/Ctrl-C) or `--once`."""

import signal
import threading

from django.core.management.base import BaseCommand

from lending.management.output import report
from lending.outbox import relay


class Command(BaseCommand):
    help = "Deliver pending outbox messages to the peers, with retries and backoff."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Deliver what is due now, then exit.")

    def handle(self, *args, once: bool = False, **options):
        if once:
            attempted = relay.run_once()
            report(self, f"attempted {attempted} message(s)", "relay_pass_finished", attempted=attempted)
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        relay.run_forever(stop)
