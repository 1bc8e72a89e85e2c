"""Masking covers every email form, in every line the service and its server write (issue 10 item 6)."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import string

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lending.observability import logs
from lending.observability.logs import logging_config, mask_email_text

EMAIL_FORMS = [
    # (the line as written, the email's parts that must not survive, the masked line)
    ('to "john doe"@example.com today', ["john doe", "john"], "to j***@example.com today"),
    ('"jane.q\\"x\\"public"@example.com', ["jane.q", "public"], "j***@example.com"),
    ("user@exämple.com", ["user@"], "u***@exämple.com"),
    ("jörg.müller@bücher.example", ["jörg", "müller"], "j***@bücher.example"),
    ("zoë@xn--exmple-cua.com", ["zoë@"], "z***@xn--exmple-cua.com"),
    ("GET /patrons/alice%40example.com/anonymize/ 500", ["alice"], "GET /patrons/a***%40example.com/anonymize/ 500"),
    ("user_email=bob.smith%2Blib%40mail.example.org&x=1", ["bob.smith"], "user_email=b***%40mail.example.org&x=1"),
    ("%22john%20doe%22%40example.com", ["john"], "%***%40example.com"),
    ("sam%40ex%C3%A4mple.com", ["sam%40"], "s***%40ex%C3%A4mple.com"),
]


@pytest.mark.parametrize(("text", "secrets", "masked"), EMAIL_FORMS)
def test_every_email_form_is_masked(text, secrets, masked):
    result = mask_email_text(text)

    assert result == masked
    assert not any(secret in result for secret in secrets)


@pytest.mark.parametrize("text", ["no email, just @mentions and a@b", "price: 40%40 off", "a@localhost"])
def test_text_without_an_email_is_left_alone(text):
    assert mask_email_text(text) == text


def test_masking_twice_changes_nothing():
    once = mask_email_text('"john doe"@example.com and alice%40example.com')
    assert mask_email_text(once) == once


def _configured(log_format: str, logger_names: list[str]) -> tuple[io.StringIO, callable]:
    """LOGGING as settings build it, with the console handler writing into a buffer."""
    config = logging_config(level="INFO", log_format=log_format)
    stream = io.StringIO()
    config["handlers"]["console"]["stream"] = stream
    return stream, config


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    loggers = {
        name: (lg.handlers[:], lg.level, lg.propagate)
        for name, lg in logging.root.manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
    }
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name, (handlers, level, propagate) in loggers.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@pytest.mark.parametrize("log_format", ["json", "console"])
@pytest.mark.parametrize(
    "logger_name", ["lending.services", "django.request", "gunicorn.error", "waitress", "uvicorn.error"]
)
def test_a_line_from_any_logger_is_masked_in_both_formats(log_format, logger_name, restore_logging):
    stream, config = _configured(log_format, [logger_name])
    logging.config.dictConfig(config)

    logging.getLogger(logger_name).error(
        "Error handling request %s for %s", "/patrons/alice%40example.com/anonymize/", '"john doe"@exämple.com'
    )

    line = stream.getvalue()
    assert "alice" not in line and "john" not in line
    assert "a***%40example.com" in line


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_a_traceback_naming_a_patron_is_masked(log_format, restore_logging):
    stream, config = _configured(log_format, [])
    logging.config.dictConfig(config)

    try:
        raise ValueError('Key (user_email, book_id)=("carol smith"@example.com, 1) already exists; see dave@exämple.de')
    except ValueError:
        logging.getLogger("django.request").exception("Internal Server Error: /lendBook/")

    line = stream.getvalue()
    assert "carol" not in line and "dave" not in line
    assert "ValueError" in line


def test_gunicorns_own_error_line_is_masked(restore_logging):
    """gunicorn's loggers get their own logconfig (lending.observability.logs); its "Error handling request" line,
    with the raw, possibly URL-encoded path, comes out masked."""
    if not hasattr(logs, "gunicorn_logconfig_dict"):
        pytest.skip("no gunicorn logconfig helper in lending.observability.logs")
    config = logs.gunicorn_logconfig_dict({"LOG_FORMAT": "json", "LOG_LEVEL": "INFO"})
    stream = io.StringIO()
    config["handlers"]["gunicorn_console"]["stream"] = stream
    logging.config.dictConfig(config)

    logging.getLogger("gunicorn.error").error("Error handling request %s", "/patrons/erin%40example.com/anonymize/")
    logging.getLogger("gunicorn.error").info("Invalid request from ip=10.0.0.1: bad line 'GET /?e=frank@example.com'")

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    assert "erin" not in stream.getvalue() and "frank" not in stream.getvalue()


# --- Every valid address (issue 28): RFC 5322's special characters anywhere in the local part -------------

SPECIAL = "!#$%&'*+-/=?^_`{|}~"


@pytest.mark.parametrize("last", ["}", "~", "!", "#", "'", "$", "&", "*", "+", "=", "?", "^", "`", "{", "|", "/", "%"])
def test_a_local_part_ending_in_any_special_character_is_masked(last):
    line = mask_email_text(f"lend refused for patron{last}@example.com today")
    assert line == "lend refused for p***@example.com today"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("for {abc}@example.com", "for {***@example.com"),
        ("for !x#y~@example.com", "for !***@example.com"),
        ("for a/b=c@example.com", "for a***@example.com"),
        ("user@[192.0.2.1] asked", "u***@[192.0.2.1] asked"),
        ("GET /patrons/bob!smith@example.com/status/", "GET /patrons/b***@example.com/status/"),
        ("path=/patrons/bob@example.com/status/", "path=/patrons/b***@example.com/status/"),
        ("user_email=o'brien@example.com", "u***@example.com"),
    ],
)
def test_special_characters_in_context(text, masked):
    assert mask_email_text(text) == masked


# A local part as RFC 5322 allows it: hypothesis' own (atext only), and the same with dots between atoms.
ATEXT = string.ascii_letters + string.digits + SPECIAL
local_parts = st.one_of(
    st.text(ATEXT, min_size=1, max_size=64),
    st.lists(st.text(ATEXT, min_size=1, max_size=10), min_size=2, max_size=4).map(".".join),
)
addresses = st.one_of(
    st.emails(), st.builds("{}@{}".format, local_parts, st.sampled_from(["example.com", "exämple.de"]))
)


def _logged(emit) -> dict:
    """One record written through the service's logging (its JSON formatter), parsed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.json_formatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        emit()
    finally:
        root.removeHandler(handler)
    [line] = stream.getvalue().splitlines()
    return json.loads(line)


