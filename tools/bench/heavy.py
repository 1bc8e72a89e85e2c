"""The heavy borrower (issue 12): lend, renew and return for a patron holding HEAVY_LOANS open loans
against the same for a patron holding none, alternated request by request on one connection each so
both see the same machine. Latency must not grow with a patron's loans (target: within 1.2x).

The heavy patron's loans are written beforehand by COPY (tools.bench.data); the run raises the open-loan
limit (LOAN_MAX_ACTIVE_PER_PATRON) so such a patron may borrow at all.
"""

from __future__ import annotations

import http.client
import json
import statistics
import time
from datetime import UTC, datetime, timedelta

from tools.bench import data

HEAVY_LOANS = 400
OPERATIONS = (("lend", "/lendBook/", 201), ("renew", "/renewBook/", 200), ("return", "/returnBook/", 200))


def preload(dsn: str, patron: str, first_book: int, count: int = HEAVY_LOANS) -> None:
    """`count` open, not yet due loans of `patron` on books first_book.. (with their stock rows)."""
    now = datetime.now(UTC)
    borrowed, due = now - timedelta(days=1), now + timedelta(days=59)
    data.copy_loans(
        dsn, lambda i: data.loan_row(patron, first_book + i, borrowed, due, None, "ACTIVE", f"Held {i}"), count
    )
    data.copy_rows(
        dsn,
        f"lending_bookstock {data.STOCK_COLUMNS}",
        lambda i: f"{first_book + i}\tHeld {i}\t1\t1\t{borrowed.isoformat()}\n",
        count,
    )


class Caller:
    """One keep-alive connection; each call's latency in milliseconds."""

    def __init__(self, host: str, port: int, auth: str) -> None:
        self.conn = http.client.HTTPConnection(host, port, timeout=10)
        self.headers = {"Content-Type": "application/json", **({"Authorization": auth} if auth else {})}

    def call(self, path: str, body: dict, expected: int) -> float:
        started = time.perf_counter()
        self.conn.request("POST", path, json.dumps(body), self.headers)
        answer = self.conn.getresponse()
        content = answer.read()
        elapsed = 1000 * (time.perf_counter() - started)
        if answer.status != expected:
            raise RuntimeError(f"{path} answered {answer.status}: {content[:300]!r}")
        return elapsed


def run(host: str, port: int, auth: str, patrons: dict[str, str], first_book: int, rounds: int) -> dict:
    """`patrons`: {"heavy": email, "none": email}. Each round lends one fresh book to each patron,
    renews it and returns it; returns median and p90 per operation and patron, and the ratios."""
    callers = {kind: Caller(host, port, auth) for kind in patrons}
    times: dict[str, dict[str, list[float]]] = {kind: {op: [] for op, _, _ in OPERATIONS} for kind in patrons}
    for index in range(rounds):
        for offset, (kind, email) in enumerate(patrons.items()):
            body = {"user_email": email, "book_id": first_book + 2 * index + offset}
            for op, path, expected in OPERATIONS:
                times[kind][op].append(callers[kind].call(path, body, expected))
    summary: dict = {"rounds": rounds, "open_loans_of_heavy": HEAVY_LOANS}
    for kind, ops in times.items():
        summary[kind] = {
            op: {"p50_ms": round(statistics.median(v), 2), "p90_ms": round(statistics.quantiles(v, n=10)[-1], 2)}
            for op, v in ops.items()
        }
    summary["ratio_p50"] = {
        op: round(summary["heavy"][op]["p50_ms"] / summary["none"][op]["p50_ms"], 2) for op, _, _ in OPERATIONS
    }
    return summary
