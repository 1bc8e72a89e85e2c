"""The partial indexes `anonymize_loans` walks, and the staff "desk" group.

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
    dependencies = [
        ("lending", "0006_scopes_and_events"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AddIndex(
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
        migrations.AddIndex(
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
