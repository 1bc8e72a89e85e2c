"""Run the whole system on PostgreSQL, break it for a while, then check that nothing was lost,
invented, duplicated or left wrong.

What runs: the reference peers, N gunicorn web processes on free ports, M outbox relays and the
scheduler (`send_notices --loop`), all on a fresh database created for the run and dropped after it.
What happens: careful clients (threads) lend and return books over many patrons and books, retrying
on 503, 409 "still in progress", 429 and dropped connections with the same Idempotency-Key, against a
random web process each time; meanwhile a random web process, relay or the scheduler is killed with
SIGKILL and restarted every few seconds, and a random peer answers errors, hangs or refuses
connections for a few seconds at a time. Then the faults stop, the relays drain the outbox and the
invariants are checked; the report ends with the violations, and the exit status is 1 if there are any.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
RESERVED_PORTS = range(8000, 8004)  # others run the service there
LEND, RETURN = "/lendBook/", "/returnBook/"
# Classic books of the reference Book peer (ids 1-5) have several copies; demo books have one.


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m chaos", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=60, help="seconds of load (default 60)")
    parser.add_argument("--clients", type=int, default=10, help="client threads (default 10)")
    parser.add_argument(
        "--kill-interval",
        type=float,
        default=2.5,
        help="seconds between two kills of a random web process, relay or scheduler (default 2.5)",
    )
    parser.add_argument(
        "--fault-interval", type=float, default=5, help="seconds between two peer faults (default 5); each lasts 1-4 s"
    )
    parser.add_argument("--webs", type=int, default=3, help="gunicorn web processes (default 3)")
    parser.add_argument("--relays", type=int, default=2, help="outbox relays (default 2)")
    parser.add_argument("--books", type=int, default=120, help="one-copy demo books besides the 5 classics")
    parser.add_argument("--users-per-client", type=int, default=6, help="patrons each client owns (default 6)")
    parser.add_argument("--drain-timeout", type=float, default=180, help="seconds allowed to drain the outbox")
    parser.add_argument(
        "--min-operations",
        type=int,
        default=0,
        help="keep the load on past --duration until this many lends and returns were made "
        "(at most --max-duration); fail the run if it never gets there",
    )
    parser.add_argument("--min-kills", type=int, default=0, help="likewise for process kills")
    parser.add_argument(
        "--max-duration",
        type=float,
        default=None,
        help="longest load when --min-operations or --min-kills is not reached (default 4 x duration)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("CHAOS_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL URL allowed to create and drop the run's database",
    )
    parser.add_argument("--keep-db", action="store_true", help="do not drop the run's database")
    parser.add_argument(
        "--faults",
        default="",
        help="only these faults, e.g. 'book:hangs' or 'book:hangs,notification:errors (503)' "
        f"(peers: book, user, notification; faults: {', '.join(FaultInjector.names())}; "
        "default: any fault on any peer)",
    )
    args = parser.parse_args(argv)
    if args.faults and not FaultInjector.wanted(args.faults) <= set(FaultInjector.every()):
        parser.error(f"--faults: unknown peer or fault in {args.faults!r}")
    return args


# --- processes ---------------------------------------------------------------------------------------
def free_port() -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port


@dataclass
class Managed:
    """A child process (its own session, so SIGKILL takes its workers down with it) that can be
    killed and started again with the same command."""

    name: str
    command: list[str]
    env: dict
    log_dir: Path
    ready_url: str | None = None
    process: subprocess.Popen | None = None
    kills: int = 0

    def start(self) -> None:
        log = open(self.log_dir / f"{self.name}.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=log, stderr=log, start_new_session=True
        )
        log.close()

    def wait_ready(self, timeout: float = 60) -> None:
        if not self.ready_url:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_dir}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.ready_url, timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout} s; see {self.log_dir}")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


class System:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.db_name = f"lending_chaos_{os.getpid()}"
        admin = psycopg.conninfo.conninfo_to_dict(args.admin_url)
        self.db_url = (
            f"postgres://{admin.get('user', 'postgres')}"
            f"{':' + admin['password'] if admin.get('password') else ''}"
            f"@{admin.get('host', '127.0.0.1')}:{admin.get('port', 5432)}/{self.db_name}"
        )
        self.log_dir = Path(tempfile.mkdtemp(prefix="lending-chaos-"))
        self.book_port, self.user_port, self.notification_port = free_port(), free_port(), free_port()
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": self.db_url,
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": "chaos-run-secret-key-not-for-production-" + uuid.uuid4().hex,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
            "REQUIRE_API_KEY": "false",
            "THROTTLE_RATE_PER_KEY": "",
            "THROTTLE_RATE_PER_IP": "",
            "LOG_LEVEL": "WARNING",
            "BOOK_MANAGEMENT_URL": f"http://127.0.0.1:{self.book_port}",
            "USER_MANAGEMENT_URL": f"http://127.0.0.1:{self.user_port}",
            "NOTIFICATION_SERVICE_URL": f"http://127.0.0.1:{self.notification_port}",
            # Fail fast on a hanging peer, and recover fast after it.
            "PEER_CONNECT_TIMEOUT": "0.5",
            "PEER_READ_TIMEOUT": "1.0",
            "PEER_BREAKER_FAIL_MAX": "5",
            "PEER_BREAKER_RESET_SECONDS": "2",
            # A killed worker's unsettled key may be retried after 5 s (safe: nothing was committed).
            "IDEMPOTENCY_LOCK_SECONDS": "5",
            # Relays: short backoff and lease so kills and outages are caught up quickly; never dead.
            "OUTBOX_MAX_ATTEMPTS": "100000",
            "OUTBOX_BACKOFF_BASE_SECONDS": "0.2",
            "OUTBOX_BACKOFF_MAX_SECONDS": "2",
            "OUTBOX_LEASE_SECONDS": "5",
            # A hung Book peer applies a request 5 s after it came, 4 s after our 1 s read timeout.
            "OUTBOX_RECHECK_SECONDS": "6",
            # Every open loan is "due soon" at once, so the scheduler has real work under the chaos.
            "DUE_SOON_REMINDER_DAYS": "61",
        }
        users = args.clients * args.users_per_client
        self.peers = Managed(
            "peers",
            [
                PYTHON,
                "-m",
                "reference_peers",
                "--book-port",
                str(self.book_port),
                "--user-port",
                str(self.user_port),
                "--notification-port",
                str(self.notification_port),
                "--demo-books",
                str(args.books),
                "--demo-users",
                str(users),
            ],
            self.env,
            self.log_dir,
            ready_url=f"{self.env['BOOK_MANAGEMENT_URL']}/books",
        )
        self.webs = []
        for n in range(args.webs):
            port = free_port()
            self.webs.append(
                Managed(
                    f"web{n + 1}",
                    [
                        PYTHON,
                        "-m",
                        "gunicorn",
                        "config.wsgi:application",
                        "--bind",
                        f"127.0.0.1:{port}",
                        "--worker-class",
                        "config.gunicorn_worker.BufferingWorker",  # the deployment's worker
                        "--workers",
                        "1",
                        "--threads",
                        "8",
                        "--timeout",
                        "30",
                        "--graceful-timeout",
                        "5",
                        "--log-level",
                        "warning",
                    ],
                    self.env,
                    self.log_dir,
                    ready_url=f"http://127.0.0.1:{port}/health/live/",
                )
            )
        self.relays = [
            Managed(f"relay{n + 1}", [PYTHON, "manage.py", "relay_outbox"], self.env, self.log_dir)
            for n in range(args.relays)
        ]
        self.scheduler = Managed(
            "scheduler", [PYTHON, "manage.py", "send_notices", "--loop", "--interval", "1"], self.env, self.log_dir
        )

    @property
    def web_urls(self) -> list[str]:
        return [web.ready_url.removesuffix("/health/live/") for web in self.webs]

    @property
    def killable(self) -> list[Managed]:
        return [*self.webs, *self.relays, self.scheduler]

    def all(self) -> list[Managed]:
        return [self.peers, *self.killable]

    def create_database(self) -> None:
        with psycopg.connect(self.args.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.db_name}"')

    def drop_database(self) -> None:
        with psycopg.connect(self.args.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')

    def start(self) -> None:
        self.create_database()
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for managed in self.all():
            managed.start()
        for managed in self.all():
            managed.wait_ready()

    def stop(self) -> None:
        for managed in reversed(self.all()):
            managed.stop()


# --- careful clients ---------------------------------------------------------------------------------
@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: collections.Counter = field(default_factory=collections.Counter)
    statuses: collections.Counter = field(default_factory=collections.Counter)
    violations: list[str] = field(default_factory=list)

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n

    def status(self, path: str, status: int) -> None:
        with self.lock:
            self.statuses[f"{path.strip('/')} {status}"] += 1

    def violation(self, text: str) -> None:
        with self.lock:
            if len(self.violations) < 200:
                self.violations.append(text)
            self.counts["violations"] += 1


@dataclass
class Outcome:
    status: int | None  # None: never acknowledged (gave up)
    body: dict | list | None = None
    key: str = ""


@dataclass
class Ledger:
    """What the clients were told: the truth the database must match."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    lends: dict[int, tuple[str, int]] = field(default_factory=dict)  # acknowledged loan id -> (user, book)
    returns: set[int] = field(default_factory=set)  # acknowledged returned loan ids
    uncertain: set[tuple[str, int]] = field(default_factory=set)  # (user, book) of ops never acknowledged


