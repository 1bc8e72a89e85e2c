"""`manage.py api_keys create | list | scopes | revoke`."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework_api_key.models import APIKey

from lending.models import ApiKeyScopes

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("api_keys", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_create_prints_the_key_once_and_stores_only_its_hash():
    key = run("create", "patron-app", "--scopes", "circulation").strip()
    prefix, _, secret = key.partition(".")
    stored = APIKey.objects.get(prefix=prefix)
    assert stored.name == "patron-app" and not stored.revoked
    assert secret and secret not in stored.hashed_key
    assert APIKey.objects.is_valid(key)
    assert key not in run("list")


def test_create_with_expiry():
    key = run("create", "temp", "--scopes", "reports", "--expires-days", "7").strip()
    assert APIKey.objects.get(prefix=key.partition(".")[0]).expiry_date is not None


def test_list_shows_prefix_name_and_state():
    key = run("create", "staff-app", "--scopes", "circulation").strip()
    listing = run("list")
    assert key.partition(".")[0] in listing and "staff-app" in listing and "active" in listing


def test_revoke_by_prefix_and_by_name():
    first = run("create", "first", "--scopes", "circulation").strip()
    second = run("create", "second", "--scopes", "circulation").strip()
    assert "Revoked" in run("revoke", first.partition(".")[0])
    assert "Revoked" in run("revoke", "second")
    assert not APIKey.objects.is_valid(first) and not APIKey.objects.is_valid(second)
    assert "revoked" in run("list")
    assert "already revoked" in run("revoke", "first")


def test_revoke_refuses_an_ambiguous_name_and_an_unknown_key():
    run("create", "twin", "--scopes", "circulation")
    run("create", "twin", "--scopes", "circulation")
    with pytest.raises(CommandError, match="revoke one by its prefix"):
        run("revoke", "twin")
    with pytest.raises(CommandError, match="No API key"):
        run("revoke", "nobody")
    assert APIKey.objects.filter(revoked=False).count() == 2


def test_create_refuses_a_bad_name():
    with pytest.raises(CommandError):
        run("create", "x" * 51, "--scopes", "circulation")


def test_create_stores_the_scopes_and_list_shows_them():
    key = run("create", "desk", "--scopes", "patron-read, circulation").strip()
    grant = ApiKeyScopes.objects.get(api_key__prefix=key.partition(".")[0])
    assert grant.scope_list == ["circulation", "patron-read"]  # in the fixed order, whatever was typed
    line = next(line for line in run("list").splitlines() if "desk" in line)
    assert "circulation,patron-read" in line


@pytest.mark.parametrize("scopes", ["", " , ", "circulation,admin", "everything"])
def test_create_refuses_unknown_or_missing_scopes(scopes):
    with pytest.raises(CommandError, match="scope"):
        run("create", "bad", "--scopes", scopes)
    assert not APIKey.objects.exists()


def test_create_requires_scopes():
    with pytest.raises(CommandError, match="--scopes"):
        run("create", "no-scopes")


def test_scopes_replaces_a_keys_scopes_by_prefix_or_name():
    key = run("create", "reporting", "--scopes", "circulation").strip()
    prefix = key.partition(".")[0]
    assert "now has scopes reports" in run("scopes", prefix, "reports")
    run("scopes", "reporting", "reports,patron-read")
    assert ApiKeyScopes.objects.get(api_key__prefix=prefix).scope_list == ["patron-read", "reports"]
    with pytest.raises(CommandError, match="Unknown scope"):
        run("scopes", prefix, "root")


def test_a_key_without_a_grant_lists_no_scopes():
    APIKey.objects.create_key(name="legacy-style")
    line = next(line for line in run("list").splitlines() if "legacy-style" in line)
    assert "(none)" in line
