"""`make bench`: the service under load, on PostgreSQL, with production settings.

Starts, on free ports: the reference peers (with enough demo books and patrons for every scenario),
the service under gunicorn (the deployment's `docker/gunicorn.conf.py` serving `tools.bench.wsgi`, with
`tools.bench.settings` = the production settings plus the ceiling views) and one outbox relay, all against a
database of its own (`lending_bench`, created and dropped by the run). Then drives each scenario with
wrk at 32 connections (a warm-up, then the measured run; for `--profile`, a third run under py-spy), and
writes `tools/bench/results/latest.{md,json,png}`.

Two ceilings, measured by the same server processes at the start and at the end of the run: a
constant-JSON Django view without any middleware (`bare`, every ratio is given against it: this
machine is shared, absolute numbers drift) and the same view through the full middleware (`ceiling`).

And a floor (`floor`: tools/bench/floor.py under gunicorn with the service's worker settings, on a port of its
own, against the same database, peers and relay): a framework-free lend and lend+return cycle, measured
in the same run beside the service's: `floor_lend` and `lend` alternately in three rounds (`--floor-rounds`; the
floor first in the first and third, the service first in the second), then `floor_cycle` and `cycle` likewise.
The service's lends/s and cycles/s are given as a share of the floor's, from the round whose share is the
median, every round's share beside it: on a shared machine one pair's share moved by 15 points within an
hour. The floor comparison alone: `make bench BENCH_ARGS="--only floor,lend,cycle"`.

And the SIP2 gateway (`sip`, tools/bench/sip.py): `python -m sip_gateway` started beside the service with a
kiosk account, 50 kiosk connections doing check-out + check-in pairs at a kiosk's pace (p50, p99, errors;
then flat out, for the capacity), and 200 idle logged-in kiosk sockets held while `/health/ready/` and
lends are measured against none. Alone: `make bench BENCH_ARGS="--only sip"`.

`--servers buffered,gthread` runs the first phase and the stalled-clients scenario once per worker
class, side by side in one sitting (`buffered`: the deployment's worker; anything else is given to
gunicorn as GUNICORN_WORKER_CLASS).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from tools.bench import budget, data, heavy, privacy, report, sip
from tools.bench.load import WRK_THREADS, side_by_side, trio, wrk
from tools.bench.stall import Stall
from tools.harness import ROOT
from tools.harness.database import ScratchDatabase, scalar
from tools.harness.environment import peers_command, service_env, wait_for_peers
from tools.harness.processes import (
    PYTHON,
    ProcessGroup,
    answers,
    free_port,
    manage,
    output_of,
    run_manage,
    wait_http,
    wait_until,
)


def http(method: str, url: str, body: dict | None = None) -> dict:
    data_bytes = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data_bytes, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read() or b"null")


DEPLOYED_SERVER = "buffered"
# The level the service is deployed at (k8s/base, docker-compose.yml): each request writes its log line.
DEPLOYED_LOG_LEVEL = "INFO"


class Numbers:
    """Hands out blocks of patron/book numbers (patron<k> borrows book k+5) so no two requests of
    the run touch the same book."""

    def __init__(self, first: int = 1) -> None:
        self.next = first

    def take(self, count: int) -> int:
        first, self.next = self.next, self.next + count
        return first


def outbox_pending(dsn: str) -> int:
    return scalar(dsn, "SELECT count(*) FROM lending_outboxmessage WHERE status = 'PENDING'")


def outbox_counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT status, count(*) FROM lending_outboxmessage GROUP BY status").fetchall()
    return dict(rows)


def wait_drained(dsn: str, timeout: float = 180.0) -> float | None:
    started = time.monotonic()
    while outbox_pending(dsn):
        if time.monotonic() - started > timeout:
            return None
        time.sleep(0.1)
    return round(time.monotonic() - started, 2)


def create_api_key(env: dict[str, str]) -> str:
    """A service key holding every scope when the settings require one (REQUIRE_API_KEY); '' otherwise."""
    code = (
        "import django; django.setup()\n"
        "from django.conf import settings\n"
        "if getattr(settings, 'REQUIRE_API_KEY', False):\n"
        "    try:\n"
        "        from lending.api.permissions import create_key\n"
        "        from lending.models import Scope\n"
        "        print(create_key('bench', list(Scope.values))[1])\n"
        "    except ImportError:  # keys without scopes\n"
        "        from rest_framework_api_key.models import APIKey\n"
        "        print(APIKey.objects.create_key(name='bench')[1])\n"
    )
    return output_of("-c", code, env=env).strip()


def wait_until_answers(base_url: str, timeout: float = 60.0) -> None:
    """Until the server at `base_url` gives any HTTP answer (the floor has no health path: a GET is a 404)."""
    if not wait_until(lambda: answers(f"{base_url}/"), timeout, 0.2):
        raise RuntimeError(f"{base_url} did not answer within {timeout:.0f} s")


def worker_pids(master_pid: int) -> list[int]:
    done = subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in done.stdout.split()]


# The overdue loans `expired` lists, made before the scenarios.
OVERDUE_LOANS = 100


def profile(pids: dict[int, str], seconds: float, out: Path) -> list[subprocess.Popen]:
    """py-spy on each pid, its raw stacks written to out/profile-<role>-<pid>.txt."""
    spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    return [
        subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(seconds)),
                "--rate",
                "250",
                "--nonblocking",
                "--gil",  # only the thread holding the interpreter lock: CPU spent in Python, not waits
                "--format",
                "raw",
                "--output",
                str(out / f"profile-{role}-{pid}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid, role in pids.items()
    ]


def bench_env(database_url: str, ports: dict[str, int], logdir: Path) -> dict[str, str]:
    """The service's environment in the run: its production settings, but for what a benchmark must change.
    The benchmark sends ~1,000 requests/s from one address with one key: far above the default rate limits (a
    per-deployment choice), which service_env turns off. The log level is the deployment's (one JSON line per
    request, as in production), not the quieter level the other tools run at."""
    return service_env(
        database_url,
        ports,
        DJANGO_SETTINGS_MODULE="tools.bench.settings",
        GUNICORN_BIND=f"127.0.0.1:{ports['web']}",
        PROMETHEUS_MULTIPROC_DIR=str(logdir / "prometheus"),
        LOG_LEVEL=DEPLOYED_LOG_LEVEL,
        # The heavy borrower holds more open loans than the default limit allows.
        LOAN_MAX_ACTIVE_PER_PATRON=str(10 * heavy.HEAVY_LOANS),
    )


def main() -> int:  # noqa: C901 (a script: one step after the other)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per measured scenario")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up before each scenario")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None, help="GUNICORN_WORKERS (default: the config's)")
    parser.add_argument("--threads", type=int, default=None, help="GUNICORN_THREADS (default: the config's)")
    parser.add_argument("--volume", type=int, default=1_000_000, help="loans of the volume phase (0: skip)")
    parser.add_argument("--overdue", type=int, default=100_000, help="overdue loans among them")
    parser.add_argument(
        "--privacy-loans", type=int, default=1_000_000, help="returned loans for tools.bench.privacy (0: skip)"
    )
    parser.add_argument(
        "--floor-rounds",
        type=int,
        default=3,
        help="rounds of the floor comparison: the floor's lend and the service's, then their cycles, measured "
        "alternately this many times; the round with the median share is the run's figure",
    )
    parser.add_argument("--only", default="", help="comma-separated scenarios to run (default: all)")
    parser.add_argument(
        "--servers",
        default=DEPLOYED_SERVER,
        help="comma-separated worker classes, measured one after the other in phase 1 and the stall "
        f"(default {DEPLOYED_SERVER}: the deployment's; e.g. {DEPLOYED_SERVER},gthread)",
    )
    parser.add_argument("--stalled", type=int, default=500, help="stalled sockets in the stall scenario")
    parser.add_argument(
        "--profile",
        default="lend",
        help="py-spy the workers during this scenario: the CPU budget's phases and a flame graph ('' : none)",
    )
    parser.add_argument(
        "--heavy-rounds",
        type=int,
        default=40,
        help=f"heavy borrower: lend+renew+return rounds for a patron holding {heavy.HEAVY_LOANS} loans and one "
        "holding none (0: skip)",
    )
    parser.add_argument("--kiosks", type=int, default=sip.KIOSKS, help="SIP2 kiosk connections doing pairs")
    parser.add_argument(
        "--kiosk-interval",
        type=float,
        default=sip.Plan.interval,
        help="seconds between a kiosk's messages: a patron scanning one book after another",
    )
    parser.add_argument(
        "--kiosk-flat-seconds", type=float, default=10.0, help="the kiosks flat out, for the capacity (0: skip)"
    )
    parser.add_argument("--idle-kiosks", type=int, default=sip.IDLE, help="idle kiosk sockets against the API")
    parser.add_argument("--idle-rounds", type=int, default=3, help="ABBA rounds of the idle-socket comparison")
    parser.add_argument("--database", default="lending_bench")
    parser.add_argument("--out", default=str(ROOT / "tools" / "bench" / "results"))
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    if args.floor_rounds < 1:
        parser.error("--floor-rounds must be at least 1")
    only = {s for s in args.only.split(",") if s}
    servers = [s for s in args.servers.split(",") if s]

    def wanted(name: str) -> bool:
        return not only or name in only

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    logdir = Path(tempfile.mkdtemp(prefix="lending-bench-"))
    per_thread = int(max(args.duration, args.warmup) * 1500)  # numbers per wrk thread and run: above any rate
    numbers = Numbers()
    # A write scenario's blocks of fresh numbers: a warm-up, the measured runs (one per round of the floor
    # comparison; the others use the first) and the profiled one (`--profile`: py-spy samples the workers in a
    # run of its own, since its sampling takes CPU that no measured figure should carry on a small machine).
    blocks = 1 + args.floor_rounds + 1
    runs = blocks * len(servers)
    lend_first = numbers.take(runs * WRK_THREADS * per_thread)
    return_first = numbers.take(runs * WRK_THREADS * per_thread)
    hang_return_first = numbers.take(WRK_THREADS * per_thread)
    cycle_first = numbers.take(runs * WRK_THREADS * per_thread)
    hang_lend_first = numbers.take(WRK_THREADS * per_thread)
    floor_lend_first = numbers.take(blocks * WRK_THREADS * per_thread)
    floor_cycle_first = numbers.take(blocks * WRK_THREADS * per_thread)
    stall_lend_first = numbers.take(len(servers) * per_thread)
    overdue_first = numbers.take(OVERDUE_LOANS)
    heavy_first = numbers.take(2 + heavy.HEAVY_LOANS + 2 * args.heavy_rounds)
    sip_plan = sip.Plan(
        kiosks=args.kiosks,
        interval=args.kiosk_interval,
        flat_seconds=args.kiosk_flat_seconds,
        idle=args.idle_kiosks,
        idle_rounds=args.idle_rounds,
        warmup=args.warmup,
        duration=args.duration,
    )
    sip_first = numbers.take(sip_plan.numbers())
    demo = numbers.next

    ports = {name: free_port() for name in ("web", "floor", "book", "user", "notification", "fees")}
    base = f"http://127.0.0.1:{ports['web']}"
    floor_base = f"http://127.0.0.1:{ports['floor']}"
    database = ScratchDatabase(args.database, keep=args.keep_database)
    env = bench_env(database.url, ports, logdir)
    dsn = database.url
    if args.workers:
        env["GUNICORN_WORKERS"] = str(args.workers)
    if args.threads:
        env["GUNICORN_THREADS"] = str(args.threads)

    # Every process of the run (migrate included) may touch a metric: the directory must exist first.
    (logdir / "prometheus").mkdir()
    results: dict = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_start": os.getloadavg(),
        "cpus": os.cpu_count(),
        "settings": {
            "connections": args.connections,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "gunicorn_workers": env.get("GUNICORN_WORKERS", "config default"),
            "gunicorn_threads": env.get("GUNICORN_THREADS", "config default"),
            "servers": servers,
            "stalled_sockets": args.stalled,
        },
        "scenarios": {},
        "stalls": {},
        "profiles": {},
        "floor_rounds": {},
    }
    scenarios = results["scenarios"]
    procs = ProcessGroup(logdir)

    def profile_run(
        name: str, url: str, wrk_args: list[str], conns: int, duration: float, server: str, result: dict
    ) -> None:
        """py-spy on the server's workers and the relay during a run of the scenario that is not measured;
        the phases are apportioned over the measured run's web CPU per request."""
        roles = {pid: "web" for pid in worker_pids(procs.pid(server))} | {procs.pid("relay"): "relay"}
        spies = profile(roles, duration - 1, logdir)
        wrk(url, wrk_args, duration=duration, connections=conns, env=wrk_env)
        for spy in spies:
            spy.wait()
        stacks = budget.read_raw(list(logdir.glob("profile-web-*.txt")))
        relay_stacks = budget.read_raw(list(logdir.glob("profile-relay-*.txt")))
        samples = budget.phases(stacks)
        results["profiles"][name] = {
            "samples": samples,
            "budget": budget.phase_budget(samples, result.get("web_cpu_ms_per_request")),
            "flame_graph": str(budget.flame_graph(stacks, out / f"flame-{name}.svg", f"web workers during {name}")),
            "relay_flame_graph": str(
                budget.flame_graph(relay_stacks, out / f"flame-{name}-relay.svg", f"the relay during {name}")
            ),
            "relay_top": budget.top_functions(relay_stacks),
        }

    def measure(
        name: str,
        wrk_args_warm: list[str] | None,
        wrk_args: list[str],
        *,
        wrk_args_profiled: list[str] | None = None,
        connections: int | None = None,
        duration: float | None = None,
        writes: bool = False,
        server: str = "web",
        profiled: bool = True,
    ) -> dict:
        """One wrk run against `server` (the service, "web", or the floor), with the CPU each process group
        spent on it (for writes, until the relay has drained the outbox: the relay's share of each write
        counts; the server's own CPU is reported as "web") and, for `--profile`, the phases, from a run of
        their own after the measured one (`wrk_args_profiled`: a write's fresh numbers; a read's own), unless
        not `profiled` (a round of the floor comparison but the last)."""
        conns = connections or args.connections
        url = floor_base if server == "floor" else base
        if wrk_args_warm is not None and args.warmup > 0:
            wrk(url, wrk_args_warm, duration=args.warmup, connections=conns, env=wrk_env)
            wait_drained(dsn)
        clock = budget.ProcessClock(
            {"web": procs.pid(server), "relay": procs.pid("relay"), "peers": procs.pid("peers")}, dsn
        )
        clock.start()
        result = wrk(url, wrk_args, duration=duration or args.duration, connections=conns, env=wrk_env)
        if writes:
            result["outbox_backlog_at_end"] = outbox_pending(dsn)
            result["outbox_drain_s"] = wait_drained(dsn)
            result["outbox"] = outbox_counts(dsn)
        spent = clock.stop()
        if result["requests"]:
            result["cpu_ms_per_request"] = budget.per_operation(spent, result["requests"])
            result["web_cpu_ms_per_request"] = result["cpu_ms_per_request"]["web"]
        if profiled and args.profile == name:
            profiled_args = wrk_args_profiled or wrk_args
            profile_run(name, url, profiled_args, conns, duration or args.duration, server, result)
            if writes:
                wait_drained(dsn)
        scenarios[name] = result
        print(
            f"  {name:<22} {result['rps']:>8.1f} req/s  p50 {result['p50_ms']:>7.2f} ms  "
            f"p99 {result['p99_ms']:>7.2f} ms  errors {result['errors']}  "
            f"web CPU {result.get('web_cpu_ms_per_request', '-')} ms/request",
            flush=True,
        )
        if result.get("cpu_ms_per_request"):
            print(f"    CPU ms/request by process: {result['cpu_ms_per_request']}", flush=True)
        if writes:
            print(
                f"    relay: backlog {result['outbox_backlog_at_end']} at the end, drained in "
                f"{result['outbox_drain_s']} s",
                flush=True,
            )
        return result

    def write_runs(kind: str, first: int, index: int = 0) -> list[list[str]]:
        """wrk arguments of a write scenario's warm-up, measured and profiled runs (`blocks` of them: the
        warm-up first, the profiled one last) for the index-th server: each run a block of per_thread fresh
        numbers per wrk thread, from `first`."""
        return [
            [kind, str(first + (blocks * index + run) * WRK_THREADS * per_thread), str(per_thread)]
            for run in range(blocks)
        ]

    def measure_once(name: str, runs: list[list[str]], server: str = "web") -> None:
        """A write scenario measured once: its warm-up, its first measured run, its profiled run."""
        measure(name, runs[0], runs[1], wrk_args_profiled=runs[-1], writes=True, server=server)

    def measure_against_the_floor(kind: str, floor_first: int, service_first: int, suffix: str) -> None:
        """The floor's `kind` (lend or cycle) and the service's, measured alternately in `--floor-rounds`
        rounds (the floor first in odd rounds, the service in even ones); the round whose share of the floor
        is the median stands for both in the results, every round's share in `floor_rounds`."""
        floor_name, service = report.FLOOR_OF[kind], f"{kind}{suffix}"
        floor_runs, service_runs = write_runs(kind, floor_first), write_runs(kind, service_first)
        rounds = []
        for number in range(args.floor_rounds):
            last = number == args.floor_rounds - 1
            order = [(floor_name, floor_runs, "floor"), (service, service_runs, "web")]
            measured = {}
            for name, runs, server in order if number % 2 == 0 else reversed(order):
                warm = runs[0] if number == 0 else None
                measured[name] = measure(
                    name, warm, runs[1 + number], wrk_args_profiled=runs[-1], writes=True, server=server, profiled=last
                )
            rounds.append(measured)
        chosen, listed = report.median_round(service, floor_name, rounds)
        scenarios.update(chosen)
        results["floor_rounds"][service] = listed
        shares = ", ".join(f"{entry['share_of_floor']:.1%}" for entry in listed)
        print(f"    {service} against the floor, round by round: {shares}", flush=True)

    try:
        print(f"bench: database {args.database}, logs in {logdir}", flush=True)
        database.create()
        run_manage("migrate", "--noinput", "-v", "0", env=env)
        key = create_api_key(env)
        wrk_env = {**os.environ, "BENCH_AUTH": f"Api-Key {key}" if key else ""}

        # Pre-made open loans for the return scenarios; a few overdue ones for getExpiredBooks.
        data.open_loans(dsn, return_first, (runs + 1) * WRK_THREADS * per_thread)
        data.overdue_loans(dsn, overdue_first, OVERDUE_LOANS)

        procs.start("peers", peers_command(ports, demo_books=demo, demo_users=demo), env)
        wait_for_peers(ports)
        procs.start("relay", manage("relay_outbox"), env)
        if wanted("floor"):
            # The same worker settings as the service (GUNICORN_* of `env`), on its own port.
            floor_env = {**env, "GUNICORN_BIND": f"127.0.0.1:{ports['floor']}"}
            procs.start("floor", [PYTHON, "-m", "gunicorn", "-c", "tools/bench/floor_gunicorn.py"], floor_env)

        def start_web(server: str) -> None:
            web_env = dict(env)
            if server != DEPLOYED_SERVER:
                web_env["GUNICORN_WORKER_CLASS"] = server
            procs.start(
                "web",
                [PYTHON, "-m", "gunicorn", "-c", "docker/gunicorn.conf.py", "tools.bench.wsgi:application"],
                web_env,
            )
            wait_http(f"{base}/health/live/")
            results["settings"]["gunicorn_workers_running"] = len(worker_pids(procs.pid("web")))

        def ceilings(suffix: str, when: str = "") -> None:
            measure(f"bare{when}{suffix}", ["get", "/_bench/bare/"], ["get", "/_bench/bare/"])
            measure(f"ceiling{when}{suffix}", ["get", "/_bench/ceiling/"], ["get", "/_bench/ceiling/"])
            every = "/_bench/all-middleware/"
            measure(f"ceiling_all_middleware{when}{suffix}", ["get", every], ["get", every])

        def stall(server: str, suffix: str, index: int) -> None:
            """/health/live/ and lends while `--stalled` sockets hold half-sent requests."""
            print(f"  {args.stalled} stalled sockets ({server})", flush=True)
            stalled = Stall("127.0.0.1", ports["web"], args.stalled)
            load = {
                f"stall_live{suffix}": ["get", "/health/live/"],
                f"stall_lend{suffix}": ["lend", str(stall_lend_first + index * per_thread), str(per_thread)],
            }
            side_by_side(base, load, args.duration, wrk_env, scenarios)
            deadline = time.monotonic() + 15
            while len(stalled.closed_after) < len(stalled.opened) and time.monotonic() < deadline:
                time.sleep(0.2)
            results["stalls"][server] = summary = stalled.finish()
            print(f"  stalled sockets: {summary}", flush=True)

        for index, server in enumerate(servers):
            suffix = f"@{server}" if len(servers) > 1 else ""
            last = index == len(servers) - 1
            start_web(server)
            print(f"phase 1: scenarios ({server})", flush=True)
            if wanted("ceiling"):
                ceilings(suffix)
            floor = wanted("floor") and index == 0  # beside the first server's scenarios only
            if floor:
                wait_until_answers(floor_base)
            for kind, floor_first, service_first in (
                ("lend", floor_lend_first, lend_first),
                ("return", None, return_first),
                ("cycle", floor_cycle_first, cycle_first),
            ):
                if floor and floor_first is not None:
                    if wanted(kind):
                        measure_against_the_floor(kind, floor_first, service_first, suffix)
                        continue
                    measure_once(report.FLOOR_OF[kind], write_runs(kind, floor_first), server="floor")
                if wanted(kind):
                    measure_once(f"{kind}{suffix}", write_runs(kind, service_first, index))
            if wanted("expired"):
                measure(f"expired{suffix}", ["get", "/getExpiredBooks/"], ["get", "/getExpiredBooks/"])
            if wanted("loans"):
                lo, hi = return_first, return_first + 2 * WRK_THREADS * per_thread - 1
                loans = ["loans", "patron", str(lo), str(hi)]
                measure(f"loans{suffix}", loans, loans)
            if wanted("stall") and args.stalled:
                stall(server, suffix, index)
                wait_drained(dsn)
            if not last:
                if wanted("ceiling"):
                    ceilings(suffix, "_end")
                procs.stop("web")

        if wanted("sip"):
            print("SIP2 gateway: kiosks, then idle kiosk sockets against the API", flush=True)
            results["sip"] = sip.phase(
                procs, env, ports["web"], wrk_env["BENCH_AUTH"], sip_first, sip_plan, lambda: wait_drained(dsn)
            )

        if wanted("peer_calls"):
            results["peer_calls"] = json.loads(output_of("-m", "tools.bench.peer_calls", "2000", env=env))
            print(f"peer GET, CPU ms per call side by side: {results['peer_calls']}", flush=True)

        if wanted("statements"):
            # In one transaction rolled back at its end: the bench database is left as it was.
            results["statements"] = json.loads(output_of("-m", "tools.bench.statements", "500", env=env))
            print(f"write-path statements, CPU ms per call side by side: {results['statements']}", flush=True)

        if wanted("heavy") and args.heavy_rounds:
            heavy_patron, light_patron = (f"patron{heavy_first + i}@example.com" for i in (0, 1))
            heavy.preload(dsn, heavy_patron, heavy_first + 2)
            print(
                f"heavy borrower: {heavy.HEAVY_LOANS} open loans against none, {args.heavy_rounds} rounds", flush=True
            )
            results["heavy"] = heavy.run(
                "127.0.0.1",
                ports["web"],
                wrk_env["BENCH_AUTH"],
                {"heavy": heavy_patron, "none": light_patron},
                heavy_first + 2 + heavy.HEAVY_LOANS,
                args.heavy_rounds,
            )
            print(f"  p50 ms heavy {results['heavy']['heavy']}, none {results['heavy']['none']}", flush=True)
            print(f"  ratio heavy/none (p50): {results['heavy']['ratio_p50']}", flush=True)
            wait_drained(dsn)

        if wanted("hang"):
            # Lends (which need the Book peer), returns and the liveness probe side by side, first with
            # every peer well, then while the Book peer hangs (every answer delayed 30 s).
            print("phase 2: returns and /health/live/ while lends run, then while the Book peer hangs", flush=True)
            trio(base, "calm", hang_lend_first, hang_return_first, per_thread, args.duration, wrk_env, scenarios)
            wait_drained(dsn)
            http("PUT", f"{env['BOOK_MANAGEMENT_URL']}/_faults", {"latency": 30})
            trio(
                base,
                "hang",
                hang_lend_first + per_thread,
                hang_return_first + per_thread,
                per_thread,
                args.duration,
                wrk_env,
                scenarios,
            )
            http("DELETE", f"{env['BOOK_MANAGEMENT_URL']}/_faults")
            # The relay's availability updates to the hung peer are retried with backoff; not waited for.

        if args.volume and (wanted("volume") or not only):
            print(f"phase 3: {args.volume:,} loans ({args.overdue:,} overdue) by COPY", flush=True)
            results["volume"] = data.volume(dsn, args.volume, args.overdue, patrons=args.volume // 10)
            print(f"  loaded in {results['volume']['seconds']} s", flush=True)
            path = "/getExpiredBooks/?limit=100"
            measure("expired_1m", ["get", path], ["get", path])
            measure("expired_1m_1conn", None, ["get", path], connections=1, duration=min(args.duration, 10))
            vol_patrons = ["loans", "vol", "1", str(args.volume // 10)]
            measure("loans_1m", vol_patrons, vol_patrons)
            measure("loans_1m_1conn", None, vol_patrons, connections=1, duration=min(args.duration, 10))
            results["plans"] = json.loads(output_of("-m", "tools.bench.explain", "vol1@example.com", env=env))

        if wanted("ceiling"):
            ceilings(suffix, "_end")
        results["load_average_end"] = os.getloadavg()
    finally:
        procs.stop_all()
        with suppress(Exception):
            database.drop()

    if args.privacy_loans and (wanted("privacy") or not only):
        # anonymize_loans over returned loans, and lends/s while it runs: a database of its own.
        print(f"privacy: anonymize_loans over {args.privacy_loans:,} returned loans", flush=True)
        results["privacy"] = privacy.run(loans=args.privacy_loans, out=out)

    files = report.write(results, out)
    print(report.table(results))
    print("results: " + ", ".join(str(f) for f in files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
