"""`manage.py wait_for_migrations [--timeout SECONDS] [--interval SECONDS]`: wait until the database
holds every migration this code knows (what `migrate --check` tests), then exit 0; exit 1 at the
deadline. A database that does not answer yet counts as not ready. The relay's and the scheduler's
init container in Kubernetes: a new release's processes start on their own schema, never on the
previous one, whatever applies the manifests (k8s/deploy.sh, Argo CD, Flux)."""

import time

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor

from lending.management.output import report


def unapplied_migrations() -> list[str]:
    """The migrations of this code not yet applied to the database, in the order they would run."""
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]


class Command(BaseCommand):
    help = "Wait until every migration of this code is applied (exit 1 at the deadline)."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=900.0, help="Seconds before giving up (default 900).")
        parser.add_argument("--interval", type=float, default=5.0, help="Seconds between checks (default 5).")

    def handle(self, *args, timeout: float = 900.0, interval: float = 5.0, **options):
        deadline = time.monotonic() + timeout
        while True:
            waiting_for = self.waiting_for()
            if not waiting_for:
                report(self, "schema is up to date", "schema_ready")
                return
            if time.monotonic() >= deadline:
                raise CommandError(f"gave up after {timeout:g} s waiting for {waiting_for}")
            time.sleep(interval)

    def waiting_for(self) -> str:
        """What is missing, in words; empty once the schema is there."""
        try:
            pending = unapplied_migrations()
        except DatabaseError as error:
            return f"the database ({error.__class__.__name__}: {str(error).strip()})"
        finally:
            connection.close()
        if not pending:
            return ""
        return f"{len(pending)} unapplied migration(s): {', '.join(pending[:5])}"
