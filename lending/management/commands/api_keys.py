"""Service API keys: `manage.py api_keys create <name> --scopes <scope,...> [--expires-days N]`,
`api_keys list`, `api_keys scopes <prefix|name> <scope,...>`, `api_keys revoke <prefix|name>`. A
`patron-self` key is bound to one patron: `--patron <email>` with `create` or `scopes`.

Keys are stored hashed: `create` prints the key once and it cannot be shown again. Callers send it as
`Authorization: Api-Key <key>`. A key may call only what its scopes allow (`lending.api.permissions`).
"""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.utils import timezone
from rest_framework_api_key.models import APIKey

from lending.api.permissions import check_binding, create_key, parse_scopes
from lending.models import ApiKeyScopes, Scope

SCOPES_HELP = f"Comma-separated scopes: {', '.join(Scope.values)}."
PATRON_HELP = "With the `patron-self` scope: the one patron (email) the key acts for."


class Command(BaseCommand):
    help = "Create, list and revoke the API keys of calling services."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="{create,list,scopes,revoke}")
        create = actions.add_parser("create", help="Create a key and print it (once).")
        create.add_argument("name", help="Who uses the key, e.g. the calling service (at most 50 characters).")
        create.add_argument("--scopes", required=True, help=SCOPES_HELP)
        create.add_argument("--expires-days", type=int, default=None, help="Expire the key after this many days.")
        create.add_argument("--patron", default="", help=PATRON_HELP)
        actions.add_parser("list", help="List keys: prefix, name, scopes, created, expiry, state. Never the keys.")
        scopes = actions.add_parser("scopes", help="Replace the scopes of a key, by its prefix or its name.")
        scopes.add_argument("key", help="The key's prefix (its first 8 characters) or its name.")
        scopes.add_argument("scopes", help=SCOPES_HELP)
        scopes.add_argument("--patron", default="", help=PATRON_HELP)
        revoke = actions.add_parser("revoke", help="Revoke a key by its prefix, or the only key of that name.")
        revoke.add_argument("key", help="The key's prefix (its first 8 characters) or its name.")

    def handle(self, *args, action: str, **options):
        getattr(self, f"_{action}")(**options)

    def _create(self, *, name: str, scopes: str, expires_days: int | None, patron: str, **_):
        name = name.strip()
        if not name or len(name) > 50:
            raise CommandError("The name must be 1 to 50 characters.")
        if expires_days is not None and expires_days <= 0:
            raise CommandError("--expires-days must be positive.")
        chosen = _scopes(scopes)
        expiry = timezone.now() + timedelta(days=expires_days) if expires_days else None
        api_key, key = create_key(name, chosen, patron_email=_patron_for(chosen, patron), expiry_date=expiry)
        self.stderr.write(
            f"Created API key {api_key.prefix} for {name!r} with scopes {', '.join(chosen)}. "
            "Store it now: it is not shown again."
        )
        self.stdout.write(key)

    def _scopes(self, *, key: str, scopes: str, patron: str, **_):
        api_key = _find(key, "change the scopes of")
        chosen = _scopes(scopes)
        patron = _patron_for(chosen, patron)
        ApiKeyScopes.objects.update_or_create(
            api_key=api_key, defaults={"scopes": " ".join(chosen), "patron_email": patron}
        )
        self.stdout.write(f"API key {api_key.prefix} ({api_key.name}) now has scopes {', '.join(chosen)}.")

    def _list(self, **_):
        keys = APIKey.objects.select_related("grant").order_by("created")
        if not keys:
            self.stdout.write("no API keys")
            return
        self.stdout.write(f"{'prefix':<10}{'name':<52}{'scopes':<50}{'created':<22}{'expires':<22}state")
        for api_key in keys:
            self.stdout.write(
                f"{api_key.prefix:<10}{api_key.name:<52}{_scope_text(api_key):<50}{_when(api_key.created):<22}"
                f"{_when(api_key.expiry_date):<22}{_state(api_key)}"
            )

    def _revoke(self, *, key: str, **_):
        api_key = _find(key, "revoke")
        if api_key.revoked:
            self.stdout.write(f"API key {api_key.prefix} ({api_key.name}) was already revoked.")
            return
        api_key.revoked = True
        api_key.save(update_fields=["revoked"])
        self.stdout.write(f"Revoked API key {api_key.prefix} ({api_key.name}).")


def _find(key: str, verb: str) -> APIKey:
    """The key with this prefix, or else the only key with this name."""
    matches = list(APIKey.objects.filter(Q(prefix=key) | Q(name=key)))
    by_prefix = [api_key for api_key in matches if api_key.prefix == key]
    if by_prefix:
        matches = by_prefix
    if not matches:
        raise CommandError(f"No API key has the prefix or name {key!r}.")
    if len(matches) > 1:
        prefixes = ", ".join(api_key.prefix for api_key in matches)
        raise CommandError(f"{len(matches)} keys are named {key!r} ({prefixes}): {verb} one by its prefix.")
    return matches[0]


def _scopes(text: str) -> list[str]:
    try:
        chosen = parse_scopes(text)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if not chosen:
        raise CommandError(f"Give at least one scope. {SCOPES_HELP}")
    return chosen


def _patron_for(scopes: list[str], patron: str) -> str:
    """The key's patron, checked: a `patron-self` key made here always has one."""
    if Scope.PATRON_SELF in scopes and not patron.strip():
        raise CommandError("A `patron-self` key needs the patron it acts for: --patron <email>.")
    try:
        return check_binding(scopes, patron)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _scope_text(api_key: APIKey) -> str:
    grant = getattr(api_key, "grant", None)
    return ",".join(grant.scope_list) if grant and grant.scopes else "(none)"


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def _state(api_key: APIKey) -> str:
    if api_key.revoked:
        return "revoked"
    if api_key.has_expired:
        return "expired"
    return "active"
