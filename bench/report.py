"""Turns a benchmark run's figures into `latest.json`, `latest.md` and `latest.png` (matplotlib)."""

from __future__ import annotations

import json
from pathlib import Path

LABELS = {
    "ceiling": "ceiling: bare Django view",
    "lend": "lend (fresh book and patron)",
    "return": "return",
    "cycle": "lend+return cycle",
    "expired": "getExpiredBooks (100 overdue)",
    "loans": "patron's loans",
    "calm_lend": "side by side: lend",
    "calm_return": "side by side: return",
    "calm_live": "side by side: /health/live/",
    "hang_lend": "Book peer hung: lend (503 expected)",
    "hang_return": "Book peer hung: return",
    "hang_live": "Book peer hung: /health/live/",
    "expired_1m": "getExpiredBooks ?limit=100, 1M loans",
    "expired_1m_1conn": "getExpiredBooks ?limit=100, 1M, 1 conn",
    "loans_1m": "patron's loans, 1M loans",
    "loans_1m_1conn": "patron's loans, 1M, 1 conn",
    "ceiling_end": "ceiling again, at the end",
}


def ceiling(results: dict) -> float | None:
    """The mean of the ceiling measured at the start and at the end of the run."""
    found = [results["scenarios"][k]["rps"] for k in ("ceiling", "ceiling_end") if k in results["scenarios"]]
    return sum(found) / len(found) if found else None


def targets(results: dict) -> list[dict]:
    s, top = results["scenarios"], ceiling(results)
    checks = []

    def check(name: str, what: str, value, ok: bool) -> None:
        checks.append({"scenario": name, "target": what, "value": value, "met": bool(ok)})

    if top and "lend" in s:
        lend = s["lend"]
        check("lend", ">= 20 % of the ceiling", f"{lend['rps'] / top:.1%}", lend["rps"] / top >= 0.20)
        check("lend", "p99 <= 100 ms", f"{lend['p99_ms']} ms", lend["p99_ms"] <= 100)
        check("lend", "zero errors", lend["errors"], lend["errors"] == 0)
        drain = lend.get("outbox_drain_s")
        check(
            "lend",
            "relay backlog drained within 5 s",
            f"{lend.get('outbox_backlog_at_end')} messages, {drain} s",
            drain is not None and drain <= 5,
        )
    if top and "return" in s:
        check("return", ">= 30 % of the ceiling", f"{s['return']['rps'] / top:.1%}", s["return"]["rps"] / top >= 0.30)
        check("return", "zero errors", s["return"]["errors"], s["return"]["errors"] == 0)
    if top and "cycle" in s:
        ratio = s["cycle"]["cycles_per_s"] / top
        check("cycle", ">= 10 % of the ceiling (cycles/s)", f"{ratio:.1%}", ratio >= 0.10)
    for name in ("expired_1m_1conn", "expired_1m"):
        if name in s:
            check(name, "p50 <= 15 ms", f"{s[name]['p50_ms']} ms", s[name]["p50_ms"] <= 15)
    for name in ("hang_live", "hang_return"):
        if name in s:
            check(
                name,
                "p99 <= 50 ms, no errors",
                f"p99 {s[name]['p99_ms']} ms, max {s[name]['max_ms']} ms, errors {s[name]['errors']}",
                s[name]["p99_ms"] <= 50 and s[name]["errors"] == 0,
            )
    return checks


def rows(results: dict) -> list[dict]:
    top = ceiling(results)
    found = []
    for name, r in results["scenarios"].items():
        rate = r["cycles_per_s"] if name == "cycle" else r["rps"]
        found.append(
            {
                "scenario": name,
                "label": LABELS.get(name, name),
                "connections": r["connections"],
                "rate": rate,
                "unit": "cycles/s" if name == "cycle" else "req/s",
                "ratio": rate / top if top else None,
                "p50_ms": r["p50_ms"],
                "p99_ms": r["p99_ms"],
                "errors": r["errors"],
            }
        )
    return found