class Client(threading.Thread):
    OP_DEADLINE = 90.0  # seconds one operation keeps retrying before it counts as never acknowledged

    def __init__(
        self,
        index: int,
        users: list[str],
        books: list[int],
        urls: list[str],
        stop: threading.Event,
        stats: Stats,
        ledger: Ledger,
        seed: int,
    ) -> None:
        super().__init__(name=f"client{index}", daemon=True)
        self.users, self.books, self.urls = list(users), books, urls
        self.stop, self.stats, self.ledger = stop, stats, ledger
        self.random = random.Random(seed)
        self.session = requests.Session()
        self.held: dict[str, dict[int, int]] = {user: {} for user in users}  # user -> book -> loan id

    def run(self) -> None:
        while not self.stop.is_set() and self.users:
            user = self.random.choice(self.users)
            held = self.held[user]
            if held and (len(held) >= 3 or self.random.random() < 0.45):
                self.return_book(user, self.random.choice(list(held)))
            else:
                self.lend(user, self.random.choice([b for b in self.books if b not in held]))
            if self.random.random() < 0.03:
                self.read()

    def lend(self, user: str, book: int) -> None:
        outcome = self.call(LEND, {"user_email": user, "book_id": book})
        self.stats.add("lend attempts")
        if outcome.status == 201:
            loan = outcome.body
            if (loan.get("user_email"), loan.get("book_id"), loan.get("status")) != (user, book, "ACTIVE"):
                self.stats.violation(f"lend {user} {book} acknowledged with a wrong loan: {loan}")
            self.held[user][book] = loan["id"]
            with self.ledger.lock:
                self.ledger.lends[loan["id"]] = (user, book)
            self.stats.add("lends acknowledged")
        elif outcome.status == 409 and _code(outcome.body) == "no_copy_available":
            self.stats.add("lends refused: no copy available")
        else:
            self.settle_unexpected("lend", user, book, outcome)

    def return_book(self, user: str, book: int) -> None:
        loan_id = self.held[user][book]
        outcome = self.call(RETURN, {"user_email": user, "book_id": book})
        self.stats.add("return attempts")
        if outcome.status == 200:
            loan = outcome.body
            if loan.get("id") != loan_id or loan.get("status") != "RETURNED":
                self.stats.violation(f"return of loan {loan_id} acknowledged with a wrong loan: {loan}")
            del self.held[user][book]
            with self.ledger.lock:
                self.ledger.returns.add(loan_id)
            self.stats.add("returns acknowledged")
        else:
            self.settle_unexpected("return", user, book, outcome)

    def settle_unexpected(self, op: str, user: str, book: int, outcome: Outcome) -> None:
        if outcome.status is None:
            # Never acknowledged: the write may or may not have happened; stop using this patron.
            self.stats.add(f"{op}s never acknowledged")
            with self.ledger.lock:
                self.ledger.uncertain.add((user, book))
            self.users.remove(user)
            return
        self.stats.violation(f"{op} {user} book {book}: unexpected HTTP {outcome.status} {outcome.body}")
        self.users.remove(user)

    def read(self) -> None:
        url = self.random.choice(self.urls)
        with contextlib.suppress(requests.RequestException):
            response = self.session.get(f"{url}/getExpiredBooks/", timeout=(2, 20))
            self.stats.status("getExpiredBooks", response.status_code)
            if response.status_code >= 500 and response.status_code != 503:
                self.stats.violation(f"GET /getExpiredBooks/ answered {response.status_code}")

    def call(self, path: str, body: dict) -> Outcome:
        """POST until an answer that is not "retry later", always with the same Idempotency-Key."""
        key = uuid.uuid4().hex
        headers = {"Idempotency-Key": key, "X-Request-ID": f"chaos-{key[:16]}"}
        started = time.monotonic()
        pause = 0.05
        for attempt in range(10_000):
            if time.monotonic() - started > self.OP_DEADLINE:
                return Outcome(None, key=key)
            if attempt:
                self.stats.add("retries")
                time.sleep(pause * self.random.uniform(0.5, 1.0))
                pause = min(pause * 2, 1.0)
            url = self.random.choice(self.urls)
            try:
                response = self.session.post(f"{url}{path}", json=body, headers=headers, timeout=(2, 20))
            except requests.RequestException:
                self.stats.add("dropped connections")
                self.session.close()
                continue
            status = response.status_code
            self.stats.status(path, status)
            try:
                data = response.json()
            except ValueError:
                self.stats.violation(f"POST {path} answered HTTP {status} with a body that is not JSON")
                continue
            if response.headers.get("Idempotent-Replayed") == "true":
                self.stats.add("replayed answers")
            if status >= 500 and status != 503:
                self.stats.violation(f"POST {path} answered HTTP {status}: {data}")
                continue
            if status == 503:
                if not response.headers.get("Retry-After"):
                    self.stats.violation(f"POST {path} answered 503 without Retry-After")
                continue
            if status == 429 or (status == 409 and _code(data) == "idempotency_request_in_progress"):
                continue
            return Outcome(status, data, key)
        return Outcome(None, key=key)


