"""A small chaos run (the `make chaos` scenario, shorter): real gunicorn processes, relays, the
scheduler and the reference peers on a fresh PostgreSQL database, under kills and peer faults."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.many_connections  # its gunicorn workers, relays, scheduler and clients: about 30
@pytest.mark.parametrize(
    "faults",
    [
        "",  # any fault on any peer
        "book:hangs",  # the Book peer applies updates 5 s late, after our timeout: the re-checks' case
    ],
)
def test_a_short_chaos_run_finds_no_violation(faults):
    from django.db import connection

    db = connection.settings_dict
    admin_url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/postgres"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.chaos",
            "--duration",
            "15",
            "--clients",
            "6",
            "--kill-interval",
            "2",
            "--fault-interval",
            "3",
            "--books",
            "30",
            "--min-kills",
            "4",
            "--admin-url",
            admin_url,
            *(["--faults", faults] if faults else []),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = result.stdout[-6000:] + result.stderr[-3000:]
    assert result.returncode == 0, report
    assert "RESULT: PASS" in result.stdout and "VIOLATIONS: 0" in result.stdout, report
