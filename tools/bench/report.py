"""Turns a benchmark run's figures into `latest.json`, `latest.md` and `latest.png` (matplotlib)."""

from __future__ import annotations

import json
from pathlib import Path

LABELS = {
    "bare": "bare ceiling: Django view, no middleware",
    "ceiling": "constant view, full middleware",
    "ceiling_all_middleware": "constant view, sessions/auth/messages on every path (before)",
    "ceiling_all_middleware_end": "the same, at the end",
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
    "bare_end": "bare ceiling again, at the end",
    "ceiling_end": "full middleware again, at the end",
    "stall_live": "stalled sockets: /health/live/",
    "stall_lend": "stalled sockets: lend",
    "floor_lend": "the floor: framework-free lend (tools/bench/floor.py)",
    "floor_cycle": "the floor: lend+return cycle",
}
# Issue 12's targets, as shares of the bare ceiling.
LEND_SHARE, RETURN_SHARE, CYCLE_SHARE = 0.075, 0.15, 0.037
# Issues 12 and 22 alike: a lend's p99 at 32 connections (ms), and the relay's drain of the lend's backlog (s).
LEND_P99_MS, DRAIN_S = 100, 5
# ...and the heavy borrower's: each operation within this factor of a patron holding no loan.
HEAVY_RATIO = 1.2
# Issue 22's, against the floor (tools/bench/floor.py) measured in the same run: lends/s and cycles/s at least
# this share of the floor's, and machine time per lend at most this multiple of the floor's.
FLOOR_SHARE, FLOOR_CPU_RATIO = 0.5, 2.5
# Issue 24's, for the SIP2 gateway: kiosk check-out p99 at most this (ms), with zero errors; with the idle
# kiosk sockets held, the API's latency (p50) within this factor of without.
SIP_CHECKOUT_P99_MS, SIP_IDLE_RATIO = 250.0, 1.1
# The floor's scenario for each of the service's it is compared with.
FLOOR_OF = {"lend": "floor_lend", "cycle": "floor_cycle"}
CYCLES = ("cycle", "floor_cycle")  # scenarios whose rate is cycles/s


def server_suffix(name: str) -> str:
    """ "@gthread" for "lend@gthread": runs with `--servers` name each scenario after its server."""
    return name[name.index("@") :] if "@" in name else ""


def suffixes(results: dict) -> list[str]:
    return sorted({server_suffix(name) for name in results["scenarios"]})


def ceiling(results: dict, suffix: str = "") -> float | None:
    """The bare ceiling: the mean of the middleware-free view's rate at the start and at the end.

    Results from before there were two ceilings only have the middleware one (`ceiling`)."""
    s = results["scenarios"]
    for start, end in (("bare", "bare_end"), ("ceiling", "ceiling_end")):
        found = [s[k + suffix]["rps"] for k in (start, end) if k + suffix in s]
        if found:
            return sum(found) / len(found)
    return None


def rate(plain: str, result: dict) -> float:
    """A scenario's rate: cycles/s for a lend+return cycle, requests/s otherwise."""
    return result["cycles_per_s"] if plain in CYCLES else result["rps"]


def total_cpu_ms(result: dict) -> float | None:
    """Machine time per request, every process but the load generator (None when not measured)."""
    return (result.get("cpu_ms_per_request") or {}).get("total (without wrk)")


def floor_rate(results: dict, plain: str) -> float | None:
    """The floor's rate that scenario `plain` is set against: the floor's lend for the service's lend
    ("lend") and for the floor's own ("floor_lend"); likewise for the cycle. None for the others."""
    floor_name = FLOOR_OF.get(plain) or (plain if plain in FLOOR_OF.values() else None)
    found = results["scenarios"].get(floor_name) if floor_name else None
    return rate(floor_name, found) if floor_name and found else None


