"""gunicorn's own lines ("Starting gunicorn", "Booting worker", its errors) follow LOG_FORMAT: with
`json`, each is a JSON object like every other line of the service; its access log stays off."""

import json
import os
import subprocess
import sys

from tests.processes import ROOT

SCRIPT = """
from gunicorn.config import Config
from gunicorn.glogging import Logger
from lending.observability.logs import gunicorn_logconfig_dict
cfg = Config()
cfg.set("logconfig_dict", gunicorn_logconfig_dict())
cfg.set("errorlog", "-")
log = Logger(cfg)
log.info("Booting worker with pid: %s", 42)
log.error("Worker (pid:%s) was sent SIGKILL!", 43)
log.access_log.info("an access line that must stay off")
"""


def gunicorn_lines(**env: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]


def test_json_lines_under_log_format_json():
    lines = gunicorn_lines(LOG_FORMAT="json")
    events = [json.loads(line) for line in lines]
    assert [e["event"] for e in events] == ["Booting worker with pid: 42", "Worker (pid:43) was sent SIGKILL!"]
    assert [e["level"] for e in events] == ["info", "error"]
    assert all(e["logger"] == "gunicorn.error" for e in events)


def test_production_default_is_json():
    assert all(line.startswith("{") for line in gunicorn_lines(DJANGO_DEBUG="false"))
