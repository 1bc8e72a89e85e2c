"""Migration 0006: keys that existed before scopes keep everything they could do (every scope);
keys made afterwards get only what they are given."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("lending", "0005_outbox_claims"), ("rest_framework_api_key", "0005_auto_20220110_1102")]
SCOPES = [("lending", "0006_scopes_and_events")]


def migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor


@pytest.mark.django_db(transaction=True)
def test_keys_made_before_scopes_keep_every_scope():
    try:
        old = migrate(BEFORE).loader.project_state(BEFORE).apps
        OldKey = old.get_model("rest_framework_api_key", "APIKey")
        OldKey.objects.create(id="legacy01.hash", prefix="legacy01", hashed_key="hash", name="legacy-app")

        new = migrate(SCOPES).loader.project_state(SCOPES).apps
        grant = new.get_model("lending", "ApiKeyScopes").objects.get(api_key_id="legacy01.hash")
        assert grant.scopes.split() == ["circulation", "patron-read", "reports", "privacy", "override"]
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


@pytest.mark.django_db
def test_every_scope_there_is_was_given_to_old_keys():
    """A scope added later must be decided for old keys on purpose (in its own migration)."""
    import importlib

    from lending.models import Scope

    migration = importlib.import_module("lending.migrations.0006_scopes_and_events")
    # Decided in their own migration: `patron-self` (0014) acts for a bound patron, and no old key has one.
    decided_later = {Scope.PATRON_SELF}
    assert migration.ALL_SCOPES.split() == [scope for scope in Scope.values if scope not in decided_later]
