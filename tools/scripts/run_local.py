"""`make run`: the whole service locally — the reference peers, the web server (SQLite by default), the
outbox relay and the scheduled notices — until Ctrl-C, SIGTERM or SIGHUP (the terminal closing).

    tools/scripts/run_local.py [--port 8000] [--peers-port 8001] [--sip-port 6001]
                                               (make run PORT=8080 PEERS_PORT=9001 SIP_PORT=7001)

Before anything starts: every port is checked free, the database migrated, every book's availability
queued for the peers (they forget it on restart), and in debug mode the demo librarian created; any
failure is one line with its cause. The banner comes once every process answers.

Each child runs in its own session (process group), so the terminal's Ctrl-C reaches this runner only,
which then signals each child once, at the leader of its group (gunicorn's master passes it on to its
workers; a worker signalled twice can deadlock in its shutdown). Whatever survives a grace period is
killed with its whole group, so the ports are free when the runner exits.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run as a script (`make run`): the tools are a package at the root

from tools.harness.environment import PEER_READY_PATHS  # noqa: E402
from tools.harness.processes import HOST, PYTHON, Managed, answers  # noqa: E402

READY_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 5.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1

# The processes of `make run`, by name. "{port}" and friends are filled in from the chosen ports.
PROCESSES: dict[str, list[str]] = {
    "peers": [
        *(PYTHON, "-m", "tools.reference_peers", "--demo-books", "100", "--demo-users", "100"),
        *("--book-port", "{book_port}", "--user-port", "{user_port}", "--notification-port", "{notification_port}"),
        *("--fees-port", "{fees_port}"),
    ],
    # The production server and settings file, so local runs behave like a deployment
    # (runserver's short listen queue resets connections under a burst of clients).
    "web": [PYTHON, "-m", "gunicorn", "-c", "docker/gunicorn.conf.py", "--bind", f"{HOST}:{{port}}"],
    "relay": [PYTHON, "manage.py", "relay_outbox", "--metrics-port", "{relay_metrics_port}"],
    "notices": [PYTHON, "manage.py", "send_notices", "--loop", "--metrics-port", "{scheduler_metrics_port}"],
    # The SIP2 gateway for self-check kiosks, calling the web process's API.
    "sip": [
        *(PYTHON, "-m", "sip_gateway", "--host", HOST, "--port", "{sip_port}"),
        *("--api-url", f"http://{HOST}:{{port}}", "--metrics-port", "{sip_metrics_port}"),
    ],
}

# What "answers" means for each process: a URL that gives an HTTP response. A process without one
# answers when it is still running once the others answer.
READY_URLS = {  # templates: {host} and the {<name>_port}s are filled in at start
    "peers": ["http://{host}:{" + f"{peer}_port}}" + path for peer, path in PEER_READY_PATHS.items()],
    "web": ["http://{host}:{port}/health/"],
    "relay": ["http://{host}:{relay_metrics_port}/health/live"],
    "notices": ["http://{host}:{scheduler_metrics_port}/health/live"],
    "sip": ["http://{host}:{sip_metrics_port}/health/live"],
}

BANNER = """
Lending service running (Ctrl-C stops everything):
  API         http://{host}:{port}/lendBook/  /returnBook/  /getExpiredBooks/  /health/  (and /loans/, ...)
  API docs    http://{host}:{port}/api/docs/    Metrics  http://{host}:{port}/metrics
  Relay       http://{host}:{relay_metrics_port}/metrics    Scheduler  http://{host}:{scheduler_metrics_port}/metrics
  Admin       http://{host}:{port}/admin/   {admin_login}
  Book peer   http://{host}:{book_port}/getBooks/1      User peer  http://{host}:{user_port}/users/alice@example.com
  Notices     http://{host}:{notification_port}/notifications    Fees peer  http://{host}:{fees_port}/fees
  SIP2 kiosks {host}:{sip_port}   {kiosk_login}
              Metrics  http://{host}:{sip_metrics_port}/metrics
  Events      {events}
Try:
  curl -X POST http://{host}:{port}/lendBook/ -H 'Content-Type: application/json' \\
       -d '{{"user_email": "alice@example.com", "book_id": 1}}'