def _visible_of(masked: str, domain: str) -> str:
    """What a masked address shows of its local part: the characters before `***@domain`."""
    assert masked.endswith(f"***@{domain}"), masked
    return masked[: -len(f"***@{domain}")]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(address=addresses)
def test_every_valid_address_is_masked_in_a_field_and_in_a_message(address):
    local, _, domain = address.rpartition("@")
    record = _logged(lambda: structlog.get_logger("lending.tests").warning("lend_refused", user_email=address))
    # A field holding an address: its first character, nothing more.
    assert record["user_email"] == f"{local[0]}***@{domain}"
    if local.startswith("/"):
        return  # in free text, a run starting with `/` is read as a path (lending.observability.logs): a field is exact
    record = _logged(lambda: logging.getLogger("lending.tests").warning("lend refused for %s today", address))
    message = record["event"]
    assert message.startswith("lend refused for ") and message.endswith(" today"), message
    shown = _visible_of(message[len("lend refused for ") : -len(" today")], domain)
    # A repr's opening quote is kept as quoting (`'dave@`): then one character more.
    assert shown == local[: 2 if local.startswith("'") and len(local) > 1 else 1]


@settings(max_examples=200, deadline=None)
@given(local=local_parts.filter(lambda local: not set(local) & set("/?&=")))
def test_an_address_in_a_logged_path_is_masked(local):
    """A path keeps its segments; an address with `/ ? & =` cannot be routed as one segment."""
    path = f"/patrons/{local}@example.com/status/"
    record = _logged(lambda: structlog.get_logger("lending.tests").info("request_finished", path=path))
    assert record["path"] == f"/patrons/{local[0]}***@example.com/status/"


@settings(max_examples=500, deadline=None)
@given(text=st.lists(st.sampled_from([*string.printable, "ä", "%40", "@", '"']), max_size=60).map("".join))
def test_text_with_no_at_sign_skips_the_pattern_and_answers_as_it_would(text):
    """The shortcut for text without `@` or `%40` (most lines) answers what the pattern answers."""
    assert mask_email_text(text) == logs.EMAIL_PATTERN.sub(logs._masked, text)  # noqa: SLF001 - the pattern itself
