"""The throwaway PostgreSQL that `make test` starts on a machine with no server of its own
(config/test_database.py): it serves real connections, and it is stopped and removed when the test
run's process exits, leaving nothing behind."""

import json
import socket
import subprocess
import sys
from pathlib import Path

from config import test_database
from tools.harness import ROOT

START_QUERY_AND_EXIT = """
import json, psycopg, tempfile
from config import test_database
port = test_database.start_throwaway_server()
with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
    version = conn.execute("SHOW server_version").fetchone()[0]
    data = conn.execute("SHOW data_directory").fetchone()[0]
    fsync = conn.execute("SHOW fsync").fetchone()[0]
print(json.dumps({"port": port, "version": version, "data": data, "fsync": fsync}))
"""


def answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def test_the_throwaway_server_serves_queries_then_leaves_nothing_behind():
    done = subprocess.run(
        [sys.executable, "-c", START_QUERY_AND_EXIT], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    server = json.loads(done.stdout.strip().splitlines()[-1])
    assert server["version"].startswith("18.")
    assert server["fsync"] == "off"  # the speed settings reached the server
    assert not answers(server["port"]), "the server outlived the process that started it"
    assert not Path(server["data"]).exists(), "the data directory was left behind"


def test_a_database_url_that_is_set_wins(monkeypatch):
    monkeypatch.setattr(test_database, "_description", test_database.description())  # restored afterwards
    monkeypatch.setenv("DATABASE_URL", "postgres://tester:secret@db.example:5432/lending")
    assert test_database.choose() == "DATABASE_URL (postgres://tester:***@db.example:5432/lending)"
