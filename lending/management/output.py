"""What a management command reports: a structured log line when `LOG_FORMAT=json` (so every line a
process prints parses as JSON, the scheduler's every-minute counts included), the readable text
otherwise (a person at a terminal, and the tests that read `call_command`'s stdout)."""

from __future__ import annotations

import structlog
from django.conf import settings
from django.core.management.base import BaseCommand


def report(command: BaseCommand, text: str, event: str, **fields: object) -> None:
    if settings.LOG_FORMAT == "json":
        structlog.get_logger(type(command).__module__).info(event, **fields)
    else:
        command.stdout.write(text)
