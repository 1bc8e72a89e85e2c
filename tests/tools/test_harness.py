"""The tools' shared harness (tools/harness/): a free port, a managed process group that stops with every process
it started, and a scratch PostgreSQL database that is gone after its run."""

from __future__ import annotations

import os
import socket
import sys

import psycopg
import pytest

from tools.harness.database import ScratchDatabase, scalar
from tools.harness.environment import PEERS, peers_command, service_env, wait_for_peers
from tools.harness.processes import RESERVED_PORTS, Managed, ProcessGroup, answers, free_port, wait_until

# A parent that starts a child in its own group, prints the child's pid, then both sleep.
PARENT = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead, only not yet reaped
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_free_port_can_be_bound_and_is_never_one_make_run_uses():
    port = free_port()
    assert port not in RESERVED_PORTS
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_stopping_a_managed_process_stops_its_whole_group(tmp_path):
    group = ProcessGroup(tmp_path)
    parent = group.start("parent", [sys.executable, "-c", PARENT], dict(os.environ))
    log = tmp_path / "parent.log"
    assert wait_until(lambda: log.exists() and log.read_text().strip() != "", timeout=20)
    child = int(log.read_text().split()[0])
    assert alive(parent.pid) and alive(child)
    group.stop_all()
    assert wait_until(lambda: not alive(child), timeout=10)
    assert not parent.running


def test_a_managed_process_that_exits_before_it_answers_says_so(tmp_path):
    failing = Managed("failing", [sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ), tmp_path)
    failing.ready_url = f"http://127.0.0.1:{free_port()}/"
    failing.start()
    with pytest.raises(RuntimeError, match="failing exited with 3"):
        failing.wait_ready(timeout=20)


def test_the_service_environment_points_at_the_database_and_the_peers():
    ports = {"book": 1, "user": 2, "notification": 3, "fees": 4}
    env = service_env("postgres://db/x", ports, LOG_LEVEL="DEBUG")
    assert (env["DATABASE_URL"], env["USER_MANAGEMENT_URL"], env["LOG_LEVEL"]) == (
        "postgres://db/x",
        "http://127.0.0.1:2",
        "DEBUG",
    )
    assert peers_command(ports)[-8:] == [
        *("--book-port", "1", "--user-port", "2", "--notification-port", "3"),
        *("--fees-port", "4"),
    ]
    assert env["FEES_SERVICE_URL"] == "http://127.0.0.1:4"


def test_waiting_for_the_reference_peers_waits_for_each_of_them(tmp_path):
    """The peers listen one after the other, each once its demo data is built: the Book peer answers while a
    User peer with many patrons is still building them. (A heavy-borrower run of `make bench`, which waited
    for the Book peer alone, lent against a User peer not yet listening and got a 503.)"""
    ports = {peer: free_port() for peer in PEERS}
    group = ProcessGroup(tmp_path)
    group.start("peers", peers_command(ports, demo_users=500_000), dict(os.environ))
    try:
        wait_for_peers(ports, timeout=60)
        assert answers(f"http://127.0.0.1:{ports['user']}/users/patron500000@example.com", ok_only=True)
        assert answers(f"http://127.0.0.1:{ports['notification']}/stats", ok_only=True)
    finally:
        group.stop_all()


@pytest.mark.postgres
def test_a_scratch_database_exists_during_its_run_and_not_after():
    with ScratchDatabase(f"lending_harness_{os.getpid()}") as database:
        assert scalar(database.url, "SELECT current_database()") == database.name
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (database.name,)).fetchone()
    assert left == (0,)
