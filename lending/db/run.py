"""The helpers every statement of `lending.db` runs through: one cursor per call, the text for this
backend, date-times as the backend stores and answers them, model instances from raw rows."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, TypeVar, cast

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connection, connections, models, transaction
from django.utils.dateparse import parse_datetime

_Model = TypeVar("_Model", bound=models.Model)


@dataclass(frozen=True)
class Variants:
    """One statement in two dialects, side by side: PostgreSQL's and SQLite's."""

    postgresql: str
    sqlite: str


Statement = str | Variants


def text(statement: Statement) -> str:
    """The statement's text for this connection's backend."""
    if isinstance(statement, Variants):
        return statement.postgresql if is_postgresql() else statement.sqlite
    return statement


@functools.cache
def is_postgresql() -> bool:
    """Whether the database is PostgreSQL (else SQLite): the setting's, for the process's life. Asked once,
    not of the thread's connection each time (a lookup in Django's per-thread connections, several per
    statement)."""
    return connections[DEFAULT_DB_ALIAS].vendor == "postgresql"


@contextmanager
def _cursor(statement: Statement) -> Iterator[tuple[Any, str]]:
    """A cursor for one statement, and the statement's text for this backend. A failure inside an atomic
    block marks it for rollback, as the ORM's writes do, and is Django's database error (IntegrityError,
    OperationalError), as through Django's cursor. On PostgreSQL, the cursor the connection keeps for
    that text (`DatabaseWrapper.door_cursor`), unless Django logs the queries (DEBUG, a test counting
    them): then Django's, which logs them."""
    database = connections[DEFAULT_DB_ALIAS]  # the thread's connection, looked up once
    sql = text(statement)
    with transaction.mark_for_rollback_on_error():
        door_cursor = getattr(database, "door_cursor", None)
        if door_cursor is None or database.queries_logged:
            with database.cursor() as cursor:
                yield cursor, sql
            return
        database.validate_no_broken_transaction()
        # Interned: psycopg reuses a cursor's adapters only for the very same text object.
        sql = sys.intern(sql)
        with database.wrap_database_errors:
            yield door_cursor(sql), sql


def execute(statement: Statement, params: Sequence[Any] = ()) -> int:
    """Runs a statement that answers no rows; returns the rows it changed."""
    with _cursor(statement) as (cursor, sql):
        cursor.execute(sql, params)
        return cursor.rowcount


def fetch_one(statement: Statement, params: Sequence[Any] = ()) -> tuple | None:
    with _cursor(statement) as (cursor, sql):
        cursor.execute(sql, params)
        return cursor.fetchone()


def fetch_all(statement: Statement, params: Sequence[Any] = ()) -> list[tuple]:
    with _cursor(statement) as (cursor, sql):
        cursor.execute(sql, params)
        return cursor.fetchall()


def together(statements: Sequence[tuple[str, Sequence[Any]]], *, returning: bool = False) -> list[tuple]:
    """Runs INSERT statements as one unit; with `returning`, answers the rows the last one returns (its
    RETURNING clause). PostgreSQL: one statement, one round trip (`WITH s0 AS (INSERT ...), s1 AS (INSERT ...)
    INSERT ...`: each part runs once and to completion, and a foreign key between them is checked at
    the statement's end). SQLite, whose WITH takes no INSERT: one after the other, in the caller's
    transaction."""
    *first, (sql, params) = statements
    if first and is_postgresql():
        parts = ", ".join(f"s{index} AS ({part})" for index, (part, _) in enumerate(first))
        sql, params = f"WITH {parts} {sql}", [value for _, values in first for value in values] + list(params)
    else:
        for part, values in first:
            execute(part, values)
    if returning:
        return fetch_all(sql, params)
    execute(sql, params)
    return []


def columns(model: type[models.Model]) -> str:
    """The model's columns, listed, for a statement that answers whole rows (`instances`). Never `*`:
    PostgreSQL re-plans a prepared statement after a migration, but refuses a plan whose result has
    changed shape ("cached plan must not change result type"), so a rolling deploy's new column would
    fail the old release's `SELECT *` on every connection that had prepared it."""
    return ", ".join(field.column for field in model._meta.concrete_fields)


def instances(model: type[_Model], statement: Statement, params: Sequence[Any] = ()) -> list[_Model]:
    """The model's rows a statement answers (its `columns`), as instances, each field's value through
    its database converters (SQLite's text date-times and JSON) as a raw queryset gives them; a column
    that is no field of the model (a flag the statement adds) becomes an attribute of that name. Made
    with `Model.from_db`, not `Manager.raw`, whose queryset costs about 0.1 ms of CPU a call (run 6 in
    tools/bench/REPORT.md)."""
    with _cursor(statement) as (cursor, sql):
        cursor.execute(sql, params)
        reader = _RowReader.of(model, sql, cursor)
        return [cast(_Model, reader.instance(row)) for row in cursor.fetchall()]


