"""wrk, the load generator of `make bench`: one run or several side by side, each driving
tools/bench/wrk/scenario.lua, and its summary line (`BENCH_JSON ...`) read into a result."""

from __future__ import annotations

import json
import subprocess

from tools.harness import ROOT

LUA = ROOT / "tools" / "bench" / "wrk" / "scenario.lua"
WRK_THREADS = 2


def wrk(base_url: str, args: list[str], *, duration: float, connections: int, env: dict[str, str]) -> dict:
    cmd = [
        "wrk",
        f"-t{min(WRK_THREADS, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        base_url,
        "--",
        *args,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    return parse_wrk(done.stdout + done.stderr, connections)


def parse_wrk(output: str, connections: int) -> dict:
    line = next((ln for ln in output.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {output}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    seconds = raw["duration_us"] / 1e6
    errors = sum(raw["errors"].values())
    return {
        "connections": connections,
        "seconds": round(seconds, 2),
        "requests": raw["requests"],
        "rps": round(raw["requests"] / seconds, 1),
        "p50_ms": round(raw["latency_us"]["p50"] / 1000, 2),
        "p90_ms": round(raw["latency_us"]["p90"] / 1000, 2),
        "p99_ms": round(raw["latency_us"]["p99"] / 1000, 2),
        "max_ms": round(raw["latency_us"]["max"] / 1000, 2),
        "errors": errors,
        "error_kinds": {k: v for k, v in raw["errors"].items() if v},
        "cycles": raw["cycles"],
        "cycles_per_s": round(raw["cycles"] / seconds, 1),
    }


TRIO_CONNECTIONS = {"lend": 8, "return": 8, "live": 2}


def trio(
    base: str,
    prefix: str,
    lend_first: int,
    return_first: int,
    per_thread: int,
    duration: float,
    env: dict[str, str],
    scenarios: dict,
) -> None:
    """Three wrk runs at once (one thread each): lends, returns, and the liveness probe."""
    runs = {
        f"{prefix}_lend": ["lend", str(lend_first), str(per_thread)],
        f"{prefix}_return": ["return", str(return_first), str(per_thread)],
        f"{prefix}_live": ["get", "/health/live/"],
    }
    side_by_side(base, runs, duration, env, scenarios)


def side_by_side(base: str, runs: dict[str, list[str]], duration: float, env: dict[str, str], scenarios: dict) -> None:
    """wrk runs at the same time, one thread each; the name's last word gives the connections."""
    running = {}
    for name, wrk_args in runs.items():
        conns = TRIO_CONNECTIONS[name.split("_")[-1].split("@")[0]]
        cmd = [
            "wrk",
            "-t1",
            f"-c{conns}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA),
            base,
            "--",
            *wrk_args,
        ]
        running[name] = (conns, subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env))
    for name, (conns, child) in running.items():
        stdout, _ = child.communicate()
        scenarios[name] = r = parse_wrk(stdout, conns)
        print(
            f"  {name:<22} {r['rps']:>8.1f} req/s  p50 {r['p50_ms']:>7.2f} ms  p99 {r['p99_ms']:>7.2f} ms  "
            f"max {r['max_ms']:>8.2f} ms  errors {r['errors']} {r['error_kinds'] or ''}",
            flush=True,
        )