def _code(body) -> str | None:
    return body.get("error", {}).get("code") if isinstance(body, dict) else None


# --- mayhem --------------------------------------------------------------------------------------------
class Killer(threading.Thread):
    """Every few seconds, SIGKILL a random running web process, relay or the scheduler (with every
    process of its group) and start it again a moment later, in the background."""

    def __init__(self, system: System, interval: float, stop: threading.Event, stats: Stats, rng: random.Random):
        super().__init__(name="killer", daemon=True)
        self.system, self.interval, self.stop, self.stats, self.random = system, interval, stop, stats, rng
        self.restarting: set[str] = set()
        self.restarts: list[threading.Thread] = []
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.stop.wait(self.interval * self.random.uniform(0.6, 1.4)):
            with self.lock:
                candidates = [m for m in self.system.killable if m.name not in self.restarting]
                if not candidates:
                    continue
                victim = self.random.choice(candidates)
                self.restarting.add(victim.name)
            victim.kill()
            victim.kills += 1
            self.stats.add("kills")
            self.stats.add(f"kills: {victim.name.rstrip('0123456789')}")
            restart = threading.Thread(target=self.restart, args=(victim, self.random.uniform(0.0, 0.5)), daemon=True)
            restart.start()
            self.restarts.append(restart)

    def restart(self, victim: Managed, delay: float) -> None:
        time.sleep(delay)
        try:
            victim.start()
            victim.wait_ready(90)
        except RuntimeError as exc:
            self.stats.violation(f"restart failed: {exc}")
        finally:
            with self.lock:
                self.restarting.discard(victim.name)

    def join_restarts(self) -> None:
        for restart in self.restarts:
            restart.join(120)


