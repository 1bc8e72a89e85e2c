"""NOTICE_DIGEST: a scheduled notice can be recorded and wait for its patron's digest.

Expand-only, safe during a rolling deploy: the new column has a database default (the previous
release inserts notices without it; on PostgreSQL 11+ adding it is catalog-only, no table rewrite),
and the partial index of the waiting notices is built CONCURRENTLY on PostgreSQL (so the migration is
not atomic), while the scheduler keeps inserting notices.
"""

import importlib

from django.db import migrations, models

# The concurrent AddIndex written for 0007, used again rather than copied.
AddIndexConcurrentlyOnPostgres = importlib.import_module(
    "lending.migrations.0007_privacy_indexes_and_desk_group"
).AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("lending", "0011_event_kind_due_date_changed"),
    ]

    operations = [
        migrations.AddField(
            model_name="loannotice",
            name="awaiting_digest",
            field=models.BooleanField(db_default=False, default=False),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="loannotice",
            index=models.Index(
                condition=models.Q(("awaiting_digest", True)), fields=["loan"], name="notices_awaiting_digest"
            ),
        ),
    ]
