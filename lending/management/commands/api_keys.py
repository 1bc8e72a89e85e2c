"""Service API keys: `manage.py api_keys create <name> [--expires-days N]`, `api_keys list`,
`api_keys revoke <prefix|name>`.

Keys are stored hashed: `create` prints the key once and it cannot be shown again. Callers send it as
`Authorization: Api-Key <key>`.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.utils import timezone
from rest_framework_api_key.models import APIKey


class Command(BaseCommand):
    help = "Create, list and revoke the API keys of calling services."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="{create,list,revoke}")
        create = actions.add_parser("create", help="Create a key and print it (once).")
        create.add_argument("name", help="Who uses the key, e.g. the calling service (at most 50 characters).")
        create.add_argument("--expires-days", type=int, default=None, help="Expire the key after this many days.")
        actions.add_parser("list", help="List keys: prefix, name, created, expiry, state. Never the keys.")
        revoke = actions.add_parser("revoke", help="Revoke a key by its prefix, or the only key of that name.")
        revoke.add_argument("key", help="The key's prefix (its first 8 characters) or its name.")

    def handle(self, *args, action: str, **options):
        getattr(self, f"_{action}")(**options)

    def _create(self, *, name: str, expires_days: int | None, **_):
        name = name.strip()
        if not name or len(name) > 50:
            raise CommandError("The name must be 1 to 50 characters.")
        if expires_days is not None and expires_days <= 0:
            raise CommandError("--expires-days must be positive.")
        expiry = timezone.now() + timedelta(days=expires_days) if expires_days else None
        api_key, key = APIKey.objects.create_key(name=name, expiry_date=expiry)
        self.stderr.write(f"Created API key {api_key.prefix} for {name!r}. Store it now: it is not shown again.")
        self.stdout.write(key)

    def _list(self, **_):
        keys = APIKey.objects.order_by("created")
        if not keys:
            self.stdout.write("no API keys")
            return
        self.stdout.write(f"{'prefix':<10}{'name':<52}{'created':<22}{'expires':<22}state")
        for api_key in keys:
            self.stdout.write(
                f"{api_key.prefix:<10}{api_key.name:<52}{_when(api_key.created):<22}"
                f"{_when(api_key.expiry_date):<22}{_state(api_key)}"
            )

    def _revoke(self, *, key: str, **_):
        matches = list(APIKey.objects.filter(Q(prefix=key) | Q(name=key)))
        by_prefix = [api_key for api_key in matches if api_key.prefix == key]
        if by_prefix:
            matches = by_prefix
        if not matches:
            raise CommandError(f"No API key has the prefix or name {key!r}.")
        if len(matches) > 1:
            prefixes = ", ".join(api_key.prefix for api_key in matches)
            raise CommandError(f"{len(matches)} keys are named {key!r} ({prefixes}): revoke one by its prefix.")
        api_key = matches[0]
        if api_key.revoked:
            self.stdout.write(f"API key {api_key.prefix} ({api_key.name}) was already revoked.")
            return
        api_key.revoked = True
        api_key.save(update_fields=["revoked"])
        self.stdout.write(f"Revoked API key {api_key.prefix} ({api_key.name}).")


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def _state(api_key: APIKey) -> str:
    if api_key.revoked:
        return "revoked"
    if api_key.has_expired:
        return "expired"
    return "active"