class FaultInjector(threading.Thread):
    FAULTS = [
        ("errors (503)", {"status": 503}),
        ("errors (500)", {"status": 500}),
        ("hangs", {"latency": 5}),
        ("refuses connections", None),
    ]

    def __init__(
        self, system: System, interval: float, stop: threading.Event, stats: Stats, rng: random.Random, only: str = ""
    ):
        super().__init__(name="faults", daemon=True)
        self.system, self.interval, self.stop, self.stats, self.random = system, interval, stop, stats, rng
        self.peers = {
            "book": system.env["BOOK_MANAGEMENT_URL"],
            "user": system.env["USER_MANAGEMENT_URL"],
            "notification": system.env["NOTIFICATION_SERVICE_URL"],
        }
        self.choices = self._choices(only)

    PEERS = ("book", "user", "notification")

    @classmethod
    def names(cls) -> list[str]:
        return [name for name, _ in cls.FAULTS]

    @classmethod
    def every(cls) -> list[tuple[str, str]]:
        return [(peer, name) for peer in cls.PEERS for name in cls.names()]

    @staticmethod
    def wanted(only: str) -> set[tuple[str, ...]]:
        """`--faults` as (peer, fault name) pairs."""
        return {tuple(item.strip().split(":", 1)) for item in only.split(",")}

    def _choices(self, only: str) -> list[tuple[str, str, dict | None]]:
        """(peer, fault name, fault) to draw from: every pair, or those of `--faults`."""
        faults = dict(self.FAULTS)
        pairs = [pair for pair in self.every() if not only or pair in self.wanted(only)]
        return [(peer, name, faults[name]) for peer, name in pairs]

    def run(self) -> None:
        while not self.stop.wait(self.interval * self.random.uniform(0.5, 1.5)):
            peer, name, fault = self.random.choice(self.choices)
            seconds = self.random.uniform(1, 4)
            url = self.peers[peer]
            try:
                if fault is None:
                    requests.put(f"{url}/_faults", json={"refuse_seconds": seconds}, timeout=2)
                else:
                    requests.put(f"{url}/_faults", json=fault, timeout=2)
                self.stats.add(f"faults: {peer} {name}")
                self.stats.add("faults")
                self.stop.wait(seconds)
            except requests.RequestException:
                pass
            finally:
                self.clear(url)

    def clear(self, url: str, deadline: float = 30) -> None:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            with contextlib.suppress(requests.RequestException):
                if requests.delete(f"{url}/_faults", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)

    def clear_all(self) -> None:
        for url in self.peers.values():
            self.clear(url, 60)


