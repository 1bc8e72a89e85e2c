"""With LOG_FORMAT=json every line a command prints parses as JSON: the scheduler prints its counts
every minute under `make run` and in the CronJob, where a plain line breaks the log pipeline."""

import json
import subprocess
import sys

import pytest

from tests.processes import ROOT, database_url

# Transactional: the commands run as processes of their own, and on SQLite a test left inside its
# transaction would hold the database lock they wait for.
pytestmark = pytest.mark.django_db(transaction=True)


def command_lines(*args: str, log_format: str) -> list[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": database_url(),
        "DJANGO_DEBUG": "true",
        "LOG_FORMAT": log_format,
        "DJANGO_ADMIN_USER": "json-librarian",
        "DJANGO_ADMIN_PASSWORD": "a-long-enough-password-1",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]


@pytest.mark.parametrize(
    "args",
    [
        ("send_notices",),
        ("relay_outbox", "--once"),
        ("purge_idempotency_keys",),
        ("anonymize_loans",),
        ("resync_availability",),
        ("ensure_staff_user",),
        ("demo_staff_user",),
    ],
)
def test_every_line_is_json(args):
    lines = command_lines(*args, log_format="json")
    assert lines, "the command reported nothing"
    for line in lines:
        assert line.startswith("{") and isinstance(json.loads(line), dict), line


def test_console_format_keeps_the_readable_counts():
    assert "mark_overdue_loans: 0" in command_lines("send_notices", log_format="console")
