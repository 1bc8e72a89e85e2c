"""Structured logs: JSON lines in production, readable lines in development, the same fields either way.

Every record, whether it comes from structlog or from a stdlib `logging.getLogger(__name__)`, goes
through one `ProcessorFormatter`, so every line gets a timestamp, its level and logger, the current
request id (`lending.request_context`, the single source of truth), the current trace and span ids
inside a span (`add_trace_context`) and has patron emails masked.

`settings.py` calls `logging_config()` for `LOGGING` and `configure_structlog()` once. Nothing here
imports Django models: settings import this module.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Mapping
from typing import Any

import structlog
from opentelemetry import trace
from structlog.typing import EventDict

from lending.request_context import request_id_var

LOG_FORMATS = ("json", "console")

# Local part's first character kept, the rest hidden; the domain is kept (useful, not personal). Every
# form an email takes in a log line: plain, with any of RFC 5322's characters in its local part
# (o'brien@, {x}@, a!b#c~@, a/b=c@), with a quoted local part ("john doe"@example.com), with an
# internationalised local part or domain (jörg@exämple.com, or its punycode xn--exmple-cua.com), with an
# address literal (a@[192.0.2.1]), and URL-encoded in a path or query (alice%40example.com,
# %22john%20doe%22%40example.com).
_DOMAIN = r"((?:[\w%-]+\.)+[\w%-]*[^\W_]|\[[\w.:]+\])"  # \w is Unicode-aware: IDNs as they are
_QUOTED = r"(\"[^\"\\\r\n]*(?:\\.[^\"\\\r\n]*)*\")(@|%40)"  # "quoted local part"
# RFC 5322's atext and dots: a local part is the whole run of them before the @.
_PLAIN = r"([\w.!#$%&'*+/=?^`{|}~-]+)(@)"
# URL-encoded, the separators of a path or query (/ ? & =) are not part of it: they would be encoded.
_ENCODED = r"([\w.!$'()*+~%-]+)(%40)"
EMAIL_PATTERN = re.compile(f"(?:{_QUOTED}|{_PLAIN}|{_ENCODED}){_DOMAIN}")
# A whole value that is one address (a `user_email` field): its local part is all of it before the @.
_WHOLE_ADDRESS = re.compile(f"{_PLAIN}{_DOMAIN}")
# What the masking leaves: one character and three stars, after a separator (or alone).
_ALREADY_MASKED = re.compile(r"(?:^|.*[^\w.])[^*]\*\*\*")
# In a run of atext starting with `/`, a path or a query: the address starts after its last separator.
_URL_SEPARATORS = re.compile(r"^(?:\w+=)?/.*[/?&=]")
_PLAIN_TYPES = (bool, int, float, type(None))


def _masked(match: re.Match) -> str:
    quoted, quoted_at, plain, plain_at, encoded, encoded_at, domain = match.groups()
    if quoted:
        return f"{quoted[1:2] or quoted[0]}***{quoted_at}{domain}"
    run, at = (plain, plain_at) if plain else (encoded, encoded_at)
    context, local = _context_and_local_part(run)
    if not local or _ALREADY_MASKED.fullmatch(run) or _ALREADY_MASKED.fullmatch(local):
        return match.group(0)
    return f"{context}{local[0]}***{at}{domain}"


def _context_and_local_part(run: str) -> tuple[str, str]:
    """What in a run of atext before an @ is the text around the address (kept), and its local part.
    A path or query (`/patrons/alice`, `/loans/?user_email=carol`) ends at its last separator; an
    opening quote (`'dave`) is the quoting of a repr. Anything else is all local part, so an address
    full of RFC 5322's characters is masked whole, whatever it starts with."""
    url = _URL_SEPARATORS.match(run)
    if url:
        return run[: url.end()], run[url.end() :]
    if run.startswith("'") and len(run) > 1:
        return "'", run[1:]
    return "", run