# --- checks ------------------------------------------------------------------------------------------
def drain(system: System, timeout: float, stats: Stats) -> dict:
    """Wait until the outbox has nothing pending; returns the final outbox counts."""
    from lending.models import OutboxMessage

    deadline = time.monotonic() + timeout
    while True:
        counts = dict(collections.Counter(OutboxMessage.objects.values_list("status", flat=True)))
        if not counts.get("PENDING"):
            return counts
        if time.monotonic() > deadline:
            stats.violation(f"the outbox did not drain in {timeout:.0f} s: {counts}")
            return counts
        time.sleep(0.5)


def check(system: System, ledger: Ledger, stats: Stats, outbox: dict) -> dict:
    from django.db.models import Count

    from lending.models import Loan, LoanNotice, OutboxKind, OutboxMessage

    facts: dict = {}
    book_peer = requests.get(f"{system.env['BOOK_MANAGEMENT_URL']}/books", timeout=10).json()
    copies = {b["id"]: b.get("quantity", 1) for b in book_peer}
    loans = {loan.pk: loan for loan in Loan.objects.all()}
    facts["loans in the database"] = len(loans)
    facts["open loans at the end"] = sum(1 for loan in loans.values() if loan.date_returned is None)

    # 1. No book ever had more open loans than copies (a sweep over every loan's lifetime).
    events = collections.defaultdict(list)
    for loan in loans.values():
        events[loan.book_id].append((loan.date_borrowed, 1))
        if loan.date_returned:
            events[loan.book_id].append((loan.date_returned, -1))
    peak_ratio = 0.0
    for book_id, book_events in events.items():
        open_now = 0
        for _, delta in sorted(book_events, key=lambda e: (e[0], e[1])):  # returns first at equal times
            open_now += delta
            if open_now > copies.get(book_id, 1):
                stats.violation(f"book {book_id} had {open_now} open loans for {copies.get(book_id, 1)} copies")
                break
        peak_ratio = max(peak_ratio, open_now / max(copies.get(book_id, 1), 1))

    # 2. Every acknowledged lend and return exists exactly once; nothing else was written.
    for loan_id, (user, book) in ledger.lends.items():
        loan = loans.get(loan_id)
        if loan is None or (loan.user_email, loan.book_id) != (user, book):
            stats.violation(f"acknowledged loan {loan_id} ({user}, book {book}) is missing or different")
    for loan_id in ledger.returns:
        if loan_id in loans and loans[loan_id].date_returned is None:
            stats.violation(f"acknowledged return of loan {loan_id} is not in the database")
    unacknowledged = [loan for pk, loan in loans.items() if pk not in ledger.lends]
    for loan in unacknowledged:
        if (loan.user_email, loan.book_id) not in ledger.uncertain:
            stats.violation(f"loan {loan.pk} ({loan.user_email}, book {loan.book_id}) was never acknowledged")
    for pk, loan in loans.items():
        if (
            loan.date_returned
            and pk in ledger.lends
            and pk not in ledger.returns
            and (loan.user_email, loan.book_id) not in ledger.uncertain
        ):
            stats.violation(f"loan {pk} was returned without an acknowledged return")
    facts["loans committed for never-acknowledged lends"] = len(unacknowledged)

    # 3. Each loan event reached the Notification peer exactly once (after its dedupe by key).
    received = requests.get(f"{system.env['NOTIFICATION_SERVICE_URL']}/notifications", timeout=30).json()
    peer_stats = requests.get(f"{system.env['NOTIFICATION_SERVICE_URL']}/stats", timeout=10).json()
    got = collections.Counter((n.get("loan_id"), n.get("message_type")) for n in received)
    expected = collections.Counter()
    for pk, loan in loans.items():
        expected[(pk, "lending_confirmation")] += 1
        if loan.date_returned:
            expected[(pk, "return_confirmation")] += 1
    for row in LoanNotice.objects.values("notice_type", "loan_id").annotate(n=Count("id")):
        expected[(row["loan_id"], row["notice_type"])] += row["n"]
    missing = {k: v - got[k] for k, v in expected.items() if got[k] < v}
    extra = {k: got[k] - v for k, v in got.items() if k[0] is not None and got[k] > expected.get(k, 0)}
    for (loan_id, kind), n in list(missing.items())[:20]:
        stats.violation(f"{n} {kind} notification(s) of loan {loan_id} never reached the Notification peer")
    for (loan_id, kind), n in list(extra.items())[:20]:
        stats.violation(f"{n} extra {kind} notification(s) of loan {loan_id} reached the Notification peer")
    if len(missing) > 20 or len(extra) > 20:
        stats.violation(f"... {len(missing)} loan events missing and {len(extra)} duplicated in all")
    keys = collections.Counter(n.get("idempotency_key") for n in received)
    delivered = set(
        OutboxMessage.objects.filter(kind=OutboxKind.NOTIFICATION, status="DELIVERED").values_list("key", flat=True)
    )
    if {str(k) for k in delivered} - set(keys):
        stats.violation("some delivered notification messages are not at the Notification peer")
    facts["notifications at the peer"] = len(received)
    facts["  lending confirmations"] = sum(1 for n in received if n.get("message_type") == "lending_confirmation")
    facts["  return confirmations"] = sum(1 for n in received if n.get("message_type") == "return_confirmation")
    facts["  due-soon reminders"] = sum(1 for n in received if n.get("message_type") == "due_soon_reminder")
    facts["duplicate deliveries dropped by the peer"] = peer_stats.get("duplicates_dropped")

    # 4. Every book's availability at the Book peer equals the truth.
    open_by_book = collections.Counter(loan.book_id for loan in loans.values() if loan.date_returned is None)
    wrong = [
        (b["id"], b["available"]) for b in book_peer if b["available"] != (open_by_book[b["id"]] < b.get("quantity", 1))
    ]
    for book_id, available in wrong[:20]:
        stats.violation(
            f"book {book_id}: the Book peer says available={available}, the truth is "
            f"{open_by_book[book_id]} open loan(s) for {copies[book_id]} copies"
        )
    facts["books checked at the Book peer"] = len(book_peer)
    facts["books lent at least once"] = len(events)
    facts["highest open loans / copies"] = round(peak_ratio, 2)

    # 5. Nothing parked: every side effect was delivered.
    facts["outbox messages by status"] = outbox
    if outbox.get("DEAD"):
        stats.violation(f"{outbox['DEAD']} outbox message(s) are dead letters")
    return facts


