"""The CPU budget of one operation (issue 12 item 2).

By process: user+system CPU time (/proc/<pid>/stat) of each process group of the run, read before and
after a scenario — the web server (master and workers), the outbox relay, the peers, PostgreSQL's
backends serving the bench database — divided by the operations the scenario completed. Unlike
requests/s this hardly moves when other work shares the machine.

By phase in the web worker: py-spy's raw (collapsed) stacks of the workers, each stack put in one
phase by the frames it holds (peer reads, SQL, serialisation, log and metrics, service code,
framework and middleware), scaled to the web CPU per operation. The stacks also become a flame graph
(SVG, matplotlib) under tools/bench/results/.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from contextlib import suppress
from pathlib import Path

import psycopg

TICKS = os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    done = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in done.stdout.split()]


def tree(pid: int) -> list[int]:
    """The process and its descendants (the peers and the relay may fork helpers)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children(current))
    return found


def cpu_of(pids: list[int]) -> float:
    """Seconds of user+system CPU of these processes so far (a process gone meanwhile counts 0)."""
    total = 0
    for pid in pids:
        with suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / TICKS


def postgres_backends(dsn: str) -> list[int]:
    """PostgreSQL's processes serving the bench database (client backends); the server's shared
    background processes (WAL writer, checkpointer) also work for other databases on this machine and
    are left out."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [pid for (pid,) in rows]


class ProcessClock:
    """CPU seconds per process group between `start()` and `stop()`. Groups are read by their root
    pid each time (workers and backends may come and go); PostgreSQL backends are listed at both ends
    and a backend counts from the first reading that saw it."""

    def __init__(self, roots: dict[str, int], dsn: str) -> None:
        self.roots, self.dsn = roots, dsn
        self.before: dict[str, dict[int, float]] = {}

    def _read(self) -> dict[str, dict[int, float]]:
        groups = {name: tree(pid) for name, pid in self.roots.items()}
        groups["postgres"] = postgres_backends(self.dsn)
        groups["load generator (wrk)"] = []
        return {name: {pid: cpu_of([pid]) for pid in pids} for name, pids in groups.items()}

    def start(self) -> None:
        self.before = self._read()
        self.wrk_before = os.times().children_user + os.times().children_system

    def stop(self) -> dict[str, float]:
        after = self._read()
        spent = {
            name: sum(cpu - self.before.get(name, {}).get(pid, 0.0) for pid, cpu in pids.items())
            for name, pids in after.items()
        }
        # wrk runs as our child and has exited: its CPU is in our children's times.
        spent["load generator (wrk)"] = os.times().children_user + os.times().children_system - self.wrk_before
        return spent


def per_operation(spent: dict[str, float], operations: int) -> dict[str, float]:
    """Milliseconds of CPU per operation, by process group, plus the total without the load generator."""
    if not operations:
        return {}
    ms = {name: round(1000 * seconds / operations, 3) for name, seconds in spent.items()}
    ms["total (without wrk)"] = round(sum(v for k, v in ms.items() if not k.startswith("load generator")), 3)
    return ms


# --- Phases of the web worker, from py-spy's raw output -----------------------------------------------

# Frames read `function (module/path.py:line)`, the path relative to its sys.path entry. A stack that
# reaches a peer or the database anywhere is that phase (its other frames wait for it); otherwise the
# frame nearest the leaf that belongs to a phase names it (the log and metrics middlewares wrap every
# request, so only their own leaves count as theirs; a frame of the framework nearer the leaf names it).
WAITING_PHASES: list[tuple[str, re.Pattern]] = [
    ("peer reads (HTTP client)", re.compile(r"[(/](lending/clients/|requests/|urllib3/|http/client\.py)")),
    ("SQL (Django ORM, psycopg)", re.compile(r"[(/](django/db/|psycopg/|psycopg_pool/|lending/locks\.py|lending/db/)")),
]
LEAF_PHASES: list[tuple[str, re.Pattern]] = [
    (
        "serialisation (parse, render, represent)",
        re.compile(
            r"[(/](rest_framework/(serializers|renderers|parsers|fields|utils/)|lending/representation\.py"
            r"|lending/api/parsers\.py|lending/strict_json\.py|json/|orjson)"
        ),
    ),
    (
        "log line and metrics",
        re.compile(r"[(/](structlog/|prometheus_client/|logging/|lending/observability/)"),
    ),
    ("service code (lending/, not the API layer)", re.compile(r"\(lending/(?!api/)")),
]
PHASES = WAITING_PHASES + LEAF_PHASES
FRAMEWORK_FRAME = re.compile(r"\((django|rest_framework|gunicorn|asgiref|whitenoise|axes|lending/api|config)/")
FRAMEWORK = "framework and middleware (Django, DRF, gunicorn)"
OUTSIDE = "outside a request (gunicorn loop, idle)"
REQUEST_FRAME = re.compile(r"django/core/handlers/")


def read_raw(paths: list[Path]) -> Counter:
    """py-spy `--format raw`: one `frame;frame;...;leaf count` line per distinct stack."""
    stacks: Counter = Counter()
    for path in paths:
        with suppress(OSError):
            for line in path.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                if stack and count.isdigit():
                    stacks[stack] += int(count)
    return stacks


def phase_of(stack: str) -> str:
    if not REQUEST_FRAME.search(stack):
        return OUTSIDE
    for phase, pattern in WAITING_PHASES:
        if pattern.search(stack):
            return phase
    for frame in reversed(stack.split(";")):  # the first frame from the leaf that is not the standard library's
        for phase, pattern in LEAF_PHASES:
            if pattern.search(frame):
                return phase
        if FRAMEWORK_FRAME.search(frame):
            return FRAMEWORK
    return FRAMEWORK


def phases(stacks: Counter) -> dict[str, int]:
    counted: Counter = Counter()
    for stack, count in stacks.items():
        counted[phase_of(stack)] += count
    return dict(counted.most_common())


def phase_budget(samples: dict[str, int], web_cpu_ms: float | None) -> dict[str, dict[str, float | None]]:
    """Each phase's share of the request samples, and that share of the web CPU per operation."""
    inside = {k: v for k, v in samples.items() if k != OUTSIDE}
    total = sum(inside.values())
    if not total:
        return {}
    return {
        phase: {
            "share": round(count / total, 3),
            "ms": round(count / total * web_cpu_ms, 3) if web_cpu_ms else None,
        }
        for phase, count in inside.items()
    }


