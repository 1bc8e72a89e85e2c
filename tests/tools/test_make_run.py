"""`make run` as a newcomer meets it (tools/scripts/run_local.py as a real process tree, on free ports, SQLite):
the README's examples give their documented answers against it, /metrics is one registry across
workers, every line is JSON under LOG_FORMAT=json, the banner comes only once everything answers,
startup failures are one line, and SIGINT / SIGTERM / SIGHUP free every port, every time."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.processes import ROOT, wait_until
from tools.harness.processes import free_ports

RUNNER = ROOT / "tools" / "scripts" / "run_local.py"
WALKTHROUGH = ROOT / "tools" / "scripts" / "readme_walkthrough.py"
# Enough starts per signal to meet the shutdown race of a doubly signalled gunicorn worker; more with
# MAKE_RUN_SIGNAL_REPEATS=20.
REPEATS = int(os.environ.get("MAKE_RUN_SIGNAL_REPEATS", "3"))


def port_free(port: int) -> bool:
    """Free for a server: nothing listens (connections left in TIME_WAIT do not count, as servers bind
    with SO_REUSEADDR)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Stack:
    def __init__(self, tmp: Path, **env: str) -> None:
        self.port = free_ports(1)
        # The three peers, the relay's, the scheduler's and the SIP2 gateway's metrics, then the Fees peer.
        self.peers_port = free_ports(7)
        self.sip_port = free_ports(1)
        self.marker = uuid.uuid4().hex
        self.output = tmp / f"make-run-{self.marker}.log"
        self.env = {
            key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "DJANGO_", "LOG_"))
        }
        self.env.update(
            DATABASE_NAME=str(tmp / "db.sqlite3"), MAKE_RUN_TEST_MARKER=self.marker, GUNICORN_WORKERS="2", **env
        )
        self.process: subprocess.Popen | None = None

    @property
    def ports(self) -> list[int]:
        return [self.port, self.sip_port, *(self.peers_port + n for n in range(7))]

    def start(self) -> Stack:
        args = [sys.executable, str(RUNNER), "--port", str(self.port), "--peers-port", str(self.peers_port)]
        args += ["--sip-port", str(self.sip_port)]
        with self.output.open("w") as out:
            # Its own session, like a terminal's foreground job: a signal to its group is what Ctrl-C sends.
            self.process = subprocess.Popen(
                args, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def lines(self) -> list[str]:
        return self.output.read_text(errors="replace").splitlines()

    def wait_ready(self) -> None:
        ready = wait_until(lambda: "make_run_ready" in self.text() or "Lending service running" in self.text(), 90)
        assert ready, self.text()[-3000:]

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def url(self, path: str, port: int | None = None) -> str:
        return f"http://127.0.0.1:{port or self.port}{path}"

    def stop(self, signum: int = signal.SIGINT, *, terminal: bool = True) -> int:
        if self.process.poll() is None:
            if terminal:
                os.killpg(self.process.pid, signum)  # the whole foreground job, as the terminal does
            else:
                self.process.send_signal(signum)
        return self.process.wait(timeout=30)

    def survivors(self) -> list[int]:
        """Processes still carrying this stack's marker in their environment."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if self.marker.encode() in (entry / "environ").read_bytes():
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


@pytest.fixture(scope="module")
def json_stack(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("make-run"), LOG_FORMAT="json").start()
    stack.wait_ready()
    yield stack
    stack.stop()


def test_the_banner_comes_once_every_process_answers(json_stack):
    banner = next(json.loads(line) for line in json_stack.lines() if '"make_run_ready"' in line)
    assert "demo-librarian" in banner["message"]
    assert "kiosk / kiosk-demo-password" in banner["message"]
    assert get(json_stack.url("/health/"))[0] == 200
    assert get(json_stack.url("/getBooks/1", json_stack.peers_port))[0] == 200


def test_the_demo_kiosk_talks_sip2_to_the_gateway(json_stack):
    from tests.sip_gateway.client import SipClient

    with SipClient(json_stack.sip_port) as kiosk:
        assert kiosk.login("kiosk", "kiosk-demo-password").text.startswith("941")
        assert kiosk.ask("9900302.00").field("AO") == "demo"
        alice = kiosk.ask("23000" + " " * 18 + "AOdemo|AA2100000001|AD|")
        assert alice.field("AE") == "alice" and alice.field("BL") == "Y"  # her name, never her email


def walkthrough(stack, *, timeout: int) -> subprocess.CompletedProcess:
    """`make demo` against this stack: the README's examples, in order."""
    return subprocess.run(
        [sys.executable, str(WALKTHROUGH), "--port", str(stack.port), "--peers-port", str(stack.peers_port)],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_readme_examples_give_their_documented_answers(json_stack):
    done = walkthrough(json_stack, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all" in done.stdout and "FAIL" not in done.stdout


def test_the_walkthrough_on_a_used_database_shows_the_answer_and_the_reset(json_stack):
    """`make demo` twice (or after trying things): the first lend meets the loan already there. It
    says what it got and how to start afresh, and prints the ports it was given, not 8000."""
    lend = urllib.request.Request(
        json_stack.url("/lendBook/"),
        data=json.dumps({"user_email": "alice@example.com", "book_id": 2}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with contextlib.suppress(urllib.error.HTTPError):  # 409: lent already, by the walkthrough's own run
        urllib.request.urlopen(lend, timeout=10).close()
    done = walkthrough(json_stack, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "answer: 409" in done.stdout and "already_borrowed" in done.stdout, done.stdout
    assert "rm -f db.sqlite3 && make run" in done.stdout
    assert f"127.0.0.1:{json_stack.port}/lendBook/" in done.stdout and "127.0.0.1:8000" not in done.stdout


def lend_count(metrics: str) -> float:
    match = re.search(r'^lending_loan_operations_total\{operation="lend"\} (\S+)$', metrics, re.M)
    return float(match.group(1)) if match else 0.0


def test_metrics_are_merged_across_workers(json_stack):
    for n in range(6, 12):
        body = json.dumps({"user_email": f"patron{n}@example.com", "book_id": n}).encode()
        request = urllib.request.Request(
            json_stack.url("/lendBook/"), data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201
    counts = {lend_count(get(json_stack.url("/metrics"))[1]) for _ in range(12)}
    assert len(counts) == 1 and counts.pop() >= 6, counts


def test_every_line_is_json_static_files_with_their_path(json_stack):
    assert get(json_stack.url("/static/admin/css/base.css"))[0] == 200
    assert wait_until(lambda: "/static/admin/css/base.css" in json_stack.text(), 10)
    lines = [line for line in json_stack.lines() if line.strip()]
    events = []
    for line in lines:
        assert line.startswith("{"), line
        events.append(json.loads(line))
    static = [e for e in events if e.get("path") == "/static/admin/css/base.css"]
    assert static and all("path" in e for e in static)
    assert any(e.get("logger") == "gunicorn.error" for e in events)


@pytest.mark.parametrize("repeat", range(REPEATS))
@pytest.mark.parametrize(
    ("signum", "terminal"),
    [(signal.SIGINT, True), (signal.SIGHUP, True), (signal.SIGTERM, False)],
    ids=["SIGINT-from-terminal", "SIGHUP-terminal-closed", "SIGTERM"],
)
def test_a_signal_stops_everything_and_frees_every_port(tmp_path_factory, signum, terminal, repeat):
    stack = Stack(tmp_path_factory.mktemp("signals")).start()
    try:
        stack.wait_ready()
        get(stack.url("/health/"))
    finally:
        stack.stop(signum, terminal=terminal)
    assert wait_until(lambda: all(port_free(port) for port in stack.ports), 5), stack.text()[-2000:]
    assert wait_until(lambda: not stack.survivors(), 5), stack.survivors()


def test_a_killed_runner_leaves_nothing_behind(tmp_path):
    """SIGKILL cannot be handled: the children learn of it from the kernel (parent-death signal)."""
    stack = Stack(tmp_path).start()
    try:
        stack.wait_ready()
    finally:
        stack.stop(signal.SIGKILL, terminal=False)
    assert wait_until(lambda: all(port_free(port) for port in stack.ports), 10), stack.text()[-2000:]
    assert wait_until(lambda: not stack.survivors(), 10), stack.survivors()


def single_line_failure(stack: Stack) -> str:
    assert stack.process.wait(timeout=60) == 1
    lines = [line for line in stack.lines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_a_taken_port_is_one_line(tmp_path):
    stack = Stack(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", stack.peers_port + 1))
        taken.listen()
        line = single_line_failure(stack.start())
    assert f"port {stack.peers_port + 1} (user peer) is not free" in line
    assert not stack.survivors()


def test_an_unreachable_database_is_one_line_with_its_cause(tmp_path):
    closed = free_ports(1)
    stack = Stack(tmp_path, DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed}/lending").start()
    line = single_line_failure(stack)
    assert "database migration" in line and ("refused" in line or "failed" in line), line
    assert "Traceback" not in line
