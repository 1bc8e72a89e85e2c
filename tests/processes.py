"""Running the service's own commands as real processes against the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from django.db import connection

from tools.harness import ROOT
from tools.harness.processes import manage, wait_until

__all__ = ["ROOT", "database_url", "send_notices_killed_then_rerun", "service_env", "start_manage", "wait_until"]


def database_url() -> str:
    """The URL of the database the current test uses (the per-run test database), on either database."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
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


def send_notices_killed_then_rerun(*, kill_after_notices: int = 20, **settings: str) -> int:
    """`manage.py send_notices` as its own process, SIGKILLed once it has recorded
    `kill_after_notices` notices (a crash half way), then run again to its end, with `settings` in
    its environment. Returns the notices recorded when it was killed. Needs a transactional test
    (the processes read what the test committed)."""
    from lending.models import LoanNotice

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": database_url(), **settings}
    env.setdefault("DJANGO_SECRET_KEY", "test")
    command = [sys.executable, "manage.py", "send_notices"]
    victim = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = wait_until(
        lambda: LoanNotice.objects.count() >= kill_after_notices or victim.poll() is not None, 60, 0.01
    )
    assert started, "the scheduler never started recording notices"
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    recorded_when_killed = LoanNotice.objects.count()
    subprocess.run(command, cwd=ROOT, env=env, check=True, timeout=120, capture_output=True)
    return recorded_when_killed
