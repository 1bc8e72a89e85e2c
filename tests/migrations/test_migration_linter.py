"""Issue 14 item 4: django-migration-linter checks every migration of the service for changes that
break the release still running during a rolling deploy (NOT NULL without a default, renames, drops,
blocking index builds...).

Released migrations cannot change, so those it flags are listed below with the reason each is safe
to keep (or what was done instead), as is a new one it flags for a change that is safe on PostgreSQL
(a varchar widening, which it cannot tell from a narrowing); every other migration must pass. The list
stays honest: a listed migration that the linter no longer flags fails the test too.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django_migration_linter import MigrationLinter

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

RELEASED_AND_FLAGGED = {
    "0003_circulation": (
        "Adds Loan.renewals NOT NULL (Django's default is applied only while adding the column) and indexes "
        "built in the migration's transaction. Released with the circulation endpoints; the tables were small."
    ),
    "0004_idempotency_key_per_caller": (
        "Widens IdempotencyRecord.key from 255 to 300 characters: a varchar widening is catalog-only on "
        "PostgreSQL and the previous release writes shorter keys, which still fit."
    ),
    "0005_outbox_claims": (
        "Adds OutboxMessage.claims NOT NULL without a database default: the previous release's INSERT failed "
        "during a rollout. Fixed forward by 0008_outbox_claims_db_default (DEFAULT 0), tested by "
        "tests/migrations/test_rolling_deploy.py."
    ),
    "0013_lost_and_claimed_returned": (
        "Widens Loan.status from 8 to 16 characters (CLAIMED_RETURNED): catalog-only on PostgreSQL. The "
        "previous release writes only ACTIVE, OVERDUE and RETURNED, which the new check constraint accepts; "
        "re-adding that constraint scans the loans once under the migration's lock."
    ),
    "0015_item_barcodes": (
        "Adds two partial unique indexes over the new item_barcode columns, built CONCURRENTLY: no row has a "
        "barcode yet and the previous release writes none (it inserts NULL, which neither index covers), so no "
        "existing or concurrent row can violate them."
    ),
}


def _lint(**options) -> MigrationLinter:
    linter = MigrationLinter(no_cache=True, include_apps=["lending"], database=connection.alias, **options)
    linter.lint_all_migrations(app_label="lending")
    return linter


def test_every_migration_passes_except_the_released_ones_listed():
    linter = _lint(ignore_name=list(RELEASED_AND_FLAGGED))
    assert linter.nb_ignored == len(RELEASED_AND_FLAGGED)
    assert linter.nb_erroneous == 0, "a migration breaks the running release: see the linter's output above"


@pytest.mark.parametrize("name", sorted(RELEASED_AND_FLAGGED))
def test_each_listed_migration_is_still_flagged(name):
    linter = _lint(include_name=[name])
    assert linter.nb_total - linter.nb_ignored == 1
    assert linter.nb_erroneous == 1, f"{name} passes the linter now: remove it from RELEASED_AND_FLAGGED"
