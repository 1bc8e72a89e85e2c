"""`manage.py ensure_staff_user`: creates or updates the staff superuser from the environment."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("ensure_staff_user", *args, stdout=out)
    return out.getvalue()


def test_creates_then_updates_idempotently(monkeypatch):
    monkeypatch.setenv("DJANGO_ADMIN_USER", "librarian")
    monkeypatch.setenv("DJANGO_ADMIN_PASSWORD", "first-password")
    monkeypatch.setenv("DJANGO_ADMIN_EMAIL", "librarian@example.com")
    assert "Created" in run()
    assert "Updated" in run()
    users = get_user_model().objects.filter(username="librarian")
    assert users.count() == 1
    user = users.get()
    assert user.is_staff and user.is_superuser and user.is_active and user.email == "librarian@example.com"
    assert user.check_password("first-password")

    monkeypatch.setenv("DJANGO_ADMIN_PASSWORD", "second-password")
    user.is_active = False
    user.save()
    run()
    user.refresh_from_db()
    assert user.check_password("second-password") and user.is_active


def test_missing_variables(monkeypatch):
    monkeypatch.delenv("DJANGO_ADMIN_USER", raising=False)
    monkeypatch.delenv("DJANGO_ADMIN_PASSWORD", raising=False)
    with pytest.raises(CommandError, match="DJANGO_ADMIN_USER"):
        run()
    assert "not set" in run("--if-configured")
    assert not get_user_model().objects.exists()
