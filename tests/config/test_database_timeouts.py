"""Issue 14 item 4: `statement_timeout` and `lock_timeout` are set on every PostgreSQL session, from
DATABASE_STATEMENT_TIMEOUT_MS / DATABASE_LOCK_TIMEOUT_MS, with longer values for the migrate role."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from tests.processes import ROOT, database_url

pytestmark = pytest.mark.postgres


def _session_timeouts(**env: str) -> list[str]:
    """`SHOW` both settings in a fresh process configured by `env`."""
    code = (
        "from django.db import connection\n"
        "with connection.cursor() as c:\n"
        "    c.execute('SHOW statement_timeout'); print(c.fetchone()[0])\n"
        "    c.execute('SHOW lock_timeout'); print(c.fetchone()[0])\n"
    )
    proc = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": database_url(), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()[-2:]


@pytest.mark.django_db
def test_request_sessions_have_both_limits_by_default():
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "15s"
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "5s"


@pytest.mark.django_db
def test_limits_come_from_the_environment_and_zero_leaves_the_server_default():
    assert _session_timeouts(DATABASE_STATEMENT_TIMEOUT_MS="2500", DATABASE_LOCK_TIMEOUT_MS="750") == [
        "2500ms",
        "750ms",
    ]
    assert _session_timeouts(DATABASE_STATEMENT_TIMEOUT_MS="0", DATABASE_LOCK_TIMEOUT_MS="0") == ["0", "0"]


def test_the_migrate_role_runs_with_longer_limits(tmp_path):
    """The entrypoint hands `manage.py migrate` its own limits (MIGRATE_*_TIMEOUT_MS, else 10 min and 10 s)."""
    fake_python = tmp_path / "python"
    fake_python.write_text('#!/bin/sh\necho "$DATABASE_STATEMENT_TIMEOUT_MS $DATABASE_LOCK_TIMEOUT_MS $*"\n')
    fake_python.chmod(fake_python.stat().st_mode | stat.S_IXUSR)
    entrypoint = str(Path(ROOT) / "docker" / "entrypoint.sh")
    env = {"PATH": os.environ["PATH"], "PYTHON": str(fake_python), "DATABASE_LOCK_TIMEOUT_MS": "5000"}

    default = subprocess.run([entrypoint, "migrate"], env=env, capture_output=True, text=True, check=True)
    assert default.stdout.split() == ["600000", "10000", "manage.py", "migrate", "--noinput"]
    tuned = subprocess.run(
        [entrypoint, "migrate"],
        env={**env, "MIGRATE_STATEMENT_TIMEOUT_MS": "900000", "MIGRATE_LOCK_TIMEOUT_MS": "3000"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert tuned.stdout.split()[:2] == ["900000", "3000"]
    web_like = subprocess.run([entrypoint, "manage", "check"], env=env, capture_output=True, text=True, check=True)
    assert web_like.stdout.split()[:1] == ["5000"], "other roles keep the request limits"
