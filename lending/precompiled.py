"""Statements compiled to SQL once per process and database, then run with new values.

Turning a QuerySet into SQL costs the web worker more CPU than PostgreSQL spends running it: in
`make bench` the Django ORM's compiling is about 60 % of a lend's CPU in the worker, the patron's and
the book's COUNT ... FILTER queries the largest part, and most of the relay's CPU goes to compiling
its settling UPDATEs (tools/bench/REPORT.md). A statement whose shape never changes keeps its one definition
in the ORM: it is compiled on its first call with sentinel values standing for its parameters, and
every call runs that SQL with the real values in the sentinels' places. A sentinel the ORM would
transform (so it is not found among the compiled parameters) fails at that first compile, loudly,
rather than binding a wrong value. SQLite and PostgreSQL each get the SQL of their own compiler (one
cache entry per connection vendor), so both keep being tested.

A list of ids (`pk__in=`) has one placeholder per element, so its sentinel is `Many(first)`: the
statement is compiled once per list length met (a relay batch has at most OUTBOX_BATCH_SIZE messages).

- `PrecompiledAggregate`: `QuerySet.aggregate(...)`, answers its dict.
- `PrecompiledUpdate`: `QuerySet.update(...)`, answers the rows updated.
- `PrecompiledSelect`: a QuerySet of model rows or of `values_list` tuples, answers its list; rows are
  turned into instances by `Model.from_db` after the fields' database converters, as the ORM's
  iterables do (SQLite's text date-times and JSON come back as the ORM gives them).

A value the ORM writes into the SQL itself, not as a parameter (a slice's LIMIT), is named in `shaped`:
the statement is compiled once per value met.
- `insert`: `QuerySet.bulk_create(objs)` of plain rows, its INSERT written once per model and row count
  from the model's concrete fields, each value prepared by its field as `save()` prepares it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar

from django.db import connection, models, transaction
from django.db.models.query import ModelIterable, QuerySet, ValuesListIterable

_Model = TypeVar("_Model", bound=models.Model)


# Sentinels for the statements' parameters: distinctive, and within their fields' ranges (the ORM
# compiles a lookup it knows to be false, a negative id for instance, without its parameter). A
# statement with two parameters of one kind gives the second its own value (ANOTHER_ID).
SENTINEL_ID = 2_147_480_011
ANOTHER_ID = 2_147_480_023
SENTINEL_EMAIL = "precompiled.sentinel@example.invalid"
SENTINEL_NOW = datetime(1901, 2, 3, 4, 5, 6, 789, tzinfo=UTC)


@dataclass(frozen=True)
class Many:
    """The sentinel of a list of distinct ints: `first`, `first + 1`, ... stand for its elements."""

    first: int

    def of_length(self, length: int) -> list[int]:
        return [self.first + index for index in range(length)]


# The sentinel of a list of ids.
SENTINEL_IDS = Many(2_000_000_000)


_Slot = tuple[str, int] | None  # per parameter: (sentinel's name, element index), or None for a constant


@dataclass(frozen=True)
class _Compiled:
    sql: str
    slots: tuple[_Slot, ...]
    constants: tuple[Any, ...]
    columns: tuple[str, ...]  # an aggregate's keys, in the SELECT's order
    reader: _Reader | None = None  # how a SELECT's rows become what the QuerySet gives


class _Precompiled:
    """`build(**values)` runs one statement through the ORM; `sentinels` name one distinctive value per
    parameter, of the type the real values have and within their field's range (the ORM compiles a
    lookup it knows to be false, a negative id for instance, without its parameter)."""

    def __init__(self, build: Callable[..., Any], *, shaped: tuple[str, ...] = (), **sentinels: Any) -> None:
        self.build, self.sentinels, self.shaped = build, sentinels, shaped
        self._compiled: dict[tuple, _Compiled] = {}
        self._lock = threading.Lock()

    def _prepared(self, values: dict[str, Any]) -> tuple[_Compiled, list[Any]]:
        """The SQL for these values' shape, and its parameters."""
        lists = {
            name: _distinct(values[name]) for name, sentinel in self.sentinels.items() if isinstance(sentinel, Many)
        }
        shaping = {name: values[name] for name in self.shaped}
        shape = (connection.vendor, *(len(ids) for ids in lists.values()), *shaping.values())
        compiled = self._compiled.get(shape) or self._compile(shape, lists, shaping)
        params = [
            constant if slot is None else _adapted(lists[slot[0]][slot[1]] if slot[0] in lists else values[slot[0]])
            for slot, constant in zip(compiled.slots, compiled.constants, strict=True)
        ]
        return compiled, params

    def _compile(self, shape: tuple, lists: dict[str, list[int]], shaping: dict[str, Any]) -> _Compiled:
        sentinels = {
            name: sentinel.of_length(len(lists[name])) if isinstance(sentinel, Many) else sentinel
            for name, sentinel in self.sentinels.items()
        }
        (sql, params), answer = _captured_statement(lambda: self._run(self.build(**sentinels, **shaping)))
        wanted = {slot: _adapted(value) for slot, value in _elements(sentinels)}
        slots = tuple(_slot_of(param, wanted) for param in params)
        missing = set(wanted) - set(slots)
        if missing:
            raise AssertionError(f"sentinels not found among the compiled parameters: {sorted(missing)}")
        columns = tuple(answer) if isinstance(answer, dict) else ()
        compiled = _Compiled(
            sql, slots, params, columns, _Reader.of(answer, sql) if isinstance(answer, QuerySet) else None
        )
        with self._lock:
            self._compiled[shape] = compiled
        return compiled

    def _run(self, built: Any) -> Any:
        """What `build` returned, its statement run (a QuerySet is evaluated by the subclass)."""
        return built


