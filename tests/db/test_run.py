"""lending/db/run.py: the helpers every hand-written statement runs through, on both databases."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from lending.db import run
from lending.models import Loan

pytestmark = pytest.mark.django_db


def test_a_datetime_goes_in_and_comes_back_the_same_on_either_backend():
    moment = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=timezone(timedelta(hours=2)))
    [(answered,)] = run.fetch_all("SELECT %s", [run.db_datetime(moment)])
    assert run.read_datetime(answered) == moment


def test_read_datetime_refuses_what_is_not_a_datetime():
    with pytest.raises(ValueError, match="not a date-time"):
        run.read_datetime("yesterday")
    assert run.read_datetime(None) is None


def test_variants_pick_this_backends_text():
    both = run.Variants(postgresql="SELECT 'pg'", sqlite="SELECT 'sqlite'")
    [(answered,)] = run.fetch_all(both)
    assert answered == ("pg" if run.is_postgresql() else "sqlite")


def test_instances_convert_each_column_as_the_orm_does():
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    loan = Loan.objects.create(
        user_email="a@example.com",
        book_id=1,
        date_borrowed=now,
        date_due=now + timedelta(days=3),
        policy_terms={"loan_days": 3},
    )
    [read] = run.instances(Loan, "SELECT * FROM lending_loan WHERE id = %s", [loan.pk])
    assert (read.pk, read.date_due, read.policy_terms) == (loan.pk, loan.date_due, {"loan_days": 3})


def test_instances_are_the_orms_whatever_the_column_order_with_extra_columns_as_attributes():
    now = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    loan = Loan.objects.create(
        user_email="d@example.com",
        book_id=4,
        date_borrowed=now,
        date_due=now + timedelta(days=3),
        date_returned=now + timedelta(days=1),
        status="RETURNED",
        policy_terms={"loan_days": 3, "fine_per_day": "0.25"},
        fine_amount=Decimal("1.50"),
    )
    listed = [field.column for field in Loan._meta.concrete_fields]
    reversed_with_flag = f"SELECT 1 = 1 AS flagged, {', '.join(reversed(listed))} FROM lending_loan WHERE id = %s"
    [read] = run.instances(Loan, reversed_with_flag, [loan.pk])
    expected = Loan.objects.get(pk=loan.pk)
    for field in Loan._meta.concrete_fields:
        assert getattr(read, field.attname) == getattr(expected, field.attname), field.name
    assert read.flagged in (True, 1)  # SQLite answers its booleans as integers
    assert not read._state.adding  # a saved row, as the ORM's

    [partial] = run.instances(Loan, "SELECT id, date_due FROM lending_loan WHERE id = %s", [loan.pk])
    assert partial.date_due == expected.date_due
    assert partial.get_deferred_fields() == {f.attname for f in Loan._meta.concrete_fields} - {"id", "date_due"}


def test_execute_answers_the_rows_changed():
    now = datetime(2026, 1, 2, tzinfo=UTC)
    Loan.objects.create(user_email="b@example.com", book_id=2, date_borrowed=now, date_due=now)
    assert run.execute("UPDATE lending_loan SET book_title = %s WHERE book_id = %s", ["T", 2]) == 1
    assert run.execute("UPDATE lending_loan SET book_title = %s WHERE book_id = %s", ["T", 999]) == 0


def test_together_writes_every_part_and_answers_the_last_ones_rows():
    """A parent row and a child naming it in one unit (one statement on PostgreSQL): both there, the
    child's RETURNING answered."""
    now = datetime(2026, 1, 2, tzinfo=UTC)
    loan_id = 4242
    rows = run.together(
        [
            (
                "INSERT INTO lending_loan (id, user_email, book_id, book_title, date_borrowed, date_due, status,"
                " renewals, loan_policy) VALUES (%s, %s, %s, '', %s, %s, 'ACTIVE', 0, '')",
                [loan_id, "c@example.com", 3, run.db_datetime(now), run.db_datetime(now)],
            ),
            (
                "INSERT INTO lending_event (loan_id, kind, occurred_at, caller, caller_key_prefix, request_id,"
                " reason, data, sequence) VALUES (%s, 'lent', %s, 'system', '', '', '', %s, 1) RETURNING loan_id",
                [loan_id, run.db_datetime(now), run.db_json({})],
            ),
        ],
        returning=True,
    )
    assert rows == [(loan_id,)]
    assert Loan.objects.get(pk=loan_id).events.count() == 1


def test_together_is_all_or_nothing_inside_the_callers_transaction():
    from django.db import IntegrityError, transaction

    now = datetime(2026, 1, 2, tzinfo=UTC)
    insert = (
        "INSERT INTO lending_loan (id, user_email, book_id, book_title, date_borrowed, date_due, status,"
        " renewals, loan_policy) VALUES (%s, %s, %s, '', %s, %s, 'ACTIVE', 0, '')"
    )
    values = [run.db_datetime(now), run.db_datetime(now)]
    with pytest.raises(IntegrityError), transaction.atomic():
        # The same patron's second open loan of a book: the last part breaks the constraint.
        run.together([(insert, [5001, "d@example.com", 9, *values]), (insert, [5002, "d@example.com", 9, *values])])
    assert not Loan.objects.filter(pk__in=[5001, 5002]).exists()


