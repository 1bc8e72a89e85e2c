"""`python -m bench.explain`: EXPLAIN (ANALYZE, BUFFERS) of the read endpoints' queries, built by the
service's own selectors, as JSON on stdout. Needs DJANGO_SETTINGS_MODULE and the database env."""

from __future__ import annotations

import json
import sys

import django


def main() -> None:
    django.setup()
    from django.db import connection

    from lending import selectors

    patron = sys.argv[1] if len(sys.argv) > 1 else "vol1@example.com"
    loans = selectors.loans(user_email=patron)
    count_sql, count_params = loans.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) SELECT COUNT(*) FROM ({count_sql}) AS page", count_params)
        count_plan = "\n".join(row[0] for row in cursor.fetchall())
    plans = {
        "getExpiredBooks?limit=100": selectors.overdue_loans()[:101].explain(analyze=True, buffers=True),
        f"loans?user_email={patron} (page)": loans[:50].explain(analyze=True, buffers=True),
        f"loans?user_email={patron} (count)": count_plan,
    }
    json.dump(plans, sys.stdout)


if __name__ == "__main__":
    main()