class PrecompiledAggregate(_Precompiled):
    """`build(**values)` returns `QuerySet.aggregate(...)`'s dict; so does a call."""

    def __call__(self, **values: Any) -> dict[str, Any]:
        compiled, params = self._prepared(values)
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            row = cursor.fetchone()
        return dict(zip(compiled.columns, row, strict=True))


class PrecompiledUpdate(_Precompiled):
    """`build(**values)` returns `QuerySet.update(...)`'s row count; so does a call. Lists (`Many`)
    must not be empty: the ORM runs no statement for `pk__in=[]`."""

    def __call__(self, **values: Any) -> int:
        compiled, params = self._prepared(values)
        # As QuerySet.update: a failure inside an atomic block marks it for rollback.
        with transaction.mark_for_rollback_on_error(), connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            return cursor.rowcount


class PrecompiledSelect(_Precompiled):
    """`build(**values)` returns a QuerySet of model instances (no `select_related`, no annotations,
    no deferred fields) or of `values_list` tuples; a call returns `list()` of it."""

    def __call__(self, **values: Any) -> list[Any]:
        compiled, params = self._prepared(values)
        assert compiled.reader is not None
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        return compiled.reader.read(rows)

    def _run(self, built: QuerySet) -> QuerySet:
        list(built)
        return built


@dataclass(frozen=True)
class _Reader:
    """A SELECT's columns as its QuerySet's iterable reads them: each converted by its expression's
    database converters, then handed to `model.from_db` (`init` names the fields) or kept as a tuple."""

    expressions: tuple[Any, ...]
    model: type[models.Model] | None
    init: tuple[str, ...]

    @classmethod
    def of(cls, queryset: QuerySet, sql: str) -> _Reader:
        compiler = queryset.query.get_compiler(connection=connection)
        if compiler.as_sql()[0] != sql:
            raise AssertionError("the QuerySet compiles to another statement than the one it ran")
        expressions = tuple(column for column, _, _ in compiler.select[: compiler.col_count])
        if queryset._iterable_class is ValuesListIterable:
            return cls(expressions, None, ())
        info = compiler.klass_info or {}
        if (
            queryset._iterable_class is not ModelIterable
            or compiler.annotation_col_map
            or info.get("related_klass_infos")
        ):
            raise AssertionError("a precompiled SELECT reads plain model rows or values_list tuples")
        init = tuple(column.target.attname for column in expressions)
        if len(init) != len(queryset.model._meta.concrete_fields):
            raise AssertionError("a precompiled SELECT reads every field of its model")
        return cls(expressions, queryset.model, init)

    def read(self, rows: Sequence[Sequence[Any]]) -> list[Any]:
        converters = _converters(self.expressions)
        if converters:
            rows = [_converted(row, converters) for row in rows]
        if self.model is None:
            return [tuple(row) for row in rows]
        return [self.model.from_db(connection.alias, self.init, row) for row in rows]


def _converters(expressions: Sequence[Any]) -> list[tuple[int, list[Callable], Any]]:
    """As `SQLCompiler.get_converters`, for this thread's connection."""
    found = []
    for index, expression in enumerate(expressions):
        converters = connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)
        if converters:
            found.append((index, converters, expression))
    return found


