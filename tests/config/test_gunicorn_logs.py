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


def script_lines(script: str, **env: str) -> list[str]:
    """The lines a Python script prints (stdout, then stderr), run in a process of its own with `env`."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]


def gunicorn_lines(**env: str) -> list[str]:
    return script_lines(SCRIPT, **env)


def test_json_lines_under_log_format_json():
    lines = gunicorn_lines(LOG_FORMAT="json")
    events = [json.loads(line) for line in lines]
    assert [e["event"] for e in events] == ["Booting worker with pid: 42", "Worker (pid:43) was sent SIGKILL!"]
    assert [e["level"] for e in events] == ["info", "error"]
    assert all(e["logger"] == "gunicorn.error" for e in events)


def test_production_default_is_json():
    assert all(line.startswith("{") for line in gunicorn_lines(DJANGO_DEBUG="false"))


ACCESS_SCRIPT = """
import datetime
from unittest import mock
from gunicorn.config import Config
from lending.observability.logs import gunicorn_logconfig_dict, gunicorn_logger_class
cfg = Config()
cfg.set("logconfig_dict", gunicorn_logconfig_dict())
if ACCESS_LOG:
    cfg.set("accesslog", ACCESS_LOG)
log = gunicorn_logger_class()(cfg)
resp = mock.Mock(status="200 OK", headers=[("Content-Type", "application/json")], sent=12, response_length=12)
req = mock.Mock(headers=[("HOST", "x")], method="GET", path="/p", query="", version=(1, 1), uri="/p")
with mock.patch.object(type(log), "atoms", wraps=log.atoms) as atoms:
    environ = {"REMOTE_ADDR": "10.0.0.1", "REQUEST_METHOD": "GET", "RAW_URI": "/p", "SERVER_PROTOCOL": "HTTP/1.1"}
    log.access(resp, req, environ, datetime.timedelta(milliseconds=3))
print("atoms built:", atoms.call_count)
"""


def access_lines(access_log: str) -> list[str]:
    script = f"ACCESS_LOG = {access_log!r}\n" + ACCESS_SCRIPT
    return script_lines(script, LOG_FORMAT="json", GUNICORN_ACCESS_LOG=access_log)


def test_the_access_line_is_not_even_built_while_the_access_log_is_off():
    """gunicorn builds each request's access fields whenever a logconfig_dict is set; the service's
    logger class skips that work unless GUNICORN_ACCESS_LOG is set."""
    assert access_lines("") == ["atoms built: 0"]


def test_the_access_line_is_written_when_asked_for():
    lines = access_lines("-")
    assert lines[-1] == "atoms built: 1"
    [access] = [json.loads(line) for line in lines[:-1]]
    assert access["logger"] == "gunicorn.access" and "GET /p" in access["event"]
