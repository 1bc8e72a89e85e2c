"""Issue 14 item 4: `statement_timeout` and `lock_timeout` are set on every PostgreSQL session, from
DATABASE_STATEMENT_TIMEOUT_MS / DATABASE_LOCK_TIMEOUT_MS, with longer values for the migrate role."""

from __future__ import annotations

import os
import signal
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


# --- Issue 27 point 1: the limits hold behind a pooler that drops `options` -------------------------
# PgBouncer (a CloudNativePG Pooler among others) ignores the `options` startup parameter, so the
# limits must also be the database role's own defaults: `manage.py apply_role_timeouts` sets them.


@pytest.fixture
def pooled_role():
    """A throwaway LOGIN role, as the service's database user, on the test database."""
    import psycopg

    db = connection.settings_dict
    address = {"host": db["HOST"] or "127.0.0.1", "port": db["PORT"] or 5432, "dbname": db["NAME"]}
    admin = psycopg.connect(**address, user=db["USER"], autocommit=True)
    role = f"lending_pooled_{os.getpid()}"
    admin.execute(f'DROP ROLE IF EXISTS "{role}"')
    admin.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        yield role, address, admin
    finally:
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()


def _manage_as(role: str, address: dict, *args: str, **env: str) -> subprocess.CompletedProcess:
    url = f"postgres://{role}@{address['host']}:{address['port']}/{address['dbname']}"
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": url, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _connect_like_the_pooler(role: str, address: dict):
    """A session opened without any `options`: what PostgreSQL sees behind PgBouncer."""
    import psycopg

    return psycopg.connect(**address, user=role, autocommit=True)


@pytest.mark.django_db
def test_a_session_without_options_gets_the_limits_from_the_role(pooled_role):
    import psycopg

    role, address, admin = pooled_role
    applied = _manage_as(
        role, address, "apply_role_timeouts", DATABASE_STATEMENT_TIMEOUT_MS="1500", DATABASE_LOCK_TIMEOUT_MS="200"
    )
    assert applied.returncode == 0, applied.stderr
    with _connect_like_the_pooler(role, address) as pooled:
        assert pooled.execute("SHOW statement_timeout").fetchone()[0] == "1500ms"
        assert pooled.execute("SHOW lock_timeout").fetchone()[0] == "200ms"
        # In force, not only shown: a lock held elsewhere is given up on, a long statement cancelled.
        admin.execute("SELECT pg_advisory_lock(2727)")
        try:
            with pytest.raises(psycopg.errors.LockNotAvailable):
                pooled.execute("SELECT pg_advisory_lock(2727)")
        finally:
            admin.execute("SELECT pg_advisory_unlock(2727)")
        with pytest.raises(psycopg.errors.QueryCanceled):
            pooled.execute("SELECT pg_sleep(30)")


@pytest.mark.django_db
def test_applying_the_role_limits_again_changes_nothing_and_zero_resets_them(pooled_role):
    role, address, _ = pooled_role
    first = _manage_as(role, address, "apply_role_timeouts")
    again = _manage_as(role, address, "apply_role_timeouts")
    assert first.returncode == again.returncode == 0, first.stderr + again.stderr
    assert "statement_timeout=15s (set)" in first.stdout
    assert "statement_timeout=15s (unchanged)" in again.stdout
    assert "lock_timeout=5s (unchanged)" in again.stdout
    with _connect_like_the_pooler(role, address) as pooled:
        assert [pooled.execute(f"SHOW {name}").fetchone()[0] for name in ("statement_timeout", "lock_timeout")] == [
            "15s",
            "5s",
        ]
    reset = _manage_as(role, address, "apply_role_timeouts", DATABASE_STATEMENT_TIMEOUT_MS="0")
    assert reset.returncode == 0, reset.stderr
    assert "statement_timeout=server default (reset)" in reset.stdout
    with _connect_like_the_pooler(role, address) as pooled:
        assert pooled.execute("SHOW statement_timeout").fetchone()[0] == "0"
        assert pooled.execute("SHOW lock_timeout").fetchone()[0] == "5s"


@pytest.mark.django_db
def test_a_process_warns_at_start_when_the_limits_in_force_differ_from_its_settings(pooled_role, caplog):
    """The startup check (lending/db_session.py) over a Django connection without `options`, as
    behind the pooler: before the role has its limits it warns; after, it only logs them."""
    from django.db.utils import ConnectionHandler

    from lending.db_session import log_session_timeouts

    role, address, _ = pooled_role

    def pooled_connection():
        handler = ConnectionHandler({"default": {**connection.settings_dict, "USER": role, "OPTIONS": {}}})
        return handler["default"]

    caplog.set_level("INFO", logger="lending.db_session")
    assert log_session_timeouts("relay", pooled_connection()) == ["statement_timeout", "lock_timeout"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("statement_timeout is 0 in force, 15s expected" in w for w in warnings), warnings

    assert _manage_as(role, address, "apply_role_timeouts").returncode == 0
    caplog.clear()
    assert log_session_timeouts("relay", pooled_connection()) == []
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert any("statement_timeout=15s lock_timeout=5s" in r.getMessage() for r in caplog.records)


_LONG_RUNNING = {
    "relay": ["manage.py", "relay_outbox", "--metrics-port", "0"],
    "scheduler": ["manage.py", "send_notices", "--loop", "--interval", "3600", "--metrics-port", "0"],
    "web": ["-m", "gunicorn", "--config", "docker/gunicorn.conf.py"],
}


@pytest.mark.django_db
@pytest.mark.parametrize("process", sorted(_LONG_RUNNING))
def test_every_long_running_process_logs_the_limits_in_force_when_it_starts(process):
    from tools.harness.processes import free_port

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url(),
        "PYTHONUNBUFFERED": "1",
        "LOG_FORMAT": "console",
        "LOG_LEVEL": "INFO",
        "GUNICORN_WORKERS": "1",
        "GUNICORN_BIND": f"127.0.0.1:{free_port()}",
    }
    started = subprocess.Popen(
        [sys.executable, *_LONG_RUNNING[process]],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines = []
    try:
        for line in started.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "database session limits" in line or len(lines) > 500:
                break
    finally:
        os.killpg(started.pid, signal.SIGTERM)
        started.wait(30)
    expected = f"{process}: database session limits in force: statement_timeout=15s lock_timeout=5s"
    assert any(expected in line for line in lines), "".join(lines)