def instance(model: type[_Model], statement: Statement, params: Sequence[Any] = ()) -> _Model | None:
    """The one row a statement answers (a key's, a LIMIT 1), as an instance; None without one."""
    found = instances(model, statement, params)
    return found[0] if found else None


@dataclass(frozen=True)
class _RowReader:
    """How one statement's rows become `model` instances: which columns are which fields, with their
    converters, and which are extra attributes. One per model and statement text, kept: the text names its
    columns (`columns`, never `*`), and the backend is the process's (`is_postgresql`)."""

    model: type[models.Model]
    attnames: list[str]  # the fields' attnames, in the model's order
    positions: list[int]  # where each field's column is in a row
    converters: list[tuple[int, list, Any]]  # (position, converters, column expression) of fields that have some
    extras: list[tuple[str, int]]  # (name, position) of columns that are no field

    _kept: ClassVar[dict[tuple, _RowReader]] = {}

    @classmethod
    def of(cls, model: type[models.Model], sql: str, cursor: Any) -> _RowReader:
        """The reader of `sql`'s rows, which `cursor` has just answered. Only a statement not seen yet reads
        the cursor's description, which psycopg builds anew on each access (about 15 µs for a loan's row)."""
        key = (model, sql)
        reader = cls._kept.get(key)
        if reader is None:
            names = tuple(column[0] for column in cursor.description)
            reader = cls._kept[key] = cls._made(model, names)
        return reader

    @classmethod
    def _made(cls, model: type[models.Model], names: tuple[str, ...]) -> _RowReader:
        # In the model's field order, which `from_db` expects (a field the statement leaves out is deferred).
        position_of = {name: position for position, name in enumerate(names)}
        attnames, positions, converters = [], [], []
        for field in model._meta.concrete_fields:
            position = position_of.pop(field.column, None)
            if position is None:
                continue
            attnames.append(field.attname)
            positions.append(position)
            column = field.get_col(model._meta.db_table)
            found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
            if found:
                converters.append((position, found, column))
        return cls(model, attnames, positions, converters, extras=list(position_of.items()))

    def instance(self, row: Sequence[Any]) -> models.Model:
        values = list(row)
        for position, converters, column in self.converters:
            for convert in converters:
                values[position] = convert(values[position], column, connection)
        made = self.model.from_db(connection.alias, self.attnames, [values[p] for p in self.positions])
        for name, position in self.extras:
            setattr(made, name, values[position])
        return made


def instances_from_json(model: type[_Model], rows: list[dict[str, Any]]) -> list[_Model]:
    """The model's rows a statement answered as JSON objects keyed by column (PostgreSQL's `json_agg`
    of a row, SQLite's `json_object`), as instances: date-times and decimals read back from their JSON
    text, JSON columns already decoded."""
    if not rows:
        return []  # a lend's usual holds and blocks: none
    fields = model._meta.concrete_fields
    names = [field.attname for field in fields]
    return [
        model.from_db(connection.alias, names, [_from_json(field, row[field.column]) for field in fields])
        for row in rows
    ]


def _from_json(field: models.Field, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(field, models.DateTimeField):
        return read_datetime(value)
    if isinstance(field, models.DecimalField):
        return Decimal(str(value))
    return value


def db_datetime(value: datetime | None) -> Any:
    """A date-time as the backend stores it: PostgreSQL takes it as is, SQLite as UTC text."""
    if value is None or is_postgresql():
        return value
    return connection.ops.adapt_datetimefield_value(value)


def db_json(value: Any, encoder: type[json.JSONEncoder] = DjangoJSONEncoder) -> Any:
    """A JSON column's value as the backend takes it (None stays SQL NULL)."""
    return None if value is None else connection.ops.adapt_json_value(value, encoder)


def read_json(value: Any) -> Any:
    """A JSON value a statement answered outside a model's column: SQLite answers text."""
    return json.loads(value) if isinstance(value, str) else value


def read_datetime(value: Any) -> datetime | None:
    """A date-time a statement answered outside a model's column (an aggregate): SQLite answers its
    stored UTC text, PostgreSQL an aware date-time."""
    if value is None or isinstance(value, datetime):
        return value
    parsed = parse_datetime(value)
    if parsed is None:
        raise ValueError(f"not a date-time: {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