def top_functions(stacks: Counter, count: int = 8) -> list[tuple[str, float]]:
    """The functions of lending/ most often on the stack (inclusive share of the samples)."""
    total = sum(stacks.values()) or 1
    seen: Counter = Counter()
    for stack, samples in stacks.items():
        for frame in {short(f) for f in stack.split(";") if "(lending/" in f}:
            seen[frame] += samples
    return [(frame, round(n / total, 3)) for frame, n in seen.most_common(count)]


# --- The flame graph -----------------------------------------------------------------------------------


def short(frame: str) -> str:
    """`get_book (lending/clients/books.py:27)` -> `get_book (books.py:27)`."""
    return re.sub(r"\(([^()]*/)?([^/()]+)\)$", r"(\2)", frame)


def flame_graph(stacks: Counter, out: Path, title: str, min_share: float = 0.002) -> Path:
    """An icicle flame graph (root at the top) of the collapsed stacks, as SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root: dict = {"n": 0, "kids": {}}
    for stack, count in stacks.items():
        node = root
        node["n"] += count
        for frame in stack.split(";"):
            node = node["kids"].setdefault(frame, {"n": 0, "kids": {}})
            node["n"] += count
    total = root["n"] or 1
    depth_seen = [0]
    fig, ax = plt.subplots(figsize=(16, 10))

    def draw(node: dict, x: float, depth: int) -> None:
        for frame, kid in sorted(node["kids"].items(), key=lambda kv: -kv[1]["n"]):
            width = kid["n"] / total
            if width >= min_share:
                depth_seen[0] = max(depth_seen[0], depth)
                colour = _colour(frame)
                ax.add_patch(plt.Rectangle((x, -depth - 1), width, 0.95, color=colour, linewidth=0))
                if width > 0.04:
                    ax.text(x + 0.002, -depth - 0.55, short(frame)[: int(width * 160)], fontsize=5, va="center")
                draw(kid, x, depth + 1)
            x += width

    draw(root, 0.0, 0)
    ax.set_xlim(0, 1)
    ax.set_ylim(-depth_seen[0] - 2, 0)
    ax.axis("off")
    ax.set_title(f"{title} ({total} samples; width = share of samples)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, format="svg")
    plt.close(fig)
    return out


def _colour(frame: str) -> str:
    for (_phase, pattern), colour in zip(PHASES, ("#e07b39", "#3b7dd8", "#8e5cc4", "#999999", "#2ca02c"), strict=True):
        if pattern.search(frame):
            return colour
    return "#f2c14e" if "lending" in frame else "#f5deb3"
