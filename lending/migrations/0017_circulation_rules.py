"""Circulation rules: named loan policies and the rules matrix (`lending.circulation_rules`).

Seeds the `default` policy from the environment of the release that runs it (LOAN_PERIOD_DAYS,
LOAN_MAX_RENEWALS, LOAN_MAX_ACTIVE_PER_PATRON) and the fallback rule naming it, so a deployment that
never edits the rules lends as before. New tables and nullable (or db_default) columns only: the
previous release keeps running during a rolling deploy.
"""

from decimal import Decimal

import django.core.validators
import django.db.models.deletion
import django.db.models.functions.comparison
from django.db import migrations, models


def seed_default_policy(apps, schema_editor):
    from django.conf import settings

    LoanPolicy = apps.get_model("lending", "LoanPolicy")
    policy, _ = LoanPolicy.objects.get_or_create(
        name="default",
        defaults={
            "loan_days": settings.LOAN_PERIOD_DAYS,
            "renewals_max": settings.LOAN_MAX_RENEWALS,
            "renewal_days": settings.LOAN_PERIOD_DAYS,
            "max_loans": settings.LOAN_MAX_ACTIVE_PER_PATRON,
            "updated_by": "system:migration",
        },
    )
    apps.get_model("lending", "CirculationRule").objects.get_or_create(
        patron_category=None, item_type=None, defaults={"loan_policy": policy}
    )
    apps.get_model("lending", "RulebookVersion").objects.get_or_create(id=1, defaults={"version": "seed"})


class Migration(migrations.Migration):
    dependencies = [
        ("lending", "0016_desk_permission"),
    ]

    operations = [
        migrations.CreateModel(
            name="LoanPolicy",
            fields=[
                ("name", models.SlugField(max_length=64, primary_key=True, serialize=False)),
                (
                    "loan_days",
                    models.PositiveIntegerField(
                        help_text="A loan is due at the end of the open day this many days out.",
                        validators=[
                            django.core.validators.MinValueValidator(1),
                            django.core.validators.MaxValueValidator(3650),
                        ],
                    ),
                ),
                (
                    "renewals_max",
                    models.PositiveIntegerField(
                        default=0,
                        help_text="Renewals allowed per loan.",
                        validators=[django.core.validators.MaxValueValidator(100)],
                    ),
                ),
                (
                    "renewal_days",
                    models.PositiveIntegerField(
                        help_text="Each renewal moves the due date this many days on.",
                        validators=[
                            django.core.validators.MinValueValidator(1),
                            django.core.validators.MaxValueValidator(3650),
                        ],
                    ),
                ),
                (
                    "max_loans",
                    models.PositiveIntegerField(
                        blank=True,
                        help_text="Open loans the patron may hold that the matched rule covers (all of them for a rule without item type, those of its type otherwise); empty: no limit.",
                        null=True,
                        validators=[django.core.validators.MaxValueValidator(10000)],
                    ),
                ),
                ("holds_allowed", models.BooleanField(default=True, help_text="Patrons may reserve titles under it.")),
                (
                    "loanable",
                    models.BooleanField(default=True, help_text="False for reference copies: they do not leave."),
                ),
                (
                    "fine_per_day",
                    models.DecimalField(
                        decimal_places=2,
                        default=Decimal("0.00"),
                        max_digits=8,
                        validators=[
                            django.core.validators.MinValueValidator(Decimal("0.00")),
                            django.core.validators.MaxValueValidator(Decimal("99999.99")),
                        ],
                    ),
                ),
                (
                    "fine_grace_days",
                    models.PositiveIntegerField(
                        default=0,
                        help_text="Late by this many days or fewer: no fine; beyond, the whole late period counts.",
                        validators=[django.core.validators.MaxValueValidator(3650)],
                    ),
                ),
                (
                    "fine_max",
                    models.DecimalField(
                        blank=True,
                        decimal_places=2,
                        help_text="Empty: no cap.",
                        max_digits=8,
                        null=True,
                        validators=[
                            django.core.validators.MinValueValidator(Decimal("0.00")),
                            django.core.validators.MaxValueValidator(Decimal("99999.99")),
                        ],
                    ),
                ),
                (
                    "fine_counts_closed_days",
                    models.BooleanField(default=True, help_text="Days the library is closed count as late."),
                ),
                (
                    "lost_item_fee",
                    models.DecimalField(
                        decimal_places=2,
                        default=Decimal("0.00"),
                        max_digits=8,
                        validators=[
                            django.core.validators.MinValueValidator(Decimal("0.00")),
                            django.core.validators.MaxValueValidator(Decimal("99999.99")),
                        ],
                    ),
                ),
                (
                    "lost_processing_fee",
                    models.DecimalField(
                        decimal_places=2,
                        default=Decimal("0.00"),
                        max_digits=8,
                        validators=[
                            django.core.validators.MinValueValidator(Decimal("0.00")),
                            django.core.validators.MaxValueValidator(Decimal("99999.99")),
                        ],
                    ),
                ),
                (
                    "refund_lost_on_return",
                    models.BooleanField(default=True, help_text="A lost item found refunds its fee."),
                ),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("updated_by", models.CharField(blank=True, default="", max_length=200)),
            ],
            options={
                "verbose_name": "loan policy",
                "verbose_name_plural": "loan policies",
                "ordering": ["name"],
            },
        ),
        migrations.CreateModel(
            name="RulebookVersion",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("version", models.CharField(default="seed", max_length=32)),
            ],
        ),
        migrations.CreateModel(
            name="RulesChange",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("at", models.DateTimeField(auto_now_add=True)),
                ("changed_by", models.CharField(max_length=200)),
                ("subject", models.CharField(max_length=100)),
                ("action", models.CharField(max_length=20)),
                ("before", models.JSONField(blank=True, null=True)),
                ("after", models.JSONField(blank=True, null=True)),
            ],
            options={
                "ordering": ["-at", "-id"],
            },
        ),
        migrations.AddField(
            model_name="loan",
            name="item_type",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name="loan",
            name="loan_policy",
            field=models.CharField(blank=True, db_default="", default="", max_length=64),
        ),
        migrations.AddField(
            model_name="loan",
            name="policy_terms",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name="CirculationRule",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("patron_category", models.CharField(blank=True, max_length=64, null=True)),
                ("item_type", models.CharField(blank=True, max_length=64, null=True)),
                (
                    "loan_policy",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="rules", to="lending.loanpolicy"
                    ),
                ),
            ],
            options={
                "ordering": ["id"],
                "constraints": [
                    models.UniqueConstraint(
                        django.db.models.functions.comparison.Coalesce("patron_category", models.Value("")),
                        django.db.models.functions.comparison.Coalesce("item_type", models.Value("")),
                        name="one_rule_per_criteria",
                    )
                ],
            },
        ),
        migrations.RunPython(seed_default_policy, migrations.RunPython.noop),
    ]
