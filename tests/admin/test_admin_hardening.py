"""The admin, hardened (issue 10 item 5): lockout after repeated failed logins (django-axes), Django's
password validators, ADMIN_ENABLED / ADMIN_URL, the "desk" group, API keys for superusers only."""

from __future__ import annotations

import importlib

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import clear_url_caches, reverse
from django.utils import timezone

from lending.models import OutboxKind, OutboxMessage, OutboxStatus
from tests.factories import LoanFactory

pytestmark = pytest.mark.django_db

USERNAME, PASSWORD = "librarian", "correct-horse-battery-41"
LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture
def librarian():
    return get_user_model().objects.create_superuser(USERNAME, "librarian@example.com", PASSWORD)


def log_in(client: Client, password: str):
    return client.post(LOGIN, {"username": USERNAME, "password": password})


def logged_in(client: Client) -> bool:
    return client.get("/admin/").status_code == 200


# --- Lockout ----------------------------------------------------------------------------------------


def test_ten_wrong_passwords_lock_the_account_out_even_with_the_right_one_next(librarian):
    attacker = Client(REMOTE_ADDR="203.0.113.7")
    for _ in range(10):
        assert log_in(attacker, "wrong-password").status_code in (200, 429)

    refused = log_in(attacker, PASSWORD)

    assert refused.status_code == 429
    assert not logged_in(attacker)
    # The account, not the address: the librarian at their own desk is refused too.
    assert log_in(Client(REMOTE_ADDR="198.51.100.2"), PASSWORD).status_code == 429


def test_nine_wrong_passwords_do_not_lock_and_a_success_resets_the_count(librarian):
    client = Client()
    for _ in range(9):
        assert log_in(client, "wrong-password").status_code == 200  # the form again, with its error
    assert log_in(client, PASSWORD).status_code == 302
    assert logged_in(client)

    other = Client()
    for _ in range(9):
        log_in(other, "wrong-password")
    assert log_in(other, PASSWORD).status_code == 302


def test_the_lockout_is_lifted_by_axes_reset_username(librarian):
    client = Client()
    for _ in range(10):
        log_in(client, "wrong-password")
    assert log_in(client, PASSWORD).status_code == 429

    call_command("axes_reset_username", USERNAME)
    call_command("axes_reset")

    assert log_in(client, PASSWORD).status_code == 302


def test_the_failure_limit_is_at_most_ten(settings):
    from django.conf import settings as live

    assert 1 <= live.AXES_FAILURE_LIMIT <= 10
    assert "username" in live.AXES_LOCKOUT_PARAMETERS


def test_a_login_without_a_request_still_works(librarian):
    """`Client.login` (and a shell's `authenticate`) passes no request: axes stands aside."""
    assert Client().login(username=USERNAME, password=PASSWORD)


# --- Password validators ----------------------------------------------------------------------------


@pytest.mark.parametrize("weak", ["x", "short1", "password1234", "12345678901234", "librarian-1"])
def test_ensure_staff_user_refuses_a_weak_password_and_creates_nothing(monkeypatch, weak):
    monkeypatch.setenv("DJANGO_ADMIN_USER", "librarian")
    monkeypatch.setenv("DJANGO_ADMIN_PASSWORD", weak)

    with pytest.raises(CommandError, match="too weak"):
        call_command("ensure_staff_user")

    assert not get_user_model().objects.filter(username="librarian").exists()


def test_ensure_staff_user_refuses_a_weak_password_for_an_existing_user_and_keeps_the_old_one(monkeypatch, librarian):
    monkeypatch.setenv("DJANGO_ADMIN_USER", USERNAME)
    monkeypatch.setenv("DJANGO_ADMIN_PASSWORD", "abc")

    with pytest.raises(CommandError):
        call_command("ensure_staff_user")

    librarian.refresh_from_db()
    assert librarian.check_password(PASSWORD)


def test_the_admins_password_change_form_enforces_the_validators(librarian):
    client = Client()
    client.force_login(librarian)

    response = client.post(
        reverse("admin:password_change"),
        {"old_password": PASSWORD, "new_password1": "short", "new_password2": "short"},
    )

    assert response.status_code == 200  # the form again, with the validators' messages
    librarian.refresh_from_db()
    assert librarian.check_password(PASSWORD)


# --- ADMIN_ENABLED / ADMIN_URL ----------------------------------------------------------------------


@pytest.fixture
def reload_urls(settings):
    def reload(**overrides):
        for name, value in overrides.items():
            setattr(settings, name, value)
        import config.urls

        importlib.reload(config.urls)
        clear_url_caches()

    yield reload
    settings.ADMIN_ENABLED, settings.ADMIN_URL = True, "admin/"
    reload()


def test_admin_enabled_false_removes_the_admin(reload_urls, librarian):
    reload_urls(ADMIN_ENABLED=False)

    response = Client().get("/admin/login/")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_admin_url_moves_the_admin(reload_urls, librarian):
    reload_urls(ADMIN_URL="staff-desk-7f3/")
    client = Client()

    assert client.get("/admin/login/").status_code == 404
    assert client.get("/staff-desk-7f3/login/").status_code == 200
    client.force_login(librarian)
    assert client.get("/staff-desk-7f3/lending/loan/").status_code == 200


# --- The desk group; API keys for superusers only ---------------------------------------------------


@pytest.fixture
def desk_client():
    user = get_user_model().objects.create_user("desk-1", password="a-long-enough-passphrase-7", is_staff=True)
    user.groups.add(Group.objects.get(name="desk"))
    client = Client()
    client.force_login(user)
    return client


def test_the_desk_group_views_loans_and_holds_and_replays_dead_letters(desk_client):
    loan = LoanFactory(user_email="pat@example.com", book_id=1)
    dead = OutboxMessage.objects.create(
        kind=OutboxKind.AVAILABILITY, book_id=1, status=OutboxStatus.DEAD, next_attempt_at=timezone.now()
    )

    assert desk_client.get(reverse("admin:lending_loan_changelist")).status_code == 200
    assert desk_client.get(reverse("admin:lending_loan_change", args=[loan.pk])).status_code == 200
    assert desk_client.get(reverse("admin:lending_hold_changelist")).status_code == 200
    response = desk_client.post(
        reverse("admin:lending_outboxmessage_changelist"),
        {"action": "replay", "_selected_action": [dead.pk]},
    )
    assert response.status_code == 302
    dead.refresh_from_db()
    assert dead.status == OutboxStatus.PENDING


def test_the_desk_group_cannot_see_or_manage_api_keys(desk_client):
    assert desk_client.get(reverse("admin:rest_framework_api_key_apikey_changelist")).status_code == 403
    assert desk_client.get(reverse("admin:rest_framework_api_key_apikey_add")).status_code == 403
    assert desk_client.get(reverse("admin:lending_idempotencyrecord_changelist")).status_code == 403


def test_no_grant_gives_a_non_superuser_the_api_keys(desk_client):
    """Even a permission given by hand on API keys is not honoured for someone who is not a superuser."""
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.get(username="desk-1")
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="rest_framework_api_key"))

    assert desk_client.get(reverse("admin:rest_framework_api_key_apikey_changelist")).status_code == 403


def test_a_superuser_manages_api_keys(librarian):
    client = Client()
    client.force_login(librarian)

    assert client.get(reverse("admin:rest_framework_api_key_apikey_changelist")).status_code == 200
    assert client.get(reverse("admin:rest_framework_api_key_apikey_add")).status_code == 200
