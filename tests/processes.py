"""Running the service's own commands as real processes against the test database."""

from __future__ import annotations

import os
import subprocess

from django.db import connection

from harness import ROOT
from harness.processes import manage, wait_until

__all__ = ["ROOT", "database_url", "service_env", "start_manage", "wait_until"]


def database_url() -> str:
    """The URL of the database the current test uses (the per-run test database)."""
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def service_env(peers, **overrides: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url(),
        "PYTHONUNBUFFERED": "1",
        **peers.env(),
        **overrides,
    }


def start_manage(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(manage(*args), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
