"""Load 1,000,000 loans into a scratch PostgreSQL database and show how `GET /loans/?user_email=`
is answered: EXPLAIN ANALYZE of its two queries (the total and the page) and the endpoint's timing.

    .venv/bin/python scripts/explain_loans_query.py [--loans 1000000] [--patrons 100000] [--keep]
        [--server postgres://postgres@127.0.0.1:5432]

The scratch database (`lending_explain_<pid>`) is dropped at the end unless --keep is given.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loans", type=int, default=1_000_000)
    parser.add_argument("--patrons", type=int, default=100_000)
    parser.add_argument("--heavy", type=int, default=5_000, help="loans of one heavy reader among them")
    parser.add_argument("--server", default=os.environ.get("EXPLAIN_SERVER", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    name = f"lending_explain_{os.getpid()}"
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        return run(args, f"{args.server}/{name}")
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            with psycopg.connect(f"{args.server}/postgres", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            print(f"kept database {name}")


def run(args: argparse.Namespace, url: str) -> int:
    os.environ.update(
        DATABASE_URL=url,
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="true",
        DJANGO_ALLOWED_HOSTS="testserver",
        LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from rest_framework.test import APIClient

    from lending import selectors

    call_command("migrate", verbosity=0)
    started = time.monotonic()
    patrons = load(url, loans=args.loans, patrons=args.patrons, heavy=args.heavy)
    print(f"loaded {args.loans:,} loans for {args.patrons:,} patrons in {time.monotonic() - started:.1f} s")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE lending_loan")  # as autovacuum would: sets the visibility map
    client = APIClient()
    for patron in patrons:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM lending_loan WHERE user_email = %s", [patron])
            print(f"\n######## {patron}: {cursor.fetchone()[0]} loans\n")
            print("== the total: SELECT COUNT(*) ... WHERE user_email = %s")
            cursor.execute(
                "EXPLAIN (ANALYZE, BUFFERS) SELECT COUNT(*) FROM lending_loan WHERE user_email = %s", [patron]
            )
            print("\n".join(row[0] for row in cursor.fetchall()), "\n")

        page = selectors.loans(user_email=patron)[:50]
        print("== the first page: the ORM's query for selectors.loans(user_email=...)[:50]")
        print(page.explain(analyze=True, buffers=True), "\n")

        timings = []
        for _ in range(50):
            started = time.perf_counter()
            response = client.get("/loans/", {"user_email": patron})
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.content
        timings.sort()
        print(
            f"GET /loans/?user_email={patron} over {args.loans:,} loans, 50 calls in-process: "
            f"median {statistics.median(timings):.2f} ms, p95 {timings[int(len(timings) * 0.95) - 1]:.2f} ms"
        )
    return 0


def load(url: str, *, loans: int, patrons: int, heavy: int) -> list[str]:
    """COPY the loans in; about 1 in 20 is still open; the first `heavy` ones belong to one reader.
    Returns a patron with a typical history and the heavy reader."""
    rng = random.Random(42)
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        columns = "user_email, book_id, book_title, date_borrowed, date_due, date_returned, status, renewals"
        with cursor.copy(f"COPY lending_loan ({columns}) FROM STDIN") as copy:
            for n in range(loans):
                email = "heavy.reader@example.com" if n < heavy else f"patron{rng.randrange(patrons)}@example.com"
                borrowed = now - timedelta(days=rng.uniform(0, 3650))
                due = borrowed + timedelta(days=60)
                if n % 20 == 0:
                    # Open: a book id of its own keeps one open loan per patron and book.
                    copy.write_row(
                        (email, 1_000_000 + n, "", borrowed, due, None, "OVERDUE" if due < now else "ACTIVE", 0)
                    )
                else:
                    returned = borrowed + timedelta(days=rng.uniform(1, 60))
                    copy.write_row((email, rng.randrange(1, 50_000), "", borrowed, due, returned, "RETURNED", 0))
        conn.commit()
    return [f"patron{patrons // 2}@example.com", "heavy.reader@example.com"]


if __name__ == "__main__":
    sys.exit(main())
