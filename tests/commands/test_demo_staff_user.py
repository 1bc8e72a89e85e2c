"""The demo librarian `make run` creates: in debug mode only, and it can log into the admin."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from lending.management.commands.demo_staff_user import DEMO_PASSWORD, DEMO_USERNAME

pytestmark = pytest.mark.django_db


def test_debug_mode_creates_a_staff_user_who_can_log_into_the_admin(settings, client):
    settings.DEBUG = True
    call_command("demo_staff_user", stdout=StringIO())
    call_command("demo_staff_user", stdout=StringIO())
    assert get_user_model().objects.filter(username=DEMO_USERNAME, is_staff=True).count() == 1
    assert client.login(username=DEMO_USERNAME, password=DEMO_PASSWORD)
    assert client.get("/admin/lending/outboxmessage/").status_code == 200


def test_never_with_production_settings(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DJANGO_DEBUG"):
        call_command("demo_staff_user", stdout=StringIO())
    assert not get_user_model().objects.filter(username=DEMO_USERNAME).exists()