"""


class StartupFailed(Exception):
    """One line for the person at the terminal: what failed and why."""


def json_logs() -> bool:
    """LOG_FORMAT as settings.py reads it (json by default when DJANGO_DEBUG is false)."""
    default = "console" if debug_mode(os.environ) else "json"
    return (os.environ.get("LOG_FORMAT") or default).strip().lower() == "json"


def say(message: str, event: str = "make_run", **fields: object) -> None:
    """A line of the runner's own: JSON under LOG_FORMAT=json like every other process, else text.
    A closed terminal (SIGHUP) must not stop the shutdown, so a failed write is ignored."""
    line = json.dumps({"event": event, "message": message.strip(), **fields}) if json_logs() else message
    with contextlib.suppress(OSError):
        print(line, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the service, its peers, the relay and the scheduler.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000), help="the service's port")
    parser.add_argument(
        "--peers-port",
        type=int,
        default=int(os.environ.get("PEERS_PORT") or 8001),
        help="the Book peer's port; the User and Notification peers take the next two, "
        "the relay's, the scheduler's and the SIP2 gateway's /metrics the three after, the Fees peer the next",
    )
    parser.add_argument(
        "--sip-port", type=int, default=int(os.environ.get("SIP_PORT") or 6001), help="the SIP2 gateway's port"
    )
    return parser.parse_args(argv)


def port_names(args: argparse.Namespace) -> dict[str, int]:
    return {
        "port": args.port,
        "book_port": args.peers_port,
        "user_port": args.peers_port + 1,
        "notification_port": args.peers_port + 2,
        # /metrics and /health/live of the relay and the scheduler, after the peers' ports.
        "relay_metrics_port": args.peers_port + 3,
        "scheduler_metrics_port": args.peers_port + 4,
        "sip_port": args.sip_port,
        "sip_metrics_port": args.peers_port + 5,
        # The Fees peer came after the metrics ports: the next one, so no other port moved.
        "fees_port": args.peers_port + 6,
    }


PORT_LABELS = {
    "port": "service",
    "book_port": "book peer",
    "user_port": "user peer",
    "notification_port": "notification peer",
    "relay_metrics_port": "relay metrics",
    "scheduler_metrics_port": "scheduler metrics",
    "sip_port": "SIP2 gateway",
    "sip_metrics_port": "SIP2 gateway metrics",
    "fees_port": "fees peer",
}


def check_ports_free(ports: dict[str, int]) -> None:
    for name, port in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # As the servers bind: a previous run's connections in TIME_WAIT do not make a port taken.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((HOST, port))
            except OSError as error:
                label = PORT_LABELS.get(name, name)
                raise StartupFailed(
                    f"port {port} ({label}) is not free ({error.strerror}); "
                    "choose others: make run PORT=18000 PEERS_PORT=18001"
                ) from None


def cause_of(output: str) -> str:
    """The exception line at the end of a traceback (with the lines that continue its message),
    joined into one line; else the last line of the output."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    for index in range(len(lines) - 1, -1, -1):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Improperly\w*|Failed)\b.*:", lines[index]):
            return " ".join(lines[index:])[:500]
    return lines[-1][:500] if lines else "no output"


def run_step(description: str, args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise StartupFailed(f"{description} failed: {cause_of(done.stderr + done.stdout)}")


def debug_mode(env: Mapping[str, str]) -> bool:
    return env.get("DJANGO_DEBUG", "True").strip().lower() in {"true", "on", "ok", "y", "yes", "1"}


def service_env(ports: dict[str, int], metrics_dir: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "LOG_FORMAT": "json" if json_logs() else "console",  # the peers read it too
        "BOOK_MANAGEMENT_URL": f"http://{HOST}:{ports['book_port']}",
        "USER_MANAGEMENT_URL": f"http://{HOST}:{ports['user_port']}",
        "NOTIFICATION_SERVICE_URL": f"http://{HOST}:{ports['notification_port']}",
        "FEES_SERVICE_URL": f"http://{HOST}:{ports['fees_port']}",
        # A balance above it at the Fees peer blocks borrowing (README, Fines and fees); "" turns it off.
        "FINES_BLOCK_LIMIT": os.environ.get("FINES_BLOCK_LIMIT", "20.00"),
        "GUNICORN_BIND": f"{HOST}:{ports['port']}",
        "GUNICORN_WORKERS": os.environ.get("GUNICORN_WORKERS", "2"),
        "GUNICORN_THREADS": os.environ.get("GUNICORN_THREADS", "8"),
        "GUNICORN_GRACEFUL_TIMEOUT": os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "3"),
        # A fresh directory per run: /metrics merges every worker's samples (one counter, not one per worker).
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        "EVENTS_BROKER_URL": events_broker_url(),
    }


LOCAL_RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/%2F"


def events_broker_url() -> str:
    """EVENTS_BROKER_URL as given (empty turns events off); unset, the local RabbitMQ if it answers."""
    if "EVENTS_BROKER_URL" in os.environ:
        return os.environ["EVENTS_BROKER_URL"]
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=0.5).close()
    except OSError:
        return ""
    return LOCAL_RABBITMQ


def events_line(env: dict[str, str]) -> str:
    url = env.get("EVENTS_BROKER_URL", "")
    if not url:
        return "off (no RabbitMQ on 127.0.0.1:5672; set EVENTS_BROKER_URL to publish domain events)"
    where = url.rsplit("@", 1)[-1]  # never the credentials
    return f"CloudEvents on exchange lending.events at amqp://{where} (bind a queue with '#': see README)"