# --- the run -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    rng = random.Random(seed)
    system = System(args)
    print(f"chaos run (seed {seed}): database {system.db_name}, logs in {system.log_dir}", flush=True)
    stats, ledger = Stats(), Ledger()
    try:
        system.start()
        os.environ.update({k: v for k, v in system.env.items() if k not in ("PYTHONUNBUFFERED",)})
        import django

        django.setup()
        print(
            f"started {len(system.webs)} web processes {system.web_urls}, {len(system.relays)} relays, "
            f"the scheduler and the reference peers",
            flush=True,
        )

        users = [f"patron{n + 1}@example.com" for n in range(args.clients * args.users_per_client)]
        books = list(range(1, 6 + args.books))
        stop_load, stop_mayhem = threading.Event(), threading.Event()
        clients = [
            Client(i, users[i :: args.clients], books, system.web_urls, stop_load, stats, ledger, rng.randrange(2**32))
            for i in range(args.clients)
        ]
        killer = Killer(system, args.kill_interval, stop_mayhem, stats, random.Random(rng.randrange(2**32)))
        faults = FaultInjector(
            system, args.fault_interval, stop_mayhem, stats, random.Random(rng.randrange(2**32)), only=args.faults
        )
        started = time.monotonic()
        for thread in [*clients, killer, faults]:
            thread.start()
        max_duration = args.max_duration or 4 * args.duration

        def load_done() -> bool:
            elapsed = time.monotonic() - started
            operations = stats.counts["lend attempts"] + stats.counts["return attempts"]
            enough = operations >= args.min_operations and stats.counts["kills"] >= args.min_kills
            return elapsed >= max_duration or (elapsed >= args.duration and enough)

        next_progress = started + 5
        while not load_done():
            time.sleep(0.5)
            if time.monotonic() >= next_progress:
                next_progress += 5
                print(
                    f"  {time.monotonic() - started:5.0f} s: {stats.counts['lends acknowledged']} lends, "
                    f"{stats.counts['returns acknowledged']} returns, {stats.counts['kills']} kills, "
                    f"{stats.counts['faults']} faults, {stats.counts['violations']} violations",
                    flush=True,
                )
        stop_mayhem.set()
        stop_load.set()
        killer.join(30)
        killer.join_restarts()
        faults.join(30)
        faults.clear_all()
        for managed in system.killable:
            if managed.process.poll() is not None:
                managed.start()
            managed.wait_ready()
        for client in clients:
            client.join(Client.OP_DEADLINE + 30)
        load_seconds = time.monotonic() - started
        # A last scheduler pass sees every loan, then the relays drain the outbox.
        subprocess.run(
            [PYTHON, "manage.py", "send_notices"], cwd=ROOT, env=system.env, check=True, stdout=subprocess.DEVNULL
        )
        outbox = drain(system, args.drain_timeout, stats)
        facts = check(system, ledger, stats, outbox)
        operations = stats.counts["lend attempts"] + stats.counts["return attempts"]
        if operations < args.min_operations:
            stats.violation(f"only {operations} operations, fewer than --min-operations {args.min_operations}")
        if stats.counts["kills"] < args.min_kills:
            stats.violation(f"only {stats.counts['kills']} kills, fewer than --min-kills {args.min_kills}")
    except Exception as exc:
        stats.violation(f"the run itself failed: {exc.__class__.__name__}: {exc}")
        facts, load_seconds = {}, 0.0
    finally:
        system.stop()
        if not args.keep_db:
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
            system.drop_database()
    report(args, seed, system, stats, facts, load_seconds)
    return 1 if stats.violations or stats.counts["violations"] else 0


