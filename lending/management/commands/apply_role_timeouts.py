"""`manage.py apply_role_timeouts [--role NAME]`: make DATABASE_STATEMENT_TIMEOUT_MS and
DATABASE_LOCK_TIMEOUT_MS the database role's own defaults (ALTER ROLE ... SET), so that sessions
opened through a pooler that drops the connection's `options` still get them. Idempotent; the
Kubernetes migration Job runs it (k8s/base/job-migrate.yaml) on the primary, before migrating."""

from django.core.management.base import BaseCommand

from lending.db_session import LIMITS, apply_role_timeouts, expected, shown
from lending.management.output import report


class Command(BaseCommand):
    help = "Set the service's statement_timeout and lock_timeout on its database role (ALTER ROLE ... SET)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--role",
            default=None,
            help="The role the service connects as (default: this connection's user; another role "
            "needs CREATEROLE or superuser).",
        )

    def handle(self, *args, role: str | None = None, **options):
        outcome = apply_role_timeouts(role)
        for name in LIMITS:
            value = shown(expected(name)) if expected(name) else "server default"
            report(
                self,
                f"{name}={value} ({outcome[name]})",
                "role_timeout_applied",
                name=name,
                value=value,
                outcome=outcome[name],
            )
