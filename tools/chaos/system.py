"""The system under chaos: the reference peers, N gunicorn web processes, M outbox relays and the scheduler,
on free ports, against a scratch PostgreSQL database created for the run."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from tools.harness.database import ScratchDatabase
from tools.harness.environment import peers_command, service_env, wait_for_peers
from tools.harness.processes import HOST, PYTHON, Managed, free_port, manage, run_manage

# Fail fast on a hanging peer and recover fast after it; relays catch up quickly after kills and outages.
CHAOS_SETTINGS = {
    "REQUIRE_API_KEY": "false",
    "PEER_CONNECT_TIMEOUT": "0.5",
    "PEER_READ_TIMEOUT": "1.0",
    "PEER_BREAKER_FAIL_MAX": "5",
    "PEER_BREAKER_RESET_SECONDS": "2",
    # A killed worker's unsettled key may be retried after 5 s (safe: nothing was committed).
    "IDEMPOTENCY_LOCK_SECONDS": "5",
    # Relays: short backoff and lease; never dead.
    "OUTBOX_MAX_ATTEMPTS": "100000",
    "OUTBOX_BACKOFF_BASE_SECONDS": "0.2",
    "OUTBOX_BACKOFF_MAX_SECONDS": "2",
    "OUTBOX_LEASE_SECONDS": "5",
    # A hung Book peer applies a request 5 s after it came, 4 s after our 1 s read timeout.
    "OUTBOX_RECHECK_SECONDS": "6",
    # Every open loan is "due soon" at once, so the scheduler has real work under the chaos.
    "DUE_SOON_REMINDER_DAYS": "61",
}


def gunicorn_command(port: int) -> list[str]:
    """One web process as the deployment runs it (its worker class), with one worker of 8 threads."""
    return [
        *(PYTHON, "-m", "gunicorn", "config.wsgi:application", "--bind", f"{HOST}:{port}"),
        *("--worker-class", "config.gunicorn_worker.BufferingWorker", "--workers", "1", "--threads", "8"),
        *("--timeout", "30", "--graceful-timeout", "5", "--log-level", "warning"),
    ]


class System:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.database = ScratchDatabase(f"lending_chaos_{os.getpid()}", args.admin_url, keep=args.keep_db)
        self.db_name, self.db_url = self.database.name, self.database.url
        self.log_dir = Path(tempfile.mkdtemp(prefix="lending-chaos-"))
        self.peer_ports = {peer: free_port() for peer in ("book", "user", "notification", "fees")}
        self.env = service_env(self.db_url, self.peer_ports, **CHAOS_SETTINGS)
        users = args.clients * args.users_per_client
        self.peers = self.managed(
            "peers",
            peers_command(self.peer_ports, demo_books=args.books, demo_users=users),
            ready_url=f"{self.env['BOOK_MANAGEMENT_URL']}/books",
        )
        web_ports = [free_port() for _ in range(args.webs)]
        self.web_urls = [f"http://{HOST}:{port}" for port in web_ports]
        self.webs = [
            self.managed(f"web{n + 1}", gunicorn_command(port), f"http://{HOST}:{port}/health/live/")
            for n, port in enumerate(web_ports)
        ]
        self.relays = [self.managed(f"relay{n + 1}", manage("relay_outbox")) for n in range(args.relays)]
        self.scheduler = self.managed("scheduler", manage("send_notices", "--loop", "--interval", "1"))

    def managed(self, name: str, command: list[str], ready_url: str | None = None) -> Managed:
        return Managed(name, command, self.env, self.log_dir, ready_url)

    @property
    def killable(self) -> list[Managed]:
        return [*self.webs, *self.relays, self.scheduler]

    def all(self) -> list[Managed]:
        return [self.peers, *self.killable]

    def drop_database(self) -> None:
        self.database.drop()

    def start(self) -> None:
        self.database.create()
        run_manage("migrate", "--noinput", "-v", "0", env=self.env)
        for managed in self.all():
            managed.start()
        for managed in self.all():
            managed.wait_ready()  # a process that exits at start is named here
        wait_for_peers(self.peer_ports)  # the peers' ready URL is the Book peer's alone

    def stop(self) -> None:
        for managed in reversed(self.all()):
            managed.stop()
