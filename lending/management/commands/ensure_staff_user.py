"""Create or update the staff superuser from the environment: `manage.py ensure_staff_user`.

Reads DJANGO_ADMIN_USER, DJANGO_ADMIN_PASSWORD and DJANGO_ADMIN_EMAIL (optional). Idempotent: run it
on every start (`make run`, Compose, a Kubernetes job); it sets the password, the email and the staff
and superuser flags each time. With `--if-configured` it does nothing when the variables are unset.
"""

from __future__ import annotations

import os

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from lending.management.output import report


class Command(BaseCommand):
    help = "Create or update the staff superuser named by DJANGO_ADMIN_USER / DJANGO_ADMIN_PASSWORD."

    def add_arguments(self, parser):
        parser.add_argument(
            "--if-configured",
            action="store_true",
            help="Exit quietly when DJANGO_ADMIN_USER or DJANGO_ADMIN_PASSWORD is not set.",
        )

    def handle(self, *args, if_configured: bool = False, **options):
        username = os.environ.get("DJANGO_ADMIN_USER", "").strip()
        password = os.environ.get("DJANGO_ADMIN_PASSWORD", "")
        email = os.environ.get("DJANGO_ADMIN_EMAIL", "").strip()
        if not username or not password:
            if if_configured:
                report(
                    self,
                    "DJANGO_ADMIN_USER / DJANGO_ADMIN_PASSWORD not set: no staff user ensured.",
                    "staff_user_not_configured",
                )
                return
            raise CommandError("Set DJANGO_ADMIN_USER and DJANGO_ADMIN_PASSWORD.")
        user_model = get_user_model()
        _validate(password, user_model(**{user_model.USERNAME_FIELD: username, "email": email}))
        with transaction.atomic():
            user, created = user_model.objects.select_for_update().get_or_create(
                defaults=None, **{user_model.USERNAME_FIELD: username}
            )
            if email:
                user.email = email
            user.is_staff = True
            user.is_superuser = True
            user.is_active = True
            user.set_password(password)
            user.save()
        report(
            self,
            f"{'Created' if created else 'Updated'} staff user {username!r}.",
            "staff_user_ensured",
            username=username,
            created=created,
        )


def _validate(password: str, user) -> None:
    """AUTH_PASSWORD_VALIDATORS, as the admin's own forms apply them: a weak password is refused,
    and the user is neither created nor changed."""
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise CommandError("DJANGO_ADMIN_PASSWORD is too weak: " + " ".join(exc.messages)) from None
