"""Issue 14 item 4: a rolling deploy never breaks the running release.

During a rollout the new migrations are applied while pods of the previous release still serve. So the
previous release's writes must succeed against the latest schema: every column a new migration adds
is nullable or has a database default (an INSERT that does not name it still works), nothing the old
code writes is renamed or dropped in the same release.

The previous releases' INSERTs are rebuilt from the migration graph: the models as they stood before
each migration since 0004 (the code of that release wrote exactly their fields), saved into the
latest schema. The outbox INSERT of the release before 0005 is also kept verbatim, as that release's
code issued it (commit 81ace51): it is the write that failed after 0005 (`claims` NULL).
When a contract migration finally drops a column, the releases that still wrote it are gone from
production: remove their states from PREVIOUS_RELEASES in that change.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def _lending_migrations() -> list[str]:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return [name for app, name in loader.graph.forwards_plan(_latest(loader)) if app == "lending"]


def _latest(loader: MigrationLoader) -> tuple[str, str]:
    (leaf,) = loader.graph.leaf_nodes("lending")
    return leaf


# The release before each migration since 0004, each as the state its code knew.
PREVIOUS_RELEASES = [name for name in _lending_migrations() if name >= "0004"][:-1]

# The outbox INSERT of the release before 0005, as its code issued it (all its model's fields but the id).
OUTBOX_INSERT_BEFORE_0005 = """
    INSERT INTO "lending_outboxmessage"
        ("key", "kind", "book_id", "payload", "status", "attempts", "next_attempt_at", "last_error",
         "created_at", "delivered_at")
    VALUES (%s, 'notification', 7, '{"message_type": "lending_confirmation"}', 'PENDING', 0, %s, '', %s, NULL)
    RETURNING "id"
"""


def test_the_database_is_at_the_latest_migration():
    executor = MigrationExecutor(connection)
    assert executor.migration_plan(executor.loader.graph.leaf_nodes()) == [], "the test database is not migrated"


def test_the_outbox_insert_of_the_release_before_0005_still_works():
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(OUTBOX_INSERT_BEFORE_0005, [str(uuid.uuid4()), now, now])
        (pk,) = cursor.fetchone()
        cursor.execute('SELECT "claims" FROM "lending_outboxmessage" WHERE "id" = %s', [pk])
        assert cursor.fetchone() == (0,), "the new column's database default fills it"


def _rows_of_the_release(apps) -> list:
    """One row per table the service writes, built with the models of that release."""
    now = timezone.now()
    email = f"old-release-{uuid.uuid4().hex[:8]}@example.com"
    rows = []
    model_names = {model.__name__ for model in apps.get_app_config("lending").get_models()}
    if "BookStock" in model_names:
        rows.append(apps.get_model("lending", "BookStock")(book_id=900_000 + uuid.uuid4().int % 99_999, copies=1))
    Loan = apps.get_model("lending", "Loan")
    loan = Loan(user_email=email, book_id=7, date_borrowed=now, date_due=now + timedelta(days=60))
    rows.append(loan)
    if "Hold" in model_names:
        rows.append(apps.get_model("lending", "Hold")(user_email=email, book_id=8, date_reserved=now))
    rows.append(
        apps.get_model("lending", "OutboxMessage")(
            kind="notification", book_id=7, payload={"message_type": "lending_confirmation"}, next_attempt_at=now
        )
    )
    rows.append(
        apps.get_model("lending", "IdempotencyRecord")(
            key=f"old-release-{uuid.uuid4()}", fingerprint="0" * 64, expires_at=now + timedelta(hours=24)
        )
    )
    return rows


@pytest.mark.parametrize("release", PREVIOUS_RELEASES)
def test_the_previous_release_s_writes_work_on_the_latest_schema(release):
    """`release` names the migration the previous release's code was written against."""
    apps = MigrationLoader(None).project_state(("lending", release)).apps
    for row in _rows_of_the_release(apps):
        row.save(force_insert=True)
        assert row.pk is not None
    if "LoanNotice" in {m.__name__ for m in apps.get_app_config("lending").get_models()}:
        loan = apps.get_model("lending", "Loan").objects.latest("id")
        apps.get_model("lending", "LoanNotice").objects.create(loan_id=loan.pk, notice_type="due_soon_reminder")
