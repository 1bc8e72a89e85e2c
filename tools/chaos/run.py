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
import os
import random
import threading
import time

from tools.chaos.checks import check, drain
from tools.chaos.clients import Client
from tools.chaos.events import EventsUnderChaos
from tools.chaos.faults import FaultInjector, Killer
from tools.chaos.report import report
from tools.chaos.stats import Ledger, Stats
from tools.chaos.system import System
from tools.harness.database import ADMIN_URL
from tools.harness.processes import run_manage

# The modules of a run, one job each: system.py (the processes), clients.py (the careful clients),
# faults.py (kills and peer faults), checks.py (the invariants), report.py (the report); this one orchestrates.


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.chaos", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
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
        default=os.environ.get("CHAOS_ADMIN_DATABASE_URL", ADMIN_URL),
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    system = System(args)
    print(f"chaos run (seed {seed}): database {system.db_name}, logs in {system.log_dir}", flush=True)
    stats, ledger = Stats(), Ledger()
    # Domain events through a faulty proxy to the local RabbitMQ (tools/chaos/events.py), when it answers.
    events = EventsUnderChaos.wire(system.env)
    try:
        start(system)
        if events:
            events.start_faults(args.fault_interval, random.Random(seed + 1))
        load_seconds = load_under_mayhem(system, args, random.Random(seed), stats, ledger)
        if events:
            events.stop_faults()
        # A last scheduler pass sees every loan, then the relays drain the outbox.
        run_manage("send_notices", env=system.env)
        facts = check(system, ledger, stats, drain(system, args.drain_timeout, stats))
        facts.update(events.check(stats) if events else {"events": "not checked: no RabbitMQ on 127.0.0.1:5672"})
        check_enough(args, stats)
    except Exception as exc:
        stats.violation(f"the run itself failed: {exc.__class__.__name__}: {exc}")
        facts, load_seconds = {}, 0.0
    finally:
        system.stop()
        system.drop_database()
        if events:
            events.clean_up()
    report(args, seed, system, stats, facts, load_seconds)
    return 1 if stats.violations or stats.counts["violations"] else 0


def start(system: System) -> None:
    """Every process answering; Django set up in this process too (the checks read the database)."""
    system.start()
    os.environ.update({k: v for k, v in system.env.items() if k not in ("PYTHONUNBUFFERED",)})
    import django

    django.setup()
    print(
        f"started {len(system.webs)} web processes {system.web_urls}, {len(system.relays)} relays, "
        f"the scheduler and the reference peers",
        flush=True,
    )


def load_under_mayhem(
    system: System, args: argparse.Namespace, rng: random.Random, stats: Stats, ledger: Ledger
) -> float:
    """The clients' load with kills and peer faults until it is done; then every process back up and every
    client finished. Returns the seconds of load."""
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
    wait_for_enough_load(args, stats, started)
    stop_mayhem.set()
    stop_load.set()
    killer.join(30)
    killer.join_restarts()
    faults.join(30)
    faults.clear_all()
    for managed in system.killable:
        if not managed.running:
            managed.start()
        managed.wait_ready()
    for client in clients:
        client.join(Client.OP_DEADLINE + 30)
    return time.monotonic() - started


def wait_for_enough_load(args: argparse.Namespace, stats: Stats, started: float) -> None:
    """Until --duration passed with --min-operations and --min-kills reached, or --max-duration passed;
    a progress line every 5 s."""
    max_duration = args.max_duration or 4 * args.duration

    def load_done() -> bool:
        elapsed = time.monotonic() - started
        enough = operations(stats) >= args.min_operations and stats.counts["kills"] >= args.min_kills
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


def operations(stats: Stats) -> int:
    return stats.counts["lend attempts"] + stats.counts["return attempts"]


def check_enough(args: argparse.Namespace, stats: Stats) -> None:
    if operations(stats) < args.min_operations:
        stats.violation(f"only {operations(stats)} operations, fewer than --min-operations {args.min_operations}")
    if stats.counts["kills"] < args.min_kills:
        stats.violation(f"only {stats.counts['kills']} kills, fewer than --min-kills {args.min_kills}")
