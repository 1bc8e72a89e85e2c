"""Issue 23: loans and holds name the copy (`item_barcode`).

Expand-only, safe during a rolling deploy: two nullable columns (the previous release inserts loans
and holds without them: NULL, a title-level loan or an untrapped hold; catalog-only on PostgreSQL),
and two partial unique indexes built CONCURRENTLY on PostgreSQL (so the migration is not atomic),
while lends and returns keep writing:
- at most one open loan per barcode (`one_open_loan_per_item_barcode`);
- at most one READY hold trapping a barcode (`one_ready_hold_per_item_barcode`).
"""

from django.db import migrations, models


class AddUniqueConstraintConcurrentlyOnPostgres(migrations.AddConstraint):
    """A partial unique constraint is a unique index: CREATE UNIQUE INDEX CONCURRENTLY on PostgreSQL,
    Django's own statement elsewhere (SQLite, one writer)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            statement = str(self.constraint.create_sql(model, schema_editor))
            assert statement.startswith("CREATE UNIQUE INDEX "), statement
            schema_editor.execute(statement.replace("CREATE UNIQUE INDEX ", "CREATE UNIQUE INDEX CONCURRENTLY ", 1))


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("lending", "0014_apikeyscopes_patron_email"),
    ]

    operations = [
        migrations.AddField(
            model_name="hold",
            name="item_barcode",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name="loan",
            name="item_barcode",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        AddUniqueConstraintConcurrentlyOnPostgres(
            model_name="hold",
            constraint=models.UniqueConstraint(
                condition=models.Q(("item_barcode__isnull", False), ("status", "READY")),
                fields=("item_barcode",),
                name="one_ready_hold_per_item_barcode",
            ),
        ),
        AddUniqueConstraintConcurrentlyOnPostgres(
            model_name="loan",
            constraint=models.UniqueConstraint(
                condition=models.Q(("date_returned__isnull", True), ("item_barcode__isnull", False)),
                fields=("item_barcode",),
                name="one_open_loan_per_item_barcode",
            ),
        ),
    ]
