"""The desk's own permission (`lending.circulate_at_desk`: the admin's check-out and check-in pages),
given to the staff "desk" group, whose members could otherwise only view loans. Permissions and group
memberships only: no table changes, safe during a rolling deploy."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

DESK_GROUP = "desk"
DESK_CODENAME = "circulate_at_desk"


def give_the_desk_group_the_desk(apps, schema_editor):
    # Permissions are normally created after the whole `migrate` run; this one needs its own now.
    lending = apps.get_app_config("lending")
    lending.models_module = True
    create_permissions(lending, apps=apps, verbosity=0)
    lending.models_module = None
    permission = apps.get_model("auth", "Permission").objects.get(
        content_type__app_label="lending", codename=DESK_CODENAME
    )
    group, _ = apps.get_model("auth", "Group").objects.get_or_create(name=DESK_GROUP)
    group.permissions.add(permission)


def take_the_desk_back(apps, schema_editor):
    group = apps.get_model("auth", "Group").objects.filter(name=DESK_GROUP).first()
    permission = (
        apps.get_model("auth", "Permission")
        .objects.filter(content_type__app_label="lending", codename=DESK_CODENAME)
        .first()
    )
    if group is not None and permission is not None:
        group.permissions.remove(permission)


class Migration(migrations.Migration):
    dependencies = [("lending", "0015_item_barcodes"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [
        migrations.AlterModelOptions(
            name="loan",
            options={"permissions": [("circulate_at_desk", "Can check items out and in at the desk")]},
        ),
        migrations.RunPython(give_the_desk_group_the_desk, take_the_desk_back),
    ]
