"""Child processes of a tool: a free port, and managed processes that are started in a session of their own
(so a signal to the group reaches every worker), waited for until they answer, and stopped cleanly."""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tools.harness import ROOT

PYTHON = sys.executable
HOST = "127.0.0.1"
# Others run the service there (`make run`'s defaults, 8007 its Fees peer): never hand them out.
RESERVED_PORTS = range(8000, 8008)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now, below the kernel's ephemeral range and outside
    `make run`'s default ports.

    Below the ephemeral range because a client polling a port in that range before its server listens
    can be handed that very port as its own source port and connect to itself (TCP simultaneous open):
    it then reads its own request back, and holds the port the server is about to bind."""
    low, _ = _ephemeral_range()
    candidates = [port for port in range(10000, max(10001, low)) if port not in RESERVED_PORTS]
    for port in random.sample(candidates, min(len(candidates), 200)):
        with socket.socket() as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port below the ephemeral range")


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports (as `free_port` chooses them)."""
    for _ in range(200):
        base = free_port()
        if all(_bindable(base + n) for n in range(1, count)) and base + count not in RESERVED_PORTS:
            return base
    raise RuntimeError(f"no {count} consecutive free TCP ports")


def _bindable(port: int) -> bool:
    """Nothing listens there (connections left in TIME_WAIT do not count: servers bind with SO_REUSEADDR)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
        return True


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def answers(url: str, *, ok_only: bool = False) -> bool:
    """True when `url` gives an HTTP answer (with `ok_only`, a 200)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return not ok_only or answer.status == 200
    except urllib.error.HTTPError:
        return not ok_only  # an HTTP answer, whatever its status: the process serves
    except (OSError, ValueError, http.client.HTTPException):
        return False  # nothing listens yet, or no HTTP there


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def wait_http(url: str, timeout: float = 60.0) -> None:
    """Wait until `url` answers 200; RuntimeError after `timeout` seconds."""
    if not wait_until(lambda: answers(url, ok_only=True), timeout, 0.2):
        raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s")


@dataclass
class Managed:
    """A child process in its own session (SIGKILL to the group takes its workers down with it) that can be
    killed and started again with the same command. Its output goes to `<log_dir>/<name>.log`, or without a
    log_dir to this process's own stdout and stderr."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_dir: Path | None = None
    ready_url: str | None = None
    preexec_fn: Callable[[], None] | None = None
    process: subprocess.Popen | None = None
    kills: int = 0

    def start(self) -> subprocess.Popen:
        if self.log_dir is None:
            self.process = self._popen(None, None)
        else:
            with open(self.log_dir / f"{self.name}.log", "ab") as log:  # the child keeps its own descriptor
                self.process = self._popen(log, subprocess.STDOUT)
        return self.process

    def _popen(self, stdout, stderr) -> subprocess.Popen:
        return subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            preexec_fn=self.preexec_fn,
        )

    def running_process(self) -> subprocess.Popen | None:
        """The child while it runs; None before its start and after its end."""
        if self.process is not None and self.process.poll() is None:
            return self.process
        return None

    @property
    def running(self) -> bool:
        return self.running_process() is not None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.process.pid

    def wait_ready(self, timeout: float = 60) -> None:
        """Until `ready_url` answers 200; RuntimeError if the process exits first or it takes too long."""
        if not self.ready_url:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_dir}")
            if answers(self.ready_url, ok_only=True):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout} s; see {self.log_dir}")

    def wait(self, timeout: float) -> int:
        """The exit status, once the process ended (TimeoutExpired after `timeout` seconds)."""
        if self.process is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.process.wait(timeout)

    def kill(self) -> None:
        if process := self.running_process():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def stop(self, grace: float = 15) -> None:
        """SIGTERM to the group, then SIGKILL to whatever is left of it after `grace` seconds."""
        if process := self.running_process():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class ProcessGroup:
    """The managed processes of one run, by name; `stop_all` stops them in the reverse order of their start."""

    log_dir: Path | None = None
    children: dict[str, Managed] = field(default_factory=dict)

    def start(self, name: str, command: list[str], env: dict[str, str], ready_url: str | None = None) -> Managed:
        managed = Managed(name, command, env, self.log_dir, ready_url)
        self.children[name] = managed
        managed.start()
        return managed

    def pid(self, name: str) -> int:
        return self.children[name].pid

    def stop(self, name: str) -> None:
        managed = self.children.pop(name, None)
        if managed is not None:
            managed.stop()

    def stop_all(self) -> None:
        for name in reversed(list(self.children)):
            self.stop(name)


def manage(*args: str) -> list[str]:
    """The command line of `manage.py <args>` with this interpreter."""
    return [PYTHON, "manage.py", *args]


def run_manage(*args: str, env: dict[str, str]) -> None:
    """`manage.py <args>` to its end, quietly; CalledProcessError when it fails."""
    subprocess.run(manage(*args), cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def output_of(*args: str, env: dict[str, str]) -> str:
    """The standard output of `python <args>` run to its end in the project's root; CalledProcessError on failure."""
    return subprocess.run([PYTHON, *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
