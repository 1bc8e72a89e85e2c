"""Health endpoints: `/health/` (the spec's: database check), `/health/live/` (the process only, for
the liveness probe) and `/health/ready/` (database reachable and no unapplied migrations; the cache's
state reported too). GET and HEAD only: ProbeMiddleware answers other methods with 405.

The cache holds only the rate-limit counters, and the limits fail open without it: a cache that is
down makes readiness `degraded` (still 200), not `unhealthy`. Taking every pod out of the Service
because their shared Redis is down would turn a lost rate limit into an outage."""

from __future__ import annotations

import uuid

from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse

from lending.db import session as db_session

SERVICE_NAME = "lending-service"
_migrations_known_applied = False


def _database_ok() -> tuple[bool, str]:
    try:
        db_session.check_database_answers(connections[DEFAULT_DB_ALIAS])
        return True, "ok"
    except Exception as exc:  # any failure to reach the database makes us unhealthy
        return False, f"unavailable: {exc.__class__.__name__}"


def _migrations_applied() -> bool:
    """Once all migrations are seen applied, they stay applied for this process's lifetime."""
    global _migrations_known_applied
    if not _migrations_known_applied:
        connection = connections[DEFAULT_DB_ALIAS]
        executor = MigrationExecutor(connection)
        _migrations_known_applied = not executor.migration_plan(executor.loader.graph.leaf_nodes())
    return _migrations_known_applied


def _cache_ok() -> str:
    key = f"health-{uuid.uuid4().hex}"
    try:
        cache.set(key, 1, timeout=5)
        if cache.get(key) != 1:
            return "unavailable: value not kept"
        cache.delete(key)
        return "ok"
    except Exception as exc:  # whatever the backend raises when it cannot be reached
        return f"unavailable: {exc.__class__.__name__}"


# Checks whose failure degrades the service without stopping it.
NON_CRITICAL = frozenset({"cache"})


def _answer(checks: dict[str, str]) -> JsonResponse:
    failed = {name for name, value in checks.items() if value != "ok"}
    status = "unhealthy" if failed - NON_CRITICAL else "degraded" if failed else "healthy"
    body = {"service": SERVICE_NAME, "status": status, "checks": checks}
    return JsonResponse(body, status=503 if status == "unhealthy" else 200)


def health(request) -> JsonResponse:
    return _answer({"database": _database_ok()[1]})


def live(request) -> JsonResponse:
    return _answer({"process": "ok"})


def ready(request) -> JsonResponse:
    ok, database = _database_ok()
    checks = {"database": database}
    if ok:
        try:
            checks["migrations"] = "ok" if _migrations_applied() else "unapplied migrations"
        except Exception as exc:
            checks["migrations"] = f"unknown: {exc.__class__.__name__}"
    checks["cache"] = _cache_ok()
    return _answer(checks)
