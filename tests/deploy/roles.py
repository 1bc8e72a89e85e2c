"""The image's entrypoint roles (`docker/entrypoint.sh`: web, relay, scheduler, sip, peers ...), started
locally as the containers start them: production-like settings on a throw-away SQLite database, the
peers pointing nowhere. `role_env` (tests/deploy/conftest.py) is that environment, migrated."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools.harness import ROOT
from tools.harness.processes import free_port

ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"


def role_environment(tmp: Path) -> dict[str, str]:
    """Every role's environment, then migrated by the `migrate` role."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "GUNICORN_", "SIP_"))}
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "PYTHON": sys.executable,
            "APP_DIR": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_DEBUG": "False",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1",
            # As in production: the probes must still get through, unredirected.
            "SECURE_SSL_REDIRECT": "True",
            "DATABASE_ENGINE": "django.db.backends.sqlite3",
            "DATABASE_NAME": str(tmp / "roles.sqlite3"),
            "BOOK_MANAGEMENT_URL": f"http://127.0.0.1:{free_port()}",
            "USER_MANAGEMENT_URL": f"http://127.0.0.1:{free_port()}",
            "NOTIFICATION_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
            "FEES_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
            # The SIP2 gateway's API, pointing nowhere too: the role does not need it to start.
            "LENDING_API_URL": f"http://127.0.0.1:{free_port()}",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prometheus"),
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "WARNING",
            "GUNICORN_WORKERS": "1",
            "GUNICORN_THREADS": "2",
        }
    )
    migrate = subprocess.run([str(ENTRYPOINT), "migrate"], env=env, capture_output=True, text=True, timeout=180)
    assert migrate.returncode == 0, f"migrate role failed:\n{migrate.stdout}\n{migrate.stderr}"
    return env


def start_role(role_env: dict[str, str], *args: str, **extra_env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(ENTRYPOINT), *args],
        env={**role_env, **extra_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def stop_role(proc: subprocess.Popen) -> str:
    """SIGTERM to the role's process group (SIGKILL after 20 s); its output."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    return proc.stdout.read() if proc.stdout else ""


def wait_for_port(port: int, proc: subprocess.Popen, deadline: float) -> None:
    """Until something listens on `port`, failing at once if the role exits first."""
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited with {proc.returncode} before listening on {port}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"nothing listening on {port}")
