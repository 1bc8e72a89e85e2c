"""Kiosk accounts of the SIP2 gateway: `manage.py sip_accounts create <login> --institution AO
[--location CP] [--allow-no-block] [--password P]`, `sip_accounts list`, `sip_accounts set-password
<login> [--password P]`, `sip_accounts delete <login>`, and `sip_accounts demo`: the demo kiosk of
`make run` (`kiosk` / `kiosk-demo-password`, institution `demo`; DJANGO_DEBUG only, since its password
is public; reset on every start).

Each account is an API key of the service with the scopes a kiosk needs (`circulation`,
`patron-read`, and `override` only with `--allow-no-block`), sealed under the account's password.
Without `--password` the password is asked twice at the terminal (never echoed). A new password means
a new API key: the old one is deleted. The password is never printed, nor is the key.
"""

from __future__ import annotations

import getpass

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sip_gateway import accounts
from sip_gateway.demo import DEMO_INSTITUTION, DEMO_LOCATION, DEMO_LOGIN, DEMO_PASSWORD
from sip_gateway.models import SipAccount

BY = "manage.py sip_accounts"


class Command(BaseCommand):
    help = "Create, list, re-password and delete the SIP2 gateway's kiosk accounts."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="{create,list,set-password,delete,demo}")
        create = actions.add_parser("create", help="Create a kiosk account and its API key.")
        create.add_argument("login", help="The kiosk's login (CN).")
        create.add_argument("--institution", required=True, help="The institution id (AO) the kiosk uses.")
        create.add_argument("--location", default="", help="The kiosk's location code (CP).")
        create.add_argument(
            "--allow-no-block", action="store_true", help="Allow no-block (offline) transactions (scope override)."
        )
        create.add_argument("--password", default=None, help="The password (CO); asked at the terminal if absent.")
        actions.add_parser("list", help="List accounts: login, institution, location, no-block, key prefix, state.")
        change = actions.add_parser("set-password", help="Set a new password (and with it a new API key).")
        change.add_argument("login")
        change.add_argument("--password", default=None, help="The new password; asked at the terminal if absent.")
        delete = actions.add_parser("delete", help="Delete an account and its API key.")
        delete.add_argument("login")
        actions.add_parser("demo", help=f"Create or reset the demo kiosk {DEMO_LOGIN!r} (DJANGO_DEBUG only).")

    def handle(self, *args, action: str, **options):
        try:
            getattr(self, f"_{action.replace('-', '_')}")(**options)
        except accounts.AccountError as exc:
            raise CommandError(str(exc)) from None

    def _create(self, *, login, institution, location, allow_no_block, password, **_):
        account = accounts.create_account(
            login,
            _password(password),
            institution=institution,
            location=location,
            allow_no_block=allow_no_block,
            by=BY,
        )
        self.stdout.write(
            f"Created kiosk account {account.login!r} (institution {account.institution!r}) with API key "
            f"{account.api_key.prefix} and scopes {', '.join(account.scopes)}."
        )

    def _list(self, **_):
        rows = SipAccount.objects.select_related("api_key").order_by("login")
        if not rows:
            self.stdout.write("no kiosk accounts")
            return
        self.stdout.write(f"{'login':<22}{'institution':<16}{'location':<16}{'no-block':<10}{'key':<10}state")
        for account in rows:
            state = "revoked" if account.api_key.revoked else "active"
            self.stdout.write(
                f"{account.login:<22}{account.institution:<16}{account.location or '-':<16}"
                f"{'yes' if account.allow_no_block else 'no':<10}{account.api_key.prefix:<10}{state}"
            )

    def _set_password(self, *, login, password, **_):
        account = _find(login)
        accounts.set_password(account, _password(password), by=BY)
        self.stdout.write(f"Kiosk account {login!r} has a new password and API key {account.api_key.prefix}.")

    def _delete(self, *, login, **_):
        accounts.delete_account(_find(login))
        self.stdout.write(f"Deleted kiosk account {login!r} and its API key.")

    def _demo(self, **_):
        if not settings.DEBUG:
            raise CommandError("sip_accounts demo runs only with DJANGO_DEBUG=true: its password is public.")
        existing = SipAccount.objects.select_related("api_key").filter(login=DEMO_LOGIN).first()
        if existing is not None:
            accounts.delete_account(existing)
        accounts.create_account(DEMO_LOGIN, DEMO_PASSWORD, institution=DEMO_INSTITUTION, location=DEMO_LOCATION, by=BY)
        self.stdout.write(
            f"demo kiosk account {DEMO_LOGIN!r} (password {DEMO_PASSWORD!r}, institution {DEMO_INSTITUTION!r}) ready"
        )


def _find(login: str) -> SipAccount:
    account = SipAccount.objects.select_related("api_key").filter(login=login).first()
    if account is None:
        raise CommandError(f"No kiosk account {login!r}.")
    return account


def _password(given: str | None) -> str:
    if given is not None:
        return given
    first = getpass.getpass("SIP password: ")
    if first != getpass.getpass("Again: "):
        raise CommandError("The passwords differ.")
    return first