def mask_email_text(text: str) -> str:
    """`alice.smith@example.com` -> `a***@example.com`, wherever and in whichever form it appears."""
    if not _may_hold_an_address(text):
        return text
    return EMAIL_PATTERN.sub(_masked, text)


def _may_hold_an_address(text: str) -> bool:
    """Whether `text` has an at sign, plain or URL-encoded, which every form of EMAIL_PATTERN has. Most
    lines and values have none (every request's line): the pattern, whose runs of atext it tries from
    each of their characters, then costs about a third of a millisecond a line."""
    return "@" in text or "%40" in text


def _mask_string(value: str) -> str:
    if not _may_hold_an_address(value):
        return value
    whole = _WHOLE_ADDRESS.fullmatch(value)
    if whole:
        local, at, domain = whole.groups()
        return value if _ALREADY_MASKED.fullmatch(local) else f"{local[0]}***{at}{domain}"
    return mask_email_text(value)


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return _mask_string(value)
    if isinstance(value, _PLAIN_TYPES):
        return value
    if isinstance(value, dict):
        return {key: _mask(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_mask(item) for item in value]
    # Anything else would be rendered through its repr or str, which may carry an email (a Loan).
    return mask_email_text(str(value))


# Left as they are: structlog's own bookkeeping, and exception info still to be rendered (the JSON
# renderer gets the traceback as text first, which is masked).
_UNMASKED_KEYS = frozenset({"exc_info", "stack_info"})


def mask_emails(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """Masks anything that looks like an email, in the event and in every value."""
    return {
        key: value if key.startswith("_") or key in _UNMASKED_KEYS else _mask(value)
        for key, value in event_dict.items()
    }


def add_request_id(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """The current request id (set by RequestIdMiddleware, or by the relay per message). Django logs
    some lines (`django.request`'s "Not Found: ...") after the middleware has returned: those carry
    the request itself, and its id."""
    request_id = request_id_var.get()
    if request_id == "-":
        request_id = getattr(event_dict.get("request"), "request_id", None) or event_dict.get("request_id", "-")
    event_dict["request_id"] = request_id
    return event_dict


def add_trace_context(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """The current span's `trace_id` and `span_id`, in hex as OTLP and the W3C traceparent write them,
    so a line leads to its trace and back. Outside a span (or with tracing off) the line has neither."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event_dict["trace_id"] = trace.format_trace_id(span_context.trace_id)
        event_dict["span_id"] = trace.format_span_id(span_context.span_id)
    return event_dict


def drop_formatting_leftovers(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """Another handler may have formatted the stdlib record first (`message`, `asctime`): not extras."""
    event_dict.pop("message", None)
    event_dict.pop("asctime", None)
    return event_dict


_timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)

# Run on records from stdlib loggers before the final processors.
_FOREIGN_PRE_CHAIN = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    drop_formatting_leftovers,
    add_request_id,
    add_trace_context,
    _timestamper,
]


class MaskingFormatter(structlog.stdlib.ProcessorFormatter):
    """The last word on every line, whoever wrote it (our code, Django, the web server's own loggers,
    whichever server runs us): the rendered line is masked again as text, so what the processors never
    saw (a traceback rendered by the console renderer, a server's preformatted message) is covered."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_email_text(super().format(record))


def _formatter(log_format: str) -> dict:
    if log_format == "json":
        final = [structlog.processors.format_exc_info, mask_emails, structlog.processors.JSONRenderer()]
    else:
        # Tracebacks as plain text before masking: a boxed, wrapped rich traceback splits an email
        # across lines where no pattern finds it.
        final = [
            structlog.processors.format_exc_info,
            mask_emails,
            structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty()),
        ]
    return {
        "()": MaskingFormatter,
        "processors": [structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
        "foreign_pre_chain": _FOREIGN_PRE_CHAIN,
    }


def json_formatter() -> logging.Formatter:
    """The production formatter, for handlers created outside `LOGGING` (tests, tools)."""
    options = _formatter("json")
    return options.pop("()")(**options)


def logging_config(
    *,
    level: str,
    log_format: str,
    log_file: str = "",
    file_max_bytes: int = 10 * 1024 * 1024,
    file_backup_count: int = 5,
) -> dict:
    """The `LOGGING` dict: one stdout handler in `log_format`, plus an optional rotating JSON file."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    handlers: dict[str, dict] = {
        "console": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": log_format},
    }
    if log_file:
        handlers["file"] = _rotating_file_handler(log_file, file_max_bytes, file_backup_count)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {name: _formatter(name) for name in LOG_FORMATS},
        "handlers": handlers,
        "root": {"handlers": list(handlers), "level": level},
        "loggers": {
            # Through our handlers only: Django's default console handler would print its lines twice.
            "django": {"handlers": [], "level": level, "propagate": True},
            # runserver's access line and "Not Found: ..." duplicate our request line; errors stay.
            "django.server": {"level": "ERROR"},
            "django.request": {"level": "ERROR"},
            # The request line (RequestLogMiddleware, under django-structlog's logger name): one per request.
            "django_structlog": {"level": level},
        },
    }


def _rotating_file_handler(log_file: str, max_bytes: int, backup_count: int) -> dict:
    return {
        # gunicorn's workers, the relay and the scheduler may share one file: the standard
        # RotatingFileHandler would lose or interleave lines when two of them rotate it.
        "class": "concurrent_log_handler.ConcurrentRotatingFileHandler",
        "filename": log_file,
        "maxBytes": max_bytes,
        "backupCount": backup_count,
        "encoding": "utf-8",
        "delay": True,
        "formatter": "json",
    }


def configure_structlog() -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.PositionalArgumentsFormatter(),
            add_request_id,
            add_trace_context,
            _timestamper,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


# --- The request line ---------------------------------------------------------------------------------
# One `request_finished` line per request, under django-structlog's logger name and with the fields its
# middleware wrote with our signal hooks: the context (request_id, method, path, ip) on every line logged
# during the request, and the line's method, path, status, duration_ms and api_key_prefix. Done here,
# a request below the line's level costs no rendering, no signal and no request id of its own.

REQUEST_LOGGER_NAME = "django_structlog.middlewares.request"
request_log = structlog.get_logger(REQUEST_LOGGER_NAME)
_request_log_level = logging.getLogger(REQUEST_LOGGER_NAME)


def request_line_level(status: int) -> int:
    """INFO for 2xx (and 1xx, 3xx), WARNING for 4xx, ERROR for 5xx."""
    if 400 <= status < 500:
        return logging.WARNING
    if status >= 500:
        return logging.ERROR
    return logging.INFO


class RequestLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        _bind_request(request)
        try:
            response = self.get_response(request)
            if not getattr(request, "_log_failed", False):
                _log_finished(request, response)
            if getattr(response, "streaming", False) and not response.is_async:
                response.streaming_content = _logged_stream(
                    response.streaming_content, structlog.contextvars.get_contextvars()
                )
        finally:
            structlog.contextvars.clear_contextvars()
        return response


def _bind_request(request) -> None:
    # Our request id. The method and path in the context too: the `streaming_finished` line (a static
    # file, served by WhiteNoise as a stream) carries only the context. The client address as the
    # throttles count it (`lending.api.middleware.RequestIdMiddleware` resolves it through
    # TRUSTED_PROXIES), never a guess from headers a client may write.
    structlog.contextvars.bind_contextvars(
        request_id=getattr(request, "request_id", request_id_var.get()),
        method=request.method,
        path=request.path,
        ip=getattr(request, "client_address", None) or request.META.get("REMOTE_ADDR"),
    )
    request._log_started = time.perf_counter()
    if _request_log_level.isEnabledFor(logging.DEBUG):
        request_log.debug(
            "request_started",
            method=request.method,
            path=request.path,
            user_agent=request.META.get("HTTP_USER_AGENT"),
        )


def _request_line(request, status: int) -> dict:
    started = getattr(request, "_log_started", None)
    return {
        "method": request.method,
        "path": request.path,
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started is not None else None,
        # The calling service's key prefix (set by `lending.api.auth`), never the key; None without one.
        "api_key_prefix": getattr(request, "api_key_prefix", None),
    }


def _log_finished(request, response) -> None:
    level = request_line_level(response.status_code)
    if _request_log_level.isEnabledFor(level):
        request_log.log(level, "request_finished", **_request_line(request, response.status_code))


def _log_failed(sender, request=None, **kwargs) -> None:
    """An exception escaped the view: `request_failed` with its traceback instead of the request line
    (a 404 or 403 raised as an exception gets the ordinary line)."""
    from django.core.exceptions import PermissionDenied
    from django.http import Http404

    exception = sys.exc_info()[1]
    if request is None or isinstance(exception, (Http404, PermissionDenied)) or hasattr(request, "_log_failed"):
        return
    request._log_failed = True
    request_log.exception("request_failed", **_request_line(request, 500))


def _logged_stream(content, context: dict):
    with structlog.contextvars.bound_contextvars(**context):
        request_log.debug("streaming_started")
        try:
            yield from content
        except Exception:
            request_log.exception("streaming_failed")
            raise
        request_log.info("streaming_finished")


def connect_request_signals() -> None:
    """Called from the app's `ready()`: the `request_failed` line."""
    from django.core.signals import got_request_exception

    got_request_exception.connect(_log_failed, dispatch_uid="lending.logs.request_failed")


# --- gunicorn's own lines (its master's start-up and error lines, the optional access log) ---------------

_TRUE_WORDS = frozenset({"true", "on", "ok", "y", "yes", "1"})


def default_log_format(environ: Mapping[str, str]) -> str:
    """LOG_FORMAT as settings.py reads it (json unless DJANGO_DEBUG is true), without loading Django."""
    debug = environ.get("DJANGO_DEBUG", "True").strip().lower() in _TRUE_WORDS
    return environ.get("LOG_FORMAT", "console" if debug else "json").strip().lower() or "console"


def gunicorn_logconfig_dict(environ: Mapping[str, str] | None = None) -> dict:
    """gunicorn's `logconfig_dict`: its loggers through the service's formatter, so with
    LOG_FORMAT=json its "Booting worker" and error lines are JSON objects like every other line."""
    import os

    if environ is None:
        environ = os.environ
    log_format = default_log_format(environ)
    if log_format not in LOG_FORMATS:
        log_format = "json"
    level = environ.get("LOG_LEVEL", "INFO").upper()
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": log_format}
    # gunicorn's access log stays off unless GUNICORN_ACCESS_LOG asks for it (the app logs each request).
    access = ["gunicorn_console"] if environ.get("GUNICORN_ACCESS_LOG") else []
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {log_format: _formatter(log_format)},
        "handlers": {"gunicorn_console": handler},
        "root": {"handlers": ["gunicorn_console"], "level": level},
        "loggers": {
            "gunicorn.error": {"handlers": ["gunicorn_console"], "level": level, "propagate": False},
            "gunicorn.access": {"handlers": access, "level": "INFO" if access else "CRITICAL", "propagate": False},
        },
    }


def gunicorn_logger_class() -> type:
    """gunicorn's `logger_class`: its own Logger, except that the access line is built only when
    GUNICORN_ACCESS_LOG asks for it. gunicorn builds every request's access fields (its headers, the
    response's, the whole WSGI environ) as soon as a `logconfig_dict` is set, even with the access logger
    off: about 0.1 ms of the worker's CPU a request for a line nobody reads (tools/bench/REPORT.md, run 6)."""
    from gunicorn.glogging import Logger

    class ServiceLogger(Logger):
        def access(self, resp, req, environ, request_time) -> None:
            if self.cfg.accesslog:
                super().access(resp, req, environ, request_time)

    return ServiceLogger
