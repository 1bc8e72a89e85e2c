"""`python -m tools.bench.privacy`: how long `anonymize_loans` takes over 1,000,000 returned loans, and lends/s
while it runs against lends/s without it. Also run by `make bench` (tools/bench/run.py).

On a PostgreSQL database of its own (`lending_bench_privacy`, created and dropped by the run):
1. loads `--loans` returned loans (returned 200-600 days ago, over `--patrons` patrons) with COPY, like
   tools/bench/data.py;
2. starts the reference peers (one 1-copy book and one patron per lend) and a driver process whose
   `--lend-threads` threads lend without pause (`services.loan_lend`, each lend its own patron and book,
   so lends contend only on the database);
3. measures lends/s for `--baseline` seconds, then runs `manage.py anonymize_loans` (its own process,
   default batch size) and measures lends/s while it runs, then `--baseline` seconds after it.

Writes `tools/bench/results/privacy.json` and prints a summary. Lend latencies are per lend, end to end
(including the two peer calls), so a lend waiting on a lock the job holds shows in its p99.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from tools.bench import data
from tools.harness import ROOT
from tools.harness.database import ScratchDatabase, scalar
from tools.harness.environment import peers_command, service_env, wait_for_peers
from tools.harness.processes import PYTHON, ProcessGroup, free_port, output_of, run_manage

# --- The driver: lends without pause until told to stop (a process of its own) ---------------------


def drive(threads: int, stop_file: Path, out_file: Path) -> None:
    """Lends from `threads` threads until `stop_file` exists; writes (finished_at, seconds, ok) per lend."""
    import django

    django.setup()
    from django.db import connection

    from lending import services
    from tools.reference_peers.book import DEMO_BOOKS

    counter = iter(range(1, 10**9))
    lock = threading.Lock()
    records: list[tuple[float, float, bool]] = []

    def lend_forever() -> None:
        try:
            while not stop_file.exists():
                with lock:
                    n = next(counter)
                started = time.monotonic()
                ok = True
                try:
                    services.loan_lend(user_email=f"patron{n}@example.com", book_id=len(DEMO_BOOKS) + n)
                except Exception:
                    ok = False
                finished = time.monotonic()
                records.append((time.time(), finished - started, ok))
        finally:
            connection.close()

    workers = [threading.Thread(target=lend_forever) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out_file.write_text(json.dumps(records))


def window(records: list, start: float, end: float) -> dict:
    inside = [(at, seconds) for at, seconds, ok in records if ok and start <= at < end]
    latencies = sorted(seconds * 1000 for _, seconds in inside)
    failed = sum(1 for at, _, ok in records if not ok and start <= at < end)
    if not latencies:
        return {"lends": 0, "lends_per_s": 0.0, "failed": failed}
    return {
        "lends": len(inside),
        "seconds": round(end - start, 1),
        "lends_per_s": round(len(inside) / (end - start), 1),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2),
        "max_ms": round(latencies[-1], 2),
        "failed": failed,
    }


def run(
    *,
    loans: int = 1_000_000,
    patrons: int = 100_000,
    lend_threads: int = 4,
    baseline: float = 15.0,
    database: str = "lending_bench_privacy",
    out: Path | None = None,
    keep_database: bool = False,
) -> dict:
    out = out or ROOT / "tools" / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in ("book", "user", "notification", "fees")}
    expected_lends = 100_000  # demo books and patrons: more than the driver reaches in a run
    scratch = ScratchDatabase(database, keep=keep_database)
    dsn = scratch.url
    env = service_env(
        dsn,
        ports,
        REQUIRE_API_KEY="False",
        LOG_FORMAT="json",
        LOAN_MAX_ACTIVE_PER_PATRON="1000",
        LOAN_HISTORY_RETENTION_DAYS="120",
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    children = ProcessGroup()
    workdir = Path(tempfile.mkdtemp(prefix="bench-privacy-"))
    result: dict = {"started": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count()}
    try:
        scratch.create()
        run_manage("migrate", "--noinput", "-v", "0", env=env)
        result["load_seconds"] = round(data.returned_loans(dsn, loans, patrons), 1)
        result["returned_loans"] = loans
        print(f"privacy bench: {loans:,} returned loans loaded in {result['load_seconds']} s", flush=True)

        children.start("peers", peers_command(ports, expected_lends, expected_lends), env)
        wait_for_peers(ports)

        stop_file, records_file = workdir / "stop", workdir / "lends.json"
        driver_cmd = [
            PYTHON,
            "-m",
            "tools.bench.privacy",
            "--drive",
            str(lend_threads),
            str(stop_file),
            str(records_file),
        ]
        driver = children.start("driver", driver_cmd, env)
        time.sleep(3)  # connections opened, first lends done: not measured
        before_start = time.time()
        time.sleep(baseline)
        job_start = time.time()
        job = output_of("-m", "tools.bench.privacy", "--anonymize", env=env)
        job_end = time.time()
        result["anonymize"] = json.loads(job.strip().splitlines()[-1])
        time.sleep(baseline)
        after_end = time.time()
        stop_file.touch()
        driver.wait(timeout=60)
        records = json.loads(records_file.read_text())
        result["lend_threads"] = lend_threads
        result["lends_without"] = window(records, before_start, job_start)
        result["lends_during"] = window(records, job_start, job_end)
        result["lends_after"] = window(records, job_end, after_end)
        left = scalar(
            dsn,
            "SELECT count(*) FROM lending_loan WHERE date_returned IS NOT NULL "
            "AND user_email NOT LIKE '%%@anonymised.invalid'",
        )
        open_anonymised = scalar(
            dsn,
            "SELECT count(*) FROM lending_loan WHERE date_returned IS NULL AND user_email LIKE '%%@anonymised.invalid'",
        )
        result["returned_loans_left_with_email"] = left
        result["open_loans_anonymised"] = open_anonymised
    finally:
        children.stop_all()
        scratch.drop()
    (out / "privacy.json").write_text(json.dumps(result, indent=2) + "\n")
    print(summary(result), flush=True)
    return result


def anonymize_once() -> None:
    """`manage.py anonymize_loans`, timed inside the process (Django's start-up not counted)."""
    import django

    django.setup()
    from io import StringIO

    from django.core.management import call_command

    started = time.monotonic()
    output = StringIO()
    call_command("anonymize_loans", stdout=output)
    seconds = time.monotonic() - started
    print(json.dumps({"seconds": round(seconds, 1), "output": output.getvalue().strip().splitlines()}))


def summary(result: dict) -> str:
    job = result["anonymize"]
    lines = [
        f"anonymize_loans over {result['returned_loans']:,} returned loans: {job['seconds']} s "
        f"({result['returned_loans'] / max(job['seconds'], 0.001):,.0f} loans/s)",
    ]
    for name in ("lends_without", "lends_during", "lends_after"):
        w = result[name]
        lines.append(
            f"  {name:<14} {w['lends_per_s']:>7.1f} lends/s  p50 {w.get('p50_ms', 0):>7.2f} ms  "
            f"p99 {w.get('p99_ms', 0):>7.2f} ms  max {w.get('max_ms', 0):>8.2f} ms  failed {w['failed']}"
        )
    lines.append(
        f"  returned loans left with an email: {result['returned_loans_left_with_email']}; "
        f"open loans anonymised: {result['open_loans_anonymised']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loans", type=int, default=1_000_000, help="returned loans to anonymise")
    parser.add_argument("--patrons", type=int, default=100_000)
    parser.add_argument("--lend-threads", type=int, default=4)
    parser.add_argument("--baseline", type=float, default=15.0, help="seconds of lends before and after the job")
    parser.add_argument("--database", default="lending_bench_privacy")
    parser.add_argument("--out", default=str(ROOT / "tools" / "bench" / "results"))
    parser.add_argument("--keep-database", action="store_true")
    # Internal: the driver and the timed job, each a process of its own.
    parser.add_argument("--drive", nargs=3, metavar=("THREADS", "STOP_FILE", "OUT_FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--anonymize", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.drive:
        drive(int(args.drive[0]), Path(args.drive[1]), Path(args.drive[2]))
        return 0
    if args.anonymize:
        anonymize_once()
        return 0
    run(
        loans=args.loans,
        patrons=args.patrons,
        lend_threads=args.lend_threads,
        baseline=args.baseline,
        database=args.database,
        out=Path(args.out),
        keep_database=args.keep_database,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
