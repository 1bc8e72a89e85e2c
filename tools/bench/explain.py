"""EXPLAIN (ANALYZE, BUFFERS) of the read endpoints' queries, built by the service's own selectors.

python -m tools.bench.explain [PATRON]
    the plans as JSON on stdout, against the database of the environment (DJANGO_SETTINGS_MODULE,
    DATABASE_URL); `make bench` runs it after loading its volume.
python -m tools.bench.explain --load 1000000 [--patrons 100000] [--heavy 5000] [--keep]
    loads that many loans (tools/bench/data.py's `volume`) into a scratch database (`lending_explain_<pid>`,
    dropped at the end unless --keep), then prints, for a typical patron and a heavy reader, the plans
    of `GET /loans/?user_email=` (the total and the first page) and the endpoint's in-process timing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import django

from tools.bench import data
from tools.harness.database import ScratchDatabase


def plans(patron: str) -> dict[str, str]:
    """The plans of getExpiredBooks and of a patron's loans (the page and its count); Django set up."""
    from django.db import connection

    from lending import selectors

    loans = selectors.loans(user_email=patron)
    count_sql, count_params = loans.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) SELECT COUNT(*) FROM ({count_sql}) AS page", count_params)
        count_plan = "\n".join(row[0] for row in cursor.fetchall())
    return {
        "getExpiredBooks?limit=100": selectors.overdue_loans()[:101].explain(analyze=True, buffers=True),
        f"loans?user_email={patron} (page)": loans[:50].explain(analyze=True, buffers=True),
        f"loans?user_email={patron} (count)": count_plan,
    }


def endpoint_timing(patron: str, calls: int = 50) -> str:
    """GET /loans/?user_email=<patron> in-process, `calls` times: median and p95."""
    from rest_framework.test import APIClient

    client, timings = APIClient(), []
    for _ in range(calls):
        started = time.perf_counter()
        response = client.get("/loans/", {"user_email": patron})
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.content
    timings.sort()
    return f"median {statistics.median(timings):.2f} ms, p95 {timings[int(len(timings) * 0.95) - 1]:.2f} ms"


def load_and_explain(args: argparse.Namespace) -> None:
    """A scratch database with `args.load` loans; the plans and timings for a typical patron and the heavy reader."""
    with ScratchDatabase(f"lending_explain_{os.getpid()}", keep=args.keep) as database:
        os.environ.update(
            DATABASE_URL=database.url,
            DJANGO_SETTINGS_MODULE="config.settings",
            DJANGO_DEBUG="true",
            DJANGO_ALLOWED_HOSTS="testserver",
            LOG_LEVEL="WARNING",
        )
        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        loaded = data.volume(database.url, args.load, args.load // 20, args.patrons, heavy=args.heavy)
        print(f"loaded {args.load:,} loans for {args.patrons:,} patrons in {loaded['seconds']} s")
        for patron in (f"vol{args.patrons // 2}@example.com", data.HEAVY_READER):
            print(f"\n######## {patron}\n")
            for name, plan in plans(patron).items():
                print(f"== {name}\n{plan}\n")
            print(f"GET /loans/?user_email={patron} over {args.load:,} loans, 50 calls: {endpoint_timing(patron)}")
        if args.keep:
            print(f"kept database {database.name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("patron", nargs="?", default="vol1@example.com")
    parser.add_argument("--load", type=int, default=0, help="loans to load into a scratch database first")
    parser.add_argument("--patrons", type=int, default=100_000)
    parser.add_argument("--heavy", type=int, default=5_000, help="returned loans of one heavy reader among them")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args(argv)
    if args.load:
        load_and_explain(args)
        return 0
    django.setup()
    json.dump(plans(args.patron), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
