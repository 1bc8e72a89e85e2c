"""The chaos report: what ran, what happened, the facts checked and the violations; PASS or FAIL."""

from __future__ import annotations

import argparse
import json

from tools.chaos.stats import Stats
from tools.chaos.system import System


def report(args: argparse.Namespace, seed: int, system: System, stats: Stats, facts: dict, load_seconds: float) -> None:
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
    if any(name.startswith("events: ") for name in facts):
        checks.append(
            "every domain event the database records reached a queue bound from the start at least once, "
            "each subject's events in order after reordering by sequence, none the database does not justify "
            "(the relays publish through a proxy that drops, stalls and refuses)"
        )
    lines += [f"checked: {c}" for c in checks]
    lines.append(f"VIOLATIONS: {counts['violations']}")
    lines += [f"  - {v}" for v in stats.violations]
    lines.append(f"logs: {system.log_dir}")
    lines.append("RESULT: " + ("FAIL" if counts["violations"] else "PASS"))
    print("\n".join(lines), flush=True)
