"""Logs: one JSON line per request with method, path, status, duration and our request id; the request
id on stdlib loggers' lines too; patron emails masked everywhere; the optional rotating file."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import structlog
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpResponse

from lending.observability import logs
from lending.observability.logs import RequestLogMiddleware, logging_config, mask_email_text, mask_emails
from lending.request_context import request_id_var
from tests.conftest import post_json

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("alice@example.com", "a***@example.com"),
        ("lent to bob.smith+lib@mail.example.org today", "lent to b***@mail.example.org today"),
        ("GET /loans/?user_email=carol@x.io&limit=5", "GET /loans/?user_email=c***@x.io&limit=5"),
        ("'dave@example.com', \"erin@example.com\"", "'d***@example.com', \"e***@example.com\""),
        ("no email here, just @mentions and a@b", "no email here, just @mentions and a@b"),
    ],
)
def test_emails_are_masked_in_text(text, masked):
    assert mask_email_text(text) == masked


def test_the_masking_processor_covers_the_event_and_every_value():
    class Loan:
        def __str__(self) -> str:
            return "loan 1: book 2 to frank@example.com"

    event = mask_emails(
        None,
        "info",
        {
            "event": "lend refused for grace@example.com",
            "user_email": "heidi@example.com",
            "details": {"patrons": ["ivan@example.com", 3], "book_id": 7},
            "loan": Loan(),
            "count": 2,
            "ok": True,
        },
    )
    assert event == {
        "event": "lend refused for g***@example.com",
        "user_email": "h***@example.com",
        "details": {"patrons": ["i***@example.com", 3], "book_id": 7},
        "loan": "loan 1: book 2 to f***@example.com",
        "count": 2,
        "ok": True,
    }


def test_stdlib_and_structlog_lines_carry_the_request_id_and_masked_emails(log_lines):
    token = request_id_var.set("req-logs-1")
    try:
        logging.getLogger("lending.clients.http").warning("user %s answered %r", "judy@example.com", {"a": 1})
        structlog.get_logger("lending.test").warning("refused", user_email="karl@example.com")
    finally:
        request_id_var.reset(token)

    stdlib_line, structlog_line = [line for line in log_lines() if line.get("request_id") == "req-logs-1"]
    assert stdlib_line["event"] == "user j***@example.com answered {'a': 1}"
    assert stdlib_line["logger"] == "lending.clients.http" and stdlib_line["level"] == "warning"
    assert "timestamp" in stdlib_line
    assert structlog_line["user_email"] == "k***@example.com"
    assert "karl@example.com" not in json.dumps(log_lines())


@pytest.mark.django_db
def test_one_request_line_with_method_path_status_duration_and_our_request_id(api, patron, book, log_lines):
    response = post_json(
        api, "/lendBook/", {"user_email": patron, "book_id": book["id"]}, **{"X-Request-ID": "req-line-42"}
    )
    assert response.status_code == 201

    lines = log_lines()
    (request_line,) = [line for line in lines if line["event"] == "request_finished"]
    assert request_line["method"] == "POST"
    assert request_line["path"] == "/lendBook/"
    assert request_line["status"] == 201
    assert isinstance(request_line["duration_ms"], float) and request_line["duration_ms"] >= 0
    assert request_line["request_id"] == "req-line-42"
    assert request_line["level"] == "info"
    # Every line logged during the request has the same id (none from django-structlog's own).
    assert {line["request_id"] for line in lines} == {"req-line-42"}
    assert patron not in json.dumps(lines)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("trusted", "forwarded_for", "logged"),
    [
        # A client not behind a trusted proxy cannot choose the address its line names.
        ([], "203.0.113.9", "127.0.0.1"),
        # Behind one: the last hop the proxies did not write (the entries left of it are the client's).
        (["127.0.0.1/32", "10.0.0.0/8"], "198.51.100.7, 203.0.113.9, 10.1.2.3", "203.0.113.9"),
    ],
)
def test_the_request_line_names_the_client_address_the_throttles_count(
    api, log_lines, settings, trusted, forwarded_for, logged
):
    settings.TRUSTED_PROXIES = trusted
    response = api.get("/getExpiredBooks/", HTTP_X_FORWARDED_FOR=forwarded_for, HTTP_X_REQUEST_ID="req-line-ip")
    assert response.status_code == 200
    (request_line,) = [
        line for line in log_lines() if line["event"] == "request_finished" and line["request_id"] == "req-line-ip"
    ]
    assert request_line["ip"] == logged


@pytest.mark.django_db
def test_a_refused_request_is_logged_as_a_warning_once(api, log_lines):
    response = post_json(
        api, "/returnBook/", {"user_email": "nobody@example.com", "book_id": 1}, **{"X-Request-ID": "req-line-43"}
    )
    assert response.status_code in (404, 409)
    request_lines = [line for line in log_lines() if line.get("request_id") == "req-line-43"]
    assert [line["event"] for line in request_lines] == ["request_finished"]
    assert request_lines[0]["level"] == "warning" and request_lines[0]["status"] == response.status_code


def test_an_exception_is_logged_once_as_request_failed_with_its_traceback(rf, log_lines):
    def crashing_view(request):
        raise RuntimeError("boom")

    middleware = RequestLogMiddleware(convert_exception_to_response(crashing_view))
    request = rf.get("/lendBook/")
    request.request_id = "req-line-failed"
    assert middleware(request).status_code == 500

    request_lines = [line for line in log_lines() if line["logger"] == logs.REQUEST_LOGGER_NAME]
    assert [line["event"] for line in request_lines] == ["request_failed"]
    (failed,) = request_lines
    assert failed["level"] == "error" and failed["status"] == 500 and failed["path"] == "/lendBook/"
    assert "RuntimeError: boom" in failed["exception"]


def test_no_request_line_below_the_level(rf, log_lines):
    request_logger = logging.getLogger(logs.REQUEST_LOGGER_NAME)
    level = request_logger.level
    request_logger.setLevel(logging.ERROR)
    try:
        response = RequestLogMiddleware(lambda request: HttpResponse(status=404))(rf.get("/getExpiredBooks/"))
    finally:
        request_logger.setLevel(level)
    assert response.status_code == 404
    assert not [line for line in log_lines() if line["logger"] == logs.REQUEST_LOGGER_NAME]


def test_probes_are_not_logged(client, log_lines):
    assert client.get("/health/live/").status_code == 200
    assert not [line for line in log_lines() if line.get("path") == "/health/live/"]


def test_the_log_format_is_checked():
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logging_config(level="INFO", log_format="xml")


def test_the_optional_rotating_file_gets_json_lines(tmp_path):
    """LOG_FILE is off by default; when set, a rotating JSON file gets every line, masked."""
    assert "file" not in logging_config(level="INFO", log_format="json")["handlers"]

    log_file = tmp_path / "lending.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "LOG_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        LOG_FILE=str(log_file),
        LOG_FILE_MAX_BYTES="400",
        LOG_FILE_BACKUP_COUNT="2",
        LOG_FORMAT="console",
        DATABASE_NAME=str(tmp_path / "db.sqlite3"),
    )
    script = (
        "import django, logging; django.setup()\n"
        "for i in range(12): logging.getLogger('lending.test').warning('line %d for lena@example.com', i)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr

    files = sorted(tmp_path.glob("lending.log*"))
    assert [f.name for f in files] == ["lending.log", "lending.log.1", "lending.log.2"]  # rotated, capped
    last = [json.loads(line) for line in log_file.read_text().splitlines()][-1]
    assert last["event"] == "line 11 for l***@example.com" and last["logger"] == "lending.test"
    # The console stays in its own (readable) format.
    assert "line 11 for l***@example.com" in proc.stdout and not proc.stdout.lstrip().startswith("{")


def test_several_processes_rotating_one_log_file_lose_no_line(tmp_path):
    """gunicorn's workers, the relay and the scheduler may write one LOG_FILE: every line of every
    process is kept across the rotations."""
    log_file = tmp_path / "lending.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "LOG_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        LOG_FILE=str(log_file),
        LOG_FILE_MAX_BYTES="5000",
        LOG_FILE_BACKUP_COUNT="500",
        LOG_LEVEL="WARNING",
        DATABASE_NAME=str(tmp_path / "db.sqlite3"),
    )
    script = (
        "import django, logging, sys; django.setup()\n"
        "for i in range(300): logging.getLogger('lending.test').warning('writer %s line %d', sys.argv[1], i)\n"
    )
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(w)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for w in range(4)
    ]
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read()

    files = list(tmp_path.glob("lending.log*"))
    assert len(files) > 10, "the file never rotated"
    events = [json.loads(line)["event"] for f in files for line in f.read_text().splitlines()]
    assert sorted(events) == sorted(f"writer {w} line {i}" for w in range(4) for i in range(300))
