"""The partial indexes `anonymize_loans` walks, and the staff "desk" group.

On PostgreSQL the indexes are built CONCURRENTLY (so the migration is not atomic): lends and returns
keep writing loans while they build, however many loans there are.

The desk group may view loans, holds, their history and the outbox, and replay dead letters (the
outbox's change permission, which only the replay action uses). It gets no permission on API keys:
only superusers manage those (lending.staff_auth).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations, models

DESK_GROUP = "desk"
DESK_PERMISSIONS = [
    ("lending", "view_loan"),
    ("lending", "view_hold"),
    ("lending", "view_event"),
    ("lending", "view_outboxmessage"),
    ("lending", "change_outboxmessage"),
]


class AddIndexConcurrentlyOnPostgres(migrations.AddIndex):
    """CREATE INDEX CONCURRENTLY on PostgreSQL; a plain CREATE INDEX elsewhere (SQLite, one writer)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.add_index(model, self.index, concurrently=True)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.remove_index(model, self.index, concurrently=True)


def create_desk_group(apps, schema_editor):
    # Permissions are normally created after the whole `migrate` run; this one needs them now.
    lending = apps.get_app_config("lending")
    lending.models_module = True
    create_permissions(lending, apps=apps, verbosity=0)
    lending.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    group, _ = group_model.objects.get_or_create(name=DESK_GROUP)
    for app_label, codename in DESK_PERMISSIONS:
        permission = permission_model.objects.filter(content_type__app_label=app_label, codename=codename).first()
        if permission is not None:
            group.permissions.add(permission)


def remove_desk_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=DESK_GROUP).delete()


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("lending", "0006_scopes_and_events"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="hold",
            index=models.Index(
                condition=models.Q(
                    ("date_closed__isnull", False),
                    models.Q(("user_email__endswith", "@anonymised.invalid"), _negated=True),
                ),
                fields=["date_closed", "id"],
                name="holds_to_anonymise",
            ),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="loan",
            index=models.Index(
                condition=models.Q(
                    ("date_returned__isnull", False),
                    models.Q(("user_email__endswith", "@anonymised.invalid"), _negated=True),
                ),
                fields=["date_returned", "id"],
                name="loans_to_anonymise",
            ),
        ),
        migrations.RunPython(create_desk_group, remove_desk_group),
    ]