def _converted(row: Sequence[Any], converters: list[tuple[int, list[Callable], Any]]) -> list[Any]:
    values = list(row)
    for index, functions, expression in converters:
        for function in functions:
            values[index] = function(values[index], expression, connection)
    return values


def insert(objs: Sequence[_Model]) -> list[_Model]:
    """The rows inserted in one statement, as `bulk_create(objs)` inserts them (defaults, `auto_now_add`,
    each field's conversion for the backend; no signals), their ids set from RETURNING. `bulk_create`
    builds and compiles that INSERT on every call: 1.2 ms of CPU for a lend's two outbox messages. A
    row `bulk_create` would treat otherwise (a database default left to the database, a relation, a
    primary key not generated by the database) goes through `bulk_create` itself."""
    if not objs:
        return []
    model = type(objs[0])
    fields = _inserted_fields(model)
    values = [[field.pre_save(obj, add=True) for field in fields] for obj in objs]
    if not _plain_insert(model, fields, values):
        return model._default_manager.bulk_create(objs)
    params = [
        field.get_db_prep_save(value, connection) for row in values for field, value in zip(fields, row, strict=True)
    ]
    with transaction.mark_for_rollback_on_error(), connection.cursor() as cursor:
        cursor.execute(_insert_sql(model, len(objs), connection.vendor), params)
        ids = [row[0] for row in cursor.fetchall()]
    for obj, pk in zip(objs, ids, strict=True):
        obj.pk = pk
        obj._state.adding, obj._state.db = False, connection.alias
    return list(objs)


@cache
def _inserted_fields(model: type[models.Model]) -> tuple[models.Field, ...]:
    return tuple(field for field in model._meta.concrete_fields if field is not model._meta.auto_field)


def _plain_insert(model: type[models.Model], fields: Sequence[models.Field], values: list[list[Any]]) -> bool:
    limit = connection.features.max_query_params  # SQLite's bound on one statement's parameters
    return (
        model._meta.auto_field is model._meta.pk
        and connection.features.can_return_rows_from_bulk_insert
        and (limit is None or len(fields) * len(values) <= limit)
        and not any(field.is_relation for field in fields)
        and not any(hasattr(value, "resolve_expression") for row in values for value in row)
    )


@cache
def _insert_sql(model: type[models.Model], rows: int, vendor: str) -> str:
    """`vendor` keys the cache by backend: each quotes names its own way."""
    quote = connection.ops.quote_name
    fields = _inserted_fields(model)
    row = f"({', '.join(['%s'] * len(fields))})"
    return (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
        f"VALUES {', '.join([row] * rows)} RETURNING {quote(model._meta.pk.column)}"
    )


def _captured_statement(run: Callable[[], Any]) -> tuple[tuple[str, tuple], Any]:
    """The one statement `run` makes through the ORM, with its parameters, and what `run` answered."""
    captured: list[tuple[str, tuple]] = []

    def capture(execute, sql, params, many, context):
        captured.append((sql, tuple(params or ())))
        return execute(sql, params, many, context)

    # The compiling run is not one of the caller's statements: kept out of Django's query log, so
    # query counts (tests/perf) do not depend on which call in a process came first.
    logging, connection.force_debug_cursor = connection.force_debug_cursor, False
    try:
        with connection.execute_wrapper(capture):
            answer = run()
    finally:
        connection.force_debug_cursor = logging
    if len(captured) != 1:
        raise AssertionError(f"a precompiled statement runs one statement, not {len(captured)}")
    return captured[0], answer


def _elements(sentinels: dict[str, Any]) -> Iterable[tuple[tuple[str, int], Any]]:
    for name, value in sentinels.items():
        if isinstance(value, list):
            yield from (((name, index), element) for index, element in enumerate(value))
        else:
            yield (name, 0), value


def _slot_of(param: Any, wanted: dict[tuple[str, int], Any]) -> _Slot:
    for slot, sentinel in wanted.items():
        # isinstance: the PostgreSQL backend passes ints wrapped in psycopg's Int4/Int8 (int subclasses).
        if isinstance(param, type(sentinel)) and param == sentinel:
            return slot
    return None


def _distinct(ids: Iterable[int]) -> list[int]:
    """The ids once each, in order: as the ORM's `in` lookup binds them."""
    return list(dict.fromkeys(ids))


def _adapted(value: Any) -> Any:
    """A value as the backend passes it: SQLite gets datetimes as text in its connection's time zone."""
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return value