def start(name: str, ports: dict[str, int], env: dict[str, str]) -> subprocess.Popen:
    command = [part.format(**ports) for part in PROCESSES[name]]
    child_env = env if name == "web" else {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    # Its own session: the terminal's signals do not reach it, the runner signals it once.
    return Managed(name, command, child_env, preexec_fn=terminate_with_the_runner).start()


def terminate_with_the_runner() -> None:
    """In the child before it runs: SIGTERM when the runner dies, even by SIGKILL (Linux's
    PR_SET_PDEATHSIG), so no server is left holding a port without its runner."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Stopping:
    def __init__(self) -> None:
        self.signal: int | None = None
        for signum in STOP_SIGNALS:
            signal.signal(signum, self.handle)

    def handle(self, signum: int, _frame: object) -> None:
        self.signal = self.signal or signum

    def __bool__(self) -> bool:
        return self.signal is not None


def wait_until_ready(children: dict[str, subprocess.Popen], ports: dict, stopping: Stopping) -> None:
    pending = {name: [url.format(host=HOST, **ports) for url in READY_URLS.get(name, [])] for name in children}
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while any(pending.values()) and not stopping:
        exited(children, during="startup")
        if time.monotonic() > deadline:
            waiting = ", ".join(name for name, urls in pending.items() if urls)
            raise StartupFailed(f"{waiting} did not answer within {READY_TIMEOUT_SECONDS:.0f} s")
        pending = {name: [url for url in urls if not answers(url)] for name, urls in pending.items()}
        time.sleep(0.2)
    exited(children, during="startup")


def exited(children: dict[str, subprocess.Popen], during: str) -> None:
    for name, child in children.items():
        if child.poll() is not None:
            raise StartupFailed(f"{name} exited with status {child.returncode} during {during} (its output is above)")


def stop_all(children: dict[str, subprocess.Popen]) -> None:
    """One SIGTERM to each group leader, then SIGKILL to whatever is left of each group."""
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
    for child in children.values():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)  # the leader, and any worker it left behind
        child.wait()


def prepare(env: dict[str, str]) -> str:
    """Migrations, the availability resync and (debug only) the demo librarian; returns the admin hint."""
    run_step("the database migration (is DATABASE_URL reachable?)", ["migrate", "--noinput", "-v", "0"], env)
    run_step("queueing every book's availability", ["resync_availability"], env)
    if not debug_mode(env):
        return "(DJANGO_DEBUG is false: create a staff user with manage.py ensure_staff_user)"
    run_step("creating the demo staff user", ["demo_staff_user"], env)
    run_step("creating the demo kiosk account", ["sip_accounts", "demo"], env)
    from lending.management.commands.demo_staff_user import DEMO_PASSWORD, DEMO_USERNAME

    return f"log in as {DEMO_USERNAME} / {DEMO_PASSWORD} (demo staff user, debug mode only)"


def kiosk_login(env: Mapping[str, str]) -> str:
    """The banner's SIP2 account hint: the demo kiosk in debug mode."""
    if not debug_mode(env):
        return "(create a kiosk account with manage.py sip_accounts create)"
    from sip_gateway.demo import DEMO_INSTITUTION, DEMO_LOGIN, DEMO_PASSWORD

    return f"login {DEMO_LOGIN} / {DEMO_PASSWORD}, institution {DEMO_INSTITUTION} (demo kiosk)"


def main(argv: list[str] | None = None) -> int:
    stopping = Stopping()
    ports = port_names(parse_args(argv))
    metrics_dir = tempfile.mkdtemp(prefix="lending-metrics-")
    env = service_env(ports, metrics_dir)
    children: dict[str, subprocess.Popen] = {}
    exit_code = 0
    try:
        check_ports_free(ports)
        admin_login = prepare(env)
        for name in PROCESSES:
            if not stopping:
                children[name] = start(name, ports, env)
        wait_until_ready(children, ports, stopping)
        if not stopping:
            banner = BANNER.format(
                host=HOST, admin_login=admin_login, kiosk_login=kiosk_login(env), events=events_line(env), **ports
            )
            say(banner, "make_run_ready", **ports)
        while not stopping:
            exited(children, during="the run")
            time.sleep(0.2)
    except StartupFailed as failure:
        say(f"make run: {failure}", "make_run_failed", error=str(failure))
        exit_code = 1
    finally:
        stop_all(children)
        shutil.rmtree(metrics_dir, ignore_errors=True)
    if stopping.signal is not None:
        say(f"make run: stopped on {signal.Signals(stopping.signal).name}", "make_run_stopped")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
