"""A scratch PostgreSQL database for one run: created (after dropping a leftover of the same name), migrated
on request, and dropped at the end even while connections are open (WITH (FORCE))."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import psycopg

ADMIN_URL = os.environ.get("HARNESS_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def url_of(name: str, admin_url: str = ADMIN_URL) -> str:
    """The URL of database `name` on the server of `admin_url`, with the same credentials."""
    admin = psycopg.conninfo.conninfo_to_dict(admin_url)
    password = f":{admin['password']}" if admin.get("password") else ""
    host, port = admin.get("host", "127.0.0.1"), admin.get("port", 5432)
    return f"postgres://{admin.get('user', 'postgres')}{password}@{host}:{port}/{name}"


def scalar(url: str, sql: str, params: tuple = ()) -> Any:
    """The first column of the first row `sql` answers on database `url` (autocommit)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(sql, params).fetchone()
    if row is None:
        raise LookupError(f"no row for {sql!r}")
    return row[0]


class ScratchDatabase:
    """`with ScratchDatabase("lending_bench") as db:` — db.url names it; dropped on exit unless `keep`."""

    def __init__(self, name: str, admin_url: str = ADMIN_URL, keep: bool = False) -> None:
        self.name, self.admin_url, self.keep = name, admin_url, keep
        self.url = url_of(name, admin_url)

    def create(self) -> ScratchDatabase:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.name}"')
        return self

    def drop(self) -> None:
        if self.keep:
            return
        with contextlib.suppress(Exception):  # Django's own connections in this process, if any
            from django.db import connections

            connections.close_all()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def __enter__(self) -> ScratchDatabase:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.drop()
