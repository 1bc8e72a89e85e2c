"""Health endpoints: `/health/` (the spec's: database check), `/health/live/` (the process only, for
the liveness probe) and `/health/ready/` (database reachable and no unapplied migrations)."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse

SERVICE_NAME = "lending-service"
_migrations_known_applied = False


def _database_ok() -> tuple[bool, str]:
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
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


def _answer(checks: dict[str, str]) -> JsonResponse:
    healthy = all(value == "ok" for value in checks.values())
    body = {"service": SERVICE_NAME, "status": "healthy" if healthy else "unhealthy", "checks": checks}
    return JsonResponse(body, status=200 if healthy else 503)


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
    return _answer(checks)
