"""Aggregate queries compiled to SQL once per process and database, then run with new values.

Turning a QuerySet into SQL costs the web worker more CPU than PostgreSQL spends running it: in
`make bench` the Django ORM's compiling is about 60 % of a lend's CPU in the worker, the patron's and
the book's COUNT ... FILTER queries the largest part (bench/REPORT.md). A query whose shape never
changes keeps its one definition in the ORM: it is compiled on its first call with sentinel values
standing for its parameters, and every call runs that SQL with the real values in the sentinels'
places. A sentinel the ORM would transform (so it is not found among the compiled parameters) fails
at that first compile, loudly, rather than binding a wrong value. SQLite and PostgreSQL each get the
SQL of their own compiler (one cache entry per connection vendor), so both keep being tested.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection


@dataclass(frozen=True)
class _Compiled:
    sql: str
    slots: tuple[str | None, ...]  # per parameter: the sentinel's name, or None for a constant
    constants: tuple[Any, ...]
    columns: tuple[str, ...]


class PrecompiledAggregate:
    """`build(**values)` returns `QuerySet.aggregate(...)`'s dict; `sentinels` name one distinctive
    value per parameter, of the type the real values have and within their field's range (the ORM
    compiles a lookup it knows to be false, a negative id for instance, without its parameter)."""

    def __init__(self, build: Callable[..., dict[str, Any]], **sentinels: Any) -> None:
        self.build, self.sentinels = build, sentinels
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def __call__(self, **values: Any) -> dict[str, Any]:
        compiled = self._compiled.get(connection.vendor) or self._compile()
        pairs = zip(compiled.slots, compiled.constants, strict=True)
        params = [_adapted(values[slot]) if slot else constant for slot, constant in pairs]
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            row = cursor.fetchone()
        return dict(zip(compiled.columns, row, strict=True))

    def _compile(self) -> _Compiled:
        captured: list[tuple[str, tuple]] = []

        def capture(execute, sql, params, many, context):
            captured.append((sql, tuple(params or ())))
            return execute(sql, params, many, context)

        # The compiling run is not one of the caller's statements: kept out of Django's query log, so
        # query counts (tests/perf) do not depend on which call in a process came first.
        logging, connection.force_debug_cursor = connection.force_debug_cursor, False
        try:
            with connection.execute_wrapper(capture):
                columns = tuple(self.build(**self.sentinels))
        finally:
            connection.force_debug_cursor = logging
        if len(captured) != 1:
            raise AssertionError(f"an aggregate runs one statement, not {len(captured)}")
        sql, params = captured[0]
        slots = tuple(self._slot_of(param) for param in params)
        missing = set(self.sentinels) - set(slots)
        if missing:
            raise AssertionError(f"sentinels not found among the compiled parameters: {sorted(missing)}")
        compiled = _Compiled(sql, slots, params, columns)
        with self._lock:
            self._compiled[connection.vendor] = compiled
        return compiled

    def _slot_of(self, param: Any) -> str | None:
        for name, sentinel in self.sentinels.items():
            adapted = _adapted(sentinel)
            # isinstance: the PostgreSQL backend passes ints wrapped in psycopg's Int4/Int8 (int subclasses).
            if isinstance(param, type(adapted)) and param == adapted:
                return name
        return None


def _adapted(value: Any) -> Any:
    """A value as the backend passes it: SQLite gets datetimes as text in its connection's time zone."""
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return value