# --- The cursor the statements run on (PostgreSQL: psycopg's, kept by the connection) ---------------------


def _open_loan_row(email: str) -> list:
    now = run.db_datetime(datetime(2026, 1, 2, tzinfo=UTC))
    return [email, 1, "T", now, now, "ACTIVE", 0]


INSERT_OPEN_LOAN = (
    "INSERT INTO lending_loan (user_email, book_id, book_title, date_borrowed, date_due, status, renewals) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s)"
)


def test_a_statement_that_breaks_a_constraint_is_djangos_integrity_error_and_dooms_the_transaction():
    from django.db import IntegrityError, transaction
    from django.db.transaction import TransactionManagementError

    run.execute(INSERT_OPEN_LOAN, _open_loan_row("twice@example.com"))
    with pytest.raises(IntegrityError), transaction.atomic():  # one open loan per patron and book
        try:
            run.execute(INSERT_OPEN_LOAN, _open_loan_row("twice@example.com"))
        finally:
            assert transaction.get_connection().needs_rollback  # as after a failed ORM write
            with pytest.raises(TransactionManagementError):  # the block is broken: nothing more runs in it
                run.fetch_one("SELECT 1")
    assert run.fetch_one("SELECT count(*) FROM lending_loan WHERE user_email = %s", ["twice@example.com"]) == (1,)


def test_statements_are_in_djangos_query_log_when_it_keeps_one():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        run.fetch_one("SELECT %s", [41])
        run.fetch_all("SELECT %s", [42])
    assert [query["sql"] for query in queries.captured_queries] == ["SELECT 41", "SELECT 42"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # the connection is closed: no test transaction around it
def test_a_kept_cursor_is_left_for_a_new_connection():
    from django.db import connection

    run.fetch_one("SELECT 1")
    kept = connection.door_cursor("SELECT 1")
    assert connection.door_cursor("SELECT 1") is kept  # one cursor per statement text, for the connection's life
    assert connection.door_cursor("SELECT 2") is not kept
    connection.close()

    assert run.fetch_one("SELECT 2") == (2,)
    renewed = connection.door_cursor("SELECT 1")
    assert renewed is not kept and renewed.connection is connection.connection


@pytest.mark.postgres
@pytest.mark.django_db
def test_kept_cursors_are_bounded_and_a_statement_built_anew_finds_its_cursor():
    from django.db import connection

    from lending.db.postgresql.base import MAX_DOOR_CURSORS

    built = ", ".join(["(%s)"] * 3)  # a text built per call, as a batch insert's is: equal, not the same object
    first = connection.door_cursor(sys.intern(f"SELECT * FROM (VALUES {built}) v"))
    assert connection.door_cursor(sys.intern(f"SELECT * FROM (VALUES {built}) v")) is first
    assert run.fetch_all(f"SELECT * FROM (VALUES {built}) v", [1, 2, 3]) == [(1,), (2,), (3,)]
    for size in range(MAX_DOOR_CURSORS + 1):
        run.fetch_one(f"SELECT {size}")
    assert len(connection._door_cursors) <= MAX_DOOR_CURSORS  # noqa: SLF001 - the bound itself


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_kept_cursor_reads_date_times_with_the_compiled_reader_as_django_reads_them():
    from django.db import connection
    from psycopg import pq

    from lending.db.postgresql.base import COMPILED_TIMESTAMPTZ_LOADER

    statement = "SELECT %s::timestamptz, %s::timestamptz"
    moments = [datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC), datetime(1999, 12, 31, 23, 59, tzinfo=UTC)]
    with connection.cursor() as cursor:  # Django's, with Django's reader
        cursor.execute(statement, moments)
        through_django = cursor.fetchone()
    assert run.fetch_one(statement, moments) == through_django == tuple(moments)
    assert all(value.tzinfo is UTC for value in [*through_django, *run.fetch_one(statement, moments)])
    oid = connection.connection.adapters.types["timestamptz"].oid
    kept = connection.door_cursor(statement)
    assert kept.adapters.get_loader(oid, pq.Format.TEXT) is COMPILED_TIMESTAMPTZ_LOADER
    # Django's own cursors keep Django's reader, which Django checks for its time zone.
    assert connection.connection.adapters.get_loader(oid, pq.Format.TEXT).timezone is UTC


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # the session's time zone is changed: no test transaction around it
def test_a_session_in_another_time_zone_keeps_djangos_reader():
    from django.db import connection
    from psycopg import pq

    from lending.db.postgresql.base import COMPILED_TIMESTAMPTZ_LOADER

    run.fetch_one("SELECT 1")
    try:
        connection.connection.execute("SET TIME ZONE 'Europe/Paris'")
        statement = "SELECT %s::timestamptz AS in_paris"
        moment = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
        with connection.cursor() as cursor:
            cursor.execute(statement, [moment])
            through_django = cursor.fetchone()
        assert run.fetch_one(statement, [moment]) == through_django  # whatever Django makes of such a session
        oid = connection.connection.adapters.types["timestamptz"].oid
        assert connection.door_cursor(statement).adapters.get_loader(oid, pq.Format.TEXT) is not (
            COMPILED_TIMESTAMPTZ_LOADER
        )
    finally:
        connection.close()