def table(results: dict) -> str:
    lines = [
        "| scenario | conns | rate | ratio to ceiling | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows(results):
        ratio = f"{row['ratio']:.1%}" if row["ratio"] is not None else "–"
        lines.append(
            f"| {row['label']} | {row['connections']} | {row['rate']:,.0f} {row['unit']} | {ratio} | "
            f"{row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['errors']} |"
        )
    return "\n".join(lines)


def markdown(results: dict) -> str:
    s, top = results["scenarios"], ceiling(results)
    out = [
        "# Benchmark results",
        "",
        f"Run started {results['started']} on {results['cpus']} CPUs (load average at start "
        f"{', '.join(f'{x:.2f}' for x in results['load_average_start'])}; at the end "
        f"{', '.join(f'{x:.2f}' for x in results.get('load_average_end', ()))}). "
        f"wrk, {results['settings']['connections']} connections, {results['settings']['duration_s']:.0f} s per "
        f"scenario after a {results['settings']['warmup_s']:.0f} s warm-up; gunicorn workers "
        f"{results['settings']['gunicorn_workers']}, threads {results['settings']['gunicorn_threads']}.",
        "",
        f"Ceiling (mean of start and end): {top:,.0f} req/s." if top else "",
        "",
        table(results),
        "",
        "## Targets",
        "",
        "| scenario | target | value | met |",
        "|---|---|---|---|",
    ]
    for t in targets(results):
        out.append(f"| {t['scenario']} | {t['target']} | {t['value']} | {'yes' if t['met'] else '**no**'} |")
    if "lend" in s:
        out += [
            "",
            "## Relay",
            "",
            f"Outbox backlog when the lend load stopped: {s['lend'].get('outbox_backlog_at_end')} messages; "
            f"drained {s['lend'].get('outbox_drain_s')} s later. Outbox at that point: {s['lend'].get('outbox')}.",
        ]
    if "volume" in results:
        v = results["volume"]
        out += [
            "",
            "## Volume",
            "",
            f"{v['loans']:,} loans ({v['overdue']:,} overdue, {v['open_not_due']:,} open and not yet due, the "
            f"rest returned) over {v['patrons']:,} patrons, loaded by COPY in {v['seconds']} s.",
        ]
    for name, plan in results.get("plans", {}).items():
        out += ["", f"### EXPLAIN (ANALYZE, BUFFERS): {name}", "", "```", plan, "```"]
    return "\n".join(out) + "\n"


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = [r for r in rows(results) if r["ratio"] is not None]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6))
    labels = [r["label"] for r in found]
    left.barh(labels, [r["ratio"] * 100 for r in found], color="#4c72b0")
    for y, target in (("lend (fresh book and patron)", 20), ("return", 30), ("lend+return cycle", 10)):
        if y in labels:
            i = labels.index(y)
            left.plot([target, target], [i - 0.4, i + 0.4], color="#c44e52", linewidth=2)
    left.set_xlabel("% of the ceiling's requests/s (red: target)")
    left.invert_yaxis()
    right.barh(labels, [r["p99_ms"] for r in found], color="#dd8452", label="p99")
    right.barh(labels, [r["p50_ms"] for r in found], color="#55a868", label="p50")
    right.set_xscale("log")
    right.set_xlabel("latency, ms (log scale)")
    right.set_yticklabels([])
    right.invert_yaxis()
    right.legend()
    fig.suptitle("Lending service under wrk load (ratios to the same run's ceiling)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(results: dict, out: Path) -> list[Path]:
    results = {**results, "ceiling_rps": ceiling(results), "targets": targets(results), "rows": rows(results)}
    files = [out / "latest.json", out / "latest.md", out / "latest.png"]
    files[0].write_text(json.dumps(results, indent=2))
    files[1].write_text(markdown(results))
    chart(results, files[2])
    return files