def report(args, seed: int, system: System, stats: Stats, facts: dict, load_seconds: float) -> None:
    counts = stats.counts
    operations = counts["lend attempts"] + counts["return attempts"]
    rows = [
        ("load", f"{load_seconds:.0f} s (requested {args.duration:.0f} s)"),
        (
            "operations (lends + returns)",
            f"{operations} ({counts['lend attempts']} lends, {counts['return attempts']} returns)",
        ),
        ("  lends acknowledged (201)", counts["lends acknowledged"]),
        ("  lends refused: no copy available (409)", counts["lends refused: no copy available"]),
        ("  returns acknowledged (200)", counts["returns acknowledged"]),
        ("  operations never acknowledged", counts["lends never acknowledged"] + counts["returns never acknowledged"]),
        ("  retries with the same Idempotency-Key", counts["retries"]),
        ("    after a dropped connection", counts["dropped connections"]),
        ("  answers replayed (Idempotent-Replayed)", counts["replayed answers"]),
        (
            "process kills (SIGKILL, then restart)",
            f"{counts['kills']}: "
            + ", ".join(f"{k.split(': ')[1]} {v}" for k, v in sorted(counts.items()) if k.startswith("kills: ")),
        ),
        (
            "peer faults (1-4 s each)",
            f"{counts['faults']}: "
            + ", ".join(f"{k.split(': ')[1]} {v}" for k, v in sorted(counts.items()) if k.startswith("faults: ")),
        ),
        ("HTTP answers seen by the clients", ", ".join(f"{k} x{v}" for k, v in sorted(stats.statuses.items()))),
        *((name, json.dumps(value) if isinstance(value, dict) else value) for name, value in facts.items()),
    ]
    title = (
        f"CHAOS REPORT (seed {seed}; {args.webs} web processes, {args.relays} relays, scheduler, "
        f"reference peers; {args.clients} clients)"
    )
    lines = ["", "=" * 100, title, "=" * 100, *(f"{name:<44} {value}" for name, value in rows), "-" * 100]
    checks = [
        "no book ever had more open loans than copies (sweep over every loan's lifetime)",
        "every acknowledged lend and return exists exactly once; nothing unacknowledged was written",
        "each loan event reached the Notification peer exactly once (after its dedupe by key)",
        "every book's availability at the Book peer equals the truth",
        "no 5xx other than 503, and every 503 carries Retry-After",
        "the outbox drained; no dead letters",
    ]
    lines += [f"checked: {c}" for c in checks]
    lines.append(f"VIOLATIONS: {counts['violations']}")
    lines += [f"  - {v}" for v in stats.violations]
    lines.append(f"logs: {system.log_dir}")
    lines.append("RESULT: " + ("FAIL" if counts["violations"] else "PASS"))
    print("\n".join(lines), flush=True)
