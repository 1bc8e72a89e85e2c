"""The demo librarian of `make run`: `manage.py demo_staff_user` (debug mode only).

A newcomer needs a login to see the admin; a production database must never get a known password, so
the command refuses unless DJANGO_DEBUG is true. Idempotent: it resets the password on every start."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from lending.management.output import report

DEMO_USERNAME = "demo-librarian"
DEMO_PASSWORD = "lending-demo-password"


class Command(BaseCommand):
    help = f"Create or reset the staff user {DEMO_USERNAME!r} with a published password (DJANGO_DEBUG only)."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("demo_staff_user runs only with DJANGO_DEBUG=true: its password is public.")
        user_model = get_user_model()
        with transaction.atomic():
            user, created = user_model.objects.get_or_create(
                defaults=None, **{user_model.USERNAME_FIELD: DEMO_USERNAME}
            )
            user.is_staff = user.is_superuser = user.is_active = True
            user.set_password(DEMO_PASSWORD)
            user.save()
        report(
            self,
            f"demo staff user {DEMO_USERNAME!r} (password {DEMO_PASSWORD!r}) ready",
            "demo_staff_user_ready",
            username=DEMO_USERNAME,
            created=created,
        )
