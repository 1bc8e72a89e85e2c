"""Fines and fees (`lending.fines`): the assessments, the loan's overdue fine so far, and the new kinds of
event (`fine_assessed`) and outbox message (`fee`). New table and nullable columns; the kinds' choices
change no column: the previous release keeps running during a rolling deploy."""

import uuid

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("lending", "0017_circulation_rules"),
    ]

    operations = [
        migrations.AddField(
            model_name="loan",
            name="fine_amount",
            field=models.DecimalField(blank=True, decimal_places=2, max_digits=10, null=True),
        ),
        migrations.AddField(
            model_name="loan",
            name="fine_days_charged",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="event",
            name="kind",
            field=models.CharField(
                choices=[
                    ("lent", "Lent"),
                    ("renewed", "Renewed"),
                    ("returned", "Returned"),
                    ("marked_overdue", "Marked Overdue"),
                    ("notice_queued", "Notice Queued"),
                    ("reserved", "Reserved"),
                    ("cancelled", "Cancelled"),
                    ("hold_ready", "Hold Ready"),
                    ("hold_fulfilled", "Hold Fulfilled"),
                    ("hold_expired", "Hold Expired"),
                    ("anonymised", "Anonymised"),
                    ("due_date_changed", "Due Date Changed"),
                    ("declared_lost", "Declared Lost"),
                    ("claimed_returned", "Claimed Returned"),
                    ("resolved", "Resolved"),
                    ("fine_assessed", "Fine Assessed"),
                ],
                max_length=32,
            ),
        ),
        migrations.AlterField(
            model_name="outboxmessage",
            name="kind",
            field=models.CharField(
                choices=[
                    ("availability", "Availability"),
                    ("notification", "Notification"),
                    ("event", "Event"),
                    ("fee", "Fee"),
                ],
                max_length=16,
            ),
        ),
        migrations.CreateModel(
            name="FineAssessment",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("overdue", "Overdue"),
                            ("lost_item", "Lost Item"),
                            ("processing", "Processing"),
                            ("refund", "Refund"),
                        ],
                        max_length=16,
                    ),
                ),
                ("amount", models.DecimalField(decimal_places=2, max_digits=10)),
                ("currency", models.CharField(max_length=3)),
                ("days_charged", models.PositiveIntegerField(default=0)),
                ("assessed_at", models.DateTimeField()),
                ("judged_at", models.DateTimeField()),
                (
                    "loan",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="fines", to="lending.loan"
                    ),
                ),
            ],
            options={
                "ordering": ["assessed_at", "id"],
                "indexes": [models.Index(fields=["loan", "kind"], name="fines_by_loan")],
            },
        ),
    ]