def median_round(service: str, floor: str, rounds: list[dict]) -> tuple[dict, list[dict]]:
    """Of rounds measuring `floor` and `service` side by side (each a dict of both scenarios' results), the
    round whose share of the floor is the median (the lower one of an even count), and every round's
    rates and share, in order, the median one marked."""
    plain = service.removesuffix(server_suffix(service))
    shares = [rate(plain, pair[service]) / rate(floor, pair[floor]) for pair in rounds]
    median = sorted(range(len(rounds)), key=shares.__getitem__)[(len(rounds) - 1) // 2]
    listed = [
        {
            "round": number,
            "floor": rate(floor, pair[floor]),
            "service": rate(plain, pair[service]),
            "share_of_floor": share,
            "median": number - 1 == median,
        }
        for number, (pair, share) in enumerate(zip(rounds, shares, strict=True), start=1)
    ]
    return rounds[median], listed


def floor_comparison(results: dict) -> list[dict]:
    """The service's lend and cycle of each server against the floor's of the same run: rates, the share
    of the floor's rate, p99s, and machine time per request with its multiple of the floor's."""
    compared = []
    for name, result in results["scenarios"].items():
        plain = name.removesuffix(server_suffix(name))
        floor = results["scenarios"].get(FLOOR_OF.get(plain, ""))
        if floor is None:
            continue
        service_cpu, floor_cpu = total_cpu_ms(result), total_cpu_ms(floor)
        compared.append(
            {
                "scenario": name,
                "unit": "cycles/s" if plain in CYCLES else "req/s",
                "service": rate(plain, result),
                "floor": rate(FLOOR_OF[plain], floor),
                "share_of_floor": rate(plain, result) / rate(FLOOR_OF[plain], floor),
                "service_p99_ms": result["p99_ms"],
                "floor_p99_ms": floor["p99_ms"],
                "service_cpu_ms": service_cpu,
                "floor_cpu_ms": floor_cpu,
                "cpu_multiple_of_floor": round(service_cpu / floor_cpu, 2) if service_cpu and floor_cpu else None,
            }
        )
    return compared


def targets(results: dict) -> list[dict]:
    checks = []
    for suffix in suffixes(results):
        checks += _targets(results["scenarios"], ceiling(results, suffix), suffix)
    for compared in floor_comparison(results):
        share = compared["share_of_floor"]
        checks.append(
            {
                "scenario": compared["scenario"],
                "target": f">= {FLOOR_SHARE:.0%} of the floor's {compared['unit']}",
                "value": f"{share:.1%} ({compared['service']:,.0f} against {compared['floor']:,.0f})",
                "met": share >= FLOOR_SHARE,
            }
        )
        multiple = compared["cpu_multiple_of_floor"]
        if compared["scenario"].startswith("lend") and multiple is not None:
            checks.append(
                {
                    "scenario": compared["scenario"],
                    "target": f"machine time per lend <= {FLOOR_CPU_RATIO}x the floor's",
                    "value": f"{multiple}x ({compared['service_cpu_ms']} against {compared['floor_cpu_ms']} ms)",
                    "met": multiple <= FLOOR_CPU_RATIO,
                }
            )
    heavy = results.get("heavy") or {}
    for op, ratio in heavy.get("ratio_p50", {}).items():
        checks.append(
            {
                "scenario": f"heavy borrower: {op}",
                "target": f"p50 within {HEAVY_RATIO}x of a patron holding none",
                "value": f"{ratio}x ({heavy['heavy'][op]['p50_ms']} vs {heavy['none'][op]['p50_ms']} ms)",
                "met": ratio <= HEAVY_RATIO,
            }
        )
    checks += sip_targets(results.get("sip") or {})
    return checks


def sip_targets(sip: dict) -> list[dict]:
    """Issue 24's targets, from the kiosks at their pace and the idle-socket comparison."""
    checks = []
    paced = sip.get("paced")
    if paced:
        p99 = paced["checkout"]["p99_ms"]
        checks += [
            {
                "scenario": f"SIP2 kiosks: check-out ({paced['connections']} connections)",
                "target": f"p99 <= {SIP_CHECKOUT_P99_MS:.0f} ms",
                "value": f"{p99} ms",
                "met": p99 is not None and p99 <= SIP_CHECKOUT_P99_MS,
            },
            {
                "scenario": f"SIP2 kiosks: check-out + check-in ({paced['connections']} connections)",
                "target": "zero errors",
                "value": str(paced["errors"]),
                "met": paced["errors"] == 0 and paced["pairs"] > 0,
            },
        ]
    idle = sip.get("idle")
    if idle:
        for kind, label in (("ready", "/health/ready/"), ("lend", "lend")):
            figures = idle[kind]
            checks.append(
                {
                    "scenario": f"{idle['idle_sockets']} idle kiosk sockets: {label}",
                    "target": f"p50 within {SIP_IDLE_RATIO}x of none",
                    "value": f"{figures['ratio_p50']}x ({figures['with']['p50_ms']} vs "
                    f"{figures['without']['p50_ms']} ms)",
                    "met": figures["ratio_p50"] is not None and figures["ratio_p50"] <= SIP_IDLE_RATIO,
                }
            )
    return checks


def _targets(all_scenarios: dict, top: float | None, suffix: str) -> list[dict]:  # noqa: C901 (one check after the other)
    s = {name.removesuffix(suffix): r for name, r in all_scenarios.items() if server_suffix(name) == suffix}
    checks = []

    def check(name: str, what: str, value, ok: bool) -> None:
        checks.append({"scenario": name + suffix, "target": what, "value": value, "met": bool(ok)})

    if top and "lend" in s:
        share = s["lend"]["rps"] / top
        check("lend", f">= {LEND_SHARE:.1%} of the bare ceiling", f"{share:.1%}", share >= LEND_SHARE)
    if "lend" in s:  # with or without a ceiling: a run of the floor alone is held to them too
        lend, floor = s["lend"], all_scenarios.get(FLOOR_OF["lend"])
        beside = f" (the floor's {floor['p99_ms']} ms)" if floor else ""
        check(
            "lend",
            f"p99 <= {LEND_P99_MS} ms at {lend['connections']} connections",  # the targets' 32 unless --connections
            f"{lend['p99_ms']} ms{beside}",
            lend["p99_ms"] <= LEND_P99_MS,
        )
        check("lend", "zero errors", lend["errors"], lend["errors"] == 0)
        drain = lend.get("outbox_drain_s")
        check(
            "lend",
            f"relay backlog drained within {DRAIN_S} s",
            f"{lend.get('outbox_backlog_at_end')} messages, {drain} s",
            drain is not None and drain <= DRAIN_S,
        )
    if "cycle" in s:
        check("cycle", "zero errors", s["cycle"]["errors"], s["cycle"]["errors"] == 0)
    if top and "return" in s:
        share = s["return"]["rps"] / top
        check("return", f">= {RETURN_SHARE:.0%} of the bare ceiling", f"{share:.1%}", share >= RETURN_SHARE)
        check("return", "zero errors", s["return"]["errors"], s["return"]["errors"] == 0)
    if top and "cycle" in s:
        ratio = s["cycle"]["cycles_per_s"] / top
        check("cycle", f">= {CYCLE_SHARE:.1%} of the bare ceiling (cycles/s)", f"{ratio:.1%}", ratio >= CYCLE_SHARE)
    for name in ("stall_live", "stall_lend"):
        if name in s:
            r = s[name]
            check(
                name,
                "answers, every one within 1 s, no errors",
                f"{r['requests']} answers, p99 {r['p99_ms']} ms, max {r['max_ms']} ms, errors {r['errors']}",
                r["requests"] > 0 and r["max_ms"] <= 1000 and r["errors"] == 0,
            )
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
    found = []
    for name, r in results["scenarios"].items():
        suffix = server_suffix(name)
        top, plain = ceiling(results, suffix), name.removesuffix(suffix)
        floor = floor_rate(results, plain)
        found.append(
            {
                "scenario": name,
                "label": LABELS.get(plain, plain) + (f" ({suffix[1:]})" if suffix else ""),
                "connections": r["connections"],
                "rate": rate(plain, r),
                "unit": "cycles/s" if plain in CYCLES else "req/s",
                "ratio": rate(plain, r) / top if top else None,
                "ratio_to_floor": rate(plain, r) / floor if floor else None,
                "p50_ms": r["p50_ms"],
                "p99_ms": r["p99_ms"],
                "max_ms": r.get("max_ms", float("nan")),
                "web_cpu_ms": r.get("web_cpu_ms_per_request"),
                "errors": r["errors"],
            }
        )
    return found


def table(results: dict) -> str:
    lines = [
        "| scenario | conns | rate | ratio to bare ceiling | ratio to the floor | p50 ms | p99 ms | max ms | errors "
        "| web CPU ms/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows(results):
        ratio = f"{row['ratio']:.1%}" if row["ratio"] is not None else "–"
        to_floor = f"{row['ratio_to_floor']:.1%}" if row.get("ratio_to_floor") is not None else "–"
        lines.append(
            f"| {row['label']} | {row['connections']} | {row['rate']:,.0f} {row['unit']} | {ratio} | {to_floor} | "
            f"{row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['max_ms']:.1f} | {row['errors']} | "
            f"{row['web_cpu_ms'] if row['web_cpu_ms'] is not None else '–'} |"
        )
    return "\n".join(lines)


def markdown(results: dict) -> str:
    s, top = results["scenarios"], ceiling(results, suffixes(results)[0] if results["scenarios"] else "")
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
        f"Bare ceiling (a Django view without middleware, mean of start and end): {top:,.0f} req/s; every "
        "ratio is to the bare ceiling of the same server."
        if top
        else "",
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
    out += against_the_floor(results)
    out += cpu_budget(results)
    out += heavy_borrower(results)
    out += sip_kiosks(results)
    if results.get("peer_calls"):
        out += ["", f"Peer GET, CPU ms per call of one thread, side by side: {results['peer_calls']}."]
    if results.get("statements"):
        out += [
            "",
            "Write-path statements, CPU ms per call of one thread, side by side (the ORM compiling every call "
            f"against the service's way, `tools.bench.statements`): {results['statements']}.",
        ]
    for server, stall in results.get("stalls", {}).items():
        out += [
            "",
            f"## Stalled clients ({server})",
            "",
            f"{stall['sockets']} sockets held half-sent requests (mid request line, mid headers, mid body, mid "
            f"chunked body, one byte a second) during the `stall_*` scenarios ({stall['refused']} refused at "
            f"connect). The server closed {stall['closed_by_server']} of them, after "
            f"{stall['closed_after_p50_s']} s (median), {stall['closed_after_max_s']} s at most.",
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


def against_the_floor(results: dict) -> list[str]:
    compared = floor_comparison(results)
    if not compared:
        return []
    out = [
        "",
        "## Against the floor",
        "",
        "The floor (tools/bench/floor.py): a framework-free lend under gunicorn with the service's worker settings, "
        "psycopg 3 and urllib3: the two peer GETs, then the book's lock and one statement writing the loan with "
        "its outbox rows (delivered by the same relay), measured in this run under the same load. Machine time: "
        "CPU ms per request of every process but wrk, until the relay drained the outbox.",
        "",
        "| scenario | service | the floor | service / floor | p99 ms, service | p99 ms, the floor "
        "| CPU ms, service | CPU ms, the floor | service / floor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in compared:
        multiple = f"{c['cpu_multiple_of_floor']}x" if c["cpu_multiple_of_floor"] is not None else "–"
        out.append(
            f"| {c['scenario']} | {c['service']:,.0f} {c['unit']} | {c['floor']:,.0f} {c['unit']} | "
            f"{c['share_of_floor']:.1%} | {c['service_p99_ms']} | {c['floor_p99_ms']} | "
            f"{c['service_cpu_ms'] if c['service_cpu_ms'] is not None else '–'} | "
            f"{c['floor_cpu_ms'] if c['floor_cpu_ms'] is not None else '–'} | {multiple} |"
        )
    if results.get("floor_rounds"):
        out += [
            "",
            "Each pair measured in rounds, the floor and the service alternately (which one goes first alternates "
            "too); the table shows the round whose share is the median. Every round's share:",
            "",
        ]
        for name, rounds in results["floor_rounds"].items():
            shares = [
                f"{r['share_of_floor']:.1%}".replace("%", " %") + (" (the median, shown above)" if r["median"] else "")
                for r in rounds
            ]
            out.append(f"- {name}: {', '.join(shares)}")
    return out


def cpu_budget(results: dict) -> list[str]:
    """Machine time per operation by process group, and the web worker's phases from py-spy."""
    s = results["scenarios"]
    measured = [(name, r["cpu_ms_per_request"]) for name, r in s.items() if r.get("cpu_ms_per_request")]
    if not measured:
        return []
    groups = list(measured[0][1])
    out = [
        "",
        "## CPU budget per request (ms of CPU, user+system, by process)",
        "",
        "Read from /proc/<pid>/stat before and after each scenario (writes: until the relay drained the "
        "outbox, so each write's relaying counts); PostgreSQL = the backends serving the bench database.",
        "",
        "| scenario | " + " | ".join(groups) + " |",
        "|---|" + "---:|" * len(groups),
    ]
    for name, ms in measured:
        out.append(f"| {name} | " + " | ".join(str(ms.get(g, "–")) for g in groups) + " |")
    for name, profile in results.get("profiles", {}).items():
        out += [
            "",
            f"### Web worker phases during `{name}` (py-spy, {sum(profile['samples'].values())} samples)",
            "",
            "Share of the samples taken inside a request, and that share of the web CPU per request. "
            f"Flame graph: `{Path(profile['flame_graph']).name}`.",
            "",
            "| phase | share | ms per request |",
            "|---|---:|---:|",
        ]
        for phase, b in profile["budget"].items():
            out.append(f"| {phase} | {b['share']:.1%} | {b['ms'] if b['ms'] is not None else '–'} |")
        if profile.get("relay_top"):
            out += [
                "",
                f"The relay during `{name}` (flame graph `{Path(profile['relay_flame_graph']).name}`), functions of "
                "lending/ on its stacks: "
                + "; ".join(f"`{frame}` {share:.0%}" for frame, share in profile["relay_top"])
                + ".",
            ]
    return out


def heavy_borrower(results: dict) -> list[str]:
    heavy = results.get("heavy")
    if not heavy:
        return []
    out = [
        "",
        f"## Heavy borrower ({heavy['open_loans_of_heavy']} open loans against none, {heavy['rounds']} rounds, "
        "one connection each, alternated)",
        "",
        "| operation | p50 ms, 400 loans | p50 ms, none | ratio | p90 ms, 400 loans | p90 ms, none |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for op, ratio in heavy["ratio_p50"].items():
        h, n = heavy["heavy"][op], heavy["none"][op]
        out.append(f"| {op} | {h['p50_ms']} | {n['p50_ms']} | {ratio}x | {h['p90_ms']} | {n['p90_ms']} |")
    return out


def sip_kiosks(results: dict) -> list[str]:
    sip = results.get("sip")
    if not sip:
        return []
    out = [
        "",
        "## SIP2 kiosks (tools/bench/sip.py)",
        "",
        "| kiosks | pace | messages/s | check-out p50 / p99 / max ms | check-in p50 / p99 / max ms | errors |",
        "|---|---|---:|---|---|---:|",
    ]
    for name in ("paced", "flat"):
        if run := sip.get(name):
            pace = f"a message every {run['interval_s']} s" if run["interval_s"] else "flat out"
            out.append(
                f"| {run['connections']} | {pace} | {run['messages_per_s']} | {_p50_p99_max(run['checkout'])} | "
                f"{_p50_p99_max(run['checkin'])} | {run['errors']} {run['error_kinds'] or ''} |"
            )
    if idle := sip.get("idle"):
        out += [
            "",
            f"{idle['idle_sockets']} idle kiosk sockets (logged in) against none, {idle['rounds']} rounds of "
            f"ABBA blocks of {idle['block_s']} s, {idle['callers']} API callers each alternating `/health/ready/` "
            f"and a lend; {idle['idle_failed_logins']} failed logins, {idle['idle_closed_by_gateway']} sockets "
            f"closed by the gateway, {idle['errors']} API errors.",
            "",
            "| request | p50 ms, none / idle sockets | ratio | p99 ms, none / idle sockets | ratio |",
            "|---|---|---:|---|---:|",
        ]
        for kind, label in (("ready", "/health/ready/"), ("lend", "lend")):
            f = idle[kind]
            out.append(
                f"| {label} | {f['without']['p50_ms']} / {f['with']['p50_ms']} | {f['ratio_p50']}x | "
                f"{f['without']['p99_ms']} / {f['with']['p99_ms']} | {f['ratio_p99']}x |"
            )
    return out


def _p50_p99_max(figures: dict) -> str:
    return f"{figures['p50_ms']} / {figures['p99_ms']} / {figures['max_ms']}"


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = [r for r in rows(results) if r["ratio"] is not None]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6))
    labels = [r["label"] for r in found]
    left.barh(labels, [r["ratio"] * 100 for r in found], color="#4c72b0")
    shares = (
        ("lend (fresh book and patron)", LEND_SHARE),
        ("return", RETURN_SHARE),
        ("lend+return cycle", CYCLE_SHARE),
    )
    for y, share in shares:
        target = share * 100
        if y in labels:
            i = labels.index(y)
            left.plot([target, target], [i - 0.4, i + 0.4], color="#c44e52", linewidth=2)
    left.set_xlabel("% of the bare ceiling's requests/s (red: target)")
    left.invert_yaxis()
    right.barh(labels, [r["p99_ms"] for r in found], color="#dd8452", label="p99")
    right.barh(labels, [r["p50_ms"] for r in found], color="#55a868", label="p50")
    right.set_xscale("log")
    right.set_xlabel("latency, ms (log scale)")
    right.set_yticklabels([])
    right.invert_yaxis()
    right.legend()
    fig.suptitle("Lending service under wrk load (ratios to the same run's bare ceiling)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(results: dict, out: Path) -> list[Path]:
    results = {
        **results,
        "ceiling_rps": ceiling(results),
        "floor": floor_comparison(results),
        "targets": targets(results),
        "rows": rows(results),
    }
    out.mkdir(parents=True, exist_ok=True)  # tools/bench/results/ is not in git: a fresh clone has none
    files = [out / "latest.json", out / "latest.md", out / "latest.png"]
    files[0].write_text(json.dumps(results, indent=2))
    files[1].write_text(markdown(results))
    chart(results, files[2])
    return files
