"""Scopes: what each API key may do. Every API view states the scope it needs in `required_scope`:

    class ExpiredBooksApi(APIView):
        required_scope = needs(Scope.REPORTS)

`HasScope` (the default permission class) lets a call through when keys are off (REQUIRE_API_KEY
false), or when the key that authenticated it holds one of the scopes the view accepts for this
request. Anything else is 403 `insufficient_scope` naming the scope needed, decided before the view
runs, so nothing is written (no loan, no idempotency record, no event). A view that states no scope
refuses every key: forgetting the declaration closes an endpoint rather than opening it.

The scopes (`lending.models.Scope`):
- `circulation`: lend, return, renew, reserve, cancel; check out and check in a copy by its barcode,
  and read a copy's circulation status (as `patron-read` may);
- `patron-read`: one patron's loans and holds (`GET /loans/` and `GET /reservations/` with a
  `user_email` filter), one loan (`GET /loans/{id}/`) and its history, and a lend's dry run
  (`POST /lendBook/?dry_run=true`), whose answer tells them (`already_borrowed`: the patron has this
  title; `copies_on_hold` or not: the patron has a hold on it);
- `reports`: unfiltered listings and `GET /getExpiredBooks/` (what `patron-read` reads too, since a
  report can list every loan anyway);
- `privacy`: the erasure endpoint (`ERASURE`);
- `override`: lifting a named refusal with a reason;
- `patron-self`: a key bound to one patron (`ApiKeyScopes.patron_email`: a patron's app, an OPAC): that
  patron's loans and holds only — their listings, one of their loans and its history, renewing,
  reserving, cancelling (`self_service` rules). Any other patron's is 403 `insufficient_scope`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.http import HttpRequest
from rest_framework.fields import BooleanField
from rest_framework.request import Request

from lending.api.auth import RequireApiKey, keys_required
from lending.errors import Forbidden

if TYPE_CHECKING:
    from rest_framework_api_key.models import AbstractAPIKey
from lending.models import Scope

PATRON_FILTER = "user_email"
DRY_RUN = "dry_run"


@dataclass(frozen=True)
class ScopeRule:
    """The scopes a view accepts; the first one is the scope named when a call is refused."""

    accepted: tuple[Scope, ...]
    # For views whose scope depends on the request (a listing filtered by patron or not). It reads the
    # query (`GET`) of DRF's request or of Django's (the lean path of the writes, `lending.api.lean_writes`).
    choose: Callable[[Request | HttpRequest], tuple[Scope, ...]] | None = None
    summary: str = ""
    # A `patron-self` key may call it too, for its own patron (`patron_named`).
    self_service: bool = False

    def accepted_for(self, request: Request | HttpRequest) -> tuple[Scope, ...]:
        return self.choose(request) if self.choose else self.accepted

    def describe(self) -> str:
        described = self.summary or " or ".join(f"`{scope}`" for scope in self.accepted) or "any valid key"
        return f"{described}; `patron-self` for the key's own patron" if self.self_service else described

    def documented_scopes(self) -> list[str]:
        """`x-required-scopes` in the OpenAPI document."""
        return [scope.value for scope in self.accepted] + ([Scope.PATRON_SELF.value] if self.self_service else [])


def needs(*scopes: Scope) -> ScopeRule:
    """A view callable with any one of `scopes`; `needs()`: any valid key, no scope."""
    return ScopeRule(accepted=tuple(scopes))


def _patron_or_report(request: Request | HttpRequest) -> tuple[Scope, ...]:
    if request.GET.get(PATRON_FILTER):
        return (Scope.PATRON_READ, Scope.REPORTS)
    return (Scope.REPORTS,)


def _lend_or_dry_run(request: Request | HttpRequest) -> tuple[Scope, ...]:
    # Read as the view reads it (DRF's BooleanField); a value it refuses is a 400 after this check.
    if request.GET.get(DRY_RUN) in BooleanField.TRUE_VALUES:
        return (Scope.PATRON_READ, Scope.REPORTS)
    return (Scope.CIRCULATION,)


# What the views declare.
CIRCULATION = needs(Scope.CIRCULATION)
PATRON_READ = needs(Scope.PATRON_READ, Scope.REPORTS)
REPORTS = needs(Scope.REPORTS)
ERASURE = needs(Scope.PRIVACY)
OVERRIDE = needs(Scope.OVERRIDE)
# What a patron's own app does (a `patron-self` key, for its patron only), besides the staff's keys.
CIRCULATION_OR_SELF = ScopeRule(accepted=(Scope.CIRCULATION,), self_service=True)
PATRON_READ_OR_SELF = ScopeRule(accepted=PATRON_READ.accepted, self_service=True)
ANY_KEY = needs()
# The library's calendar, a patron's blocks and status: read by whoever lends (a kiosk asks before
# acting) or reads a patron's data; changed only by staff (`override`), since a block or a closed day
# decides what every later lend, renewal and reservation may do.
STAFF_READ = needs(Scope.PATRON_READ, Scope.REPORTS, Scope.CIRCULATION)
# A copy's circulation status (`GET /items/{barcode}/circulation/`): the desk that scans it, or whoever
# reads patrons' loans. It names no patron.
CIRCULATION_OR_PATRON_READ = needs(Scope.CIRCULATION, Scope.PATRON_READ)


def read_or_override(request: Request | HttpRequest) -> tuple[Scope, ...]:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return STAFF_READ.accepted
    return OVERRIDE.accepted


STAFF_READ_OR_OVERRIDE = ScopeRule(
    accepted=(*STAFF_READ.accepted, Scope.OVERRIDE),
    choose=read_or_override,
    summary="reads: `patron-read`, `reports` or `circulation`; changes: `override`",
)
# `POST /lendBook/`: a lend, or a dry run. A dry run writes nothing but reads the patron's loans and
# holds: its answer says whether the patron already has this title, so a key that may only lend (a
# kiosk) must not ask it; a key that may read the patron learns nothing new from it.
LEND_OR_DRY_RUN = ScopeRule(
    accepted=(Scope.CIRCULATION, Scope.PATRON_READ, Scope.REPORTS),
    choose=_lend_or_dry_run,
    summary="`circulation`; a dry run (`?dry_run=true`): `patron-read` (or `reports`)",
)
# `GET /loans/`, `GET /reservations/`: one patron's (filtered by `user_email`) or everyone's.
PATRON_FILTERED_OR_REPORTS = ScopeRule(
    accepted=(Scope.PATRON_READ, Scope.REPORTS),
    choose=_patron_or_report,
    summary="`patron-read` (or `reports`) with a `user_email` filter; `reports` without one",
    self_service=True,
)


class InsufficientScope(Forbidden):
    code = "insufficient_scope"


class HasScope(RequireApiKey):
    """A valid key (see `RequireApiKey`) holding one of the scopes the view accepts."""

    def has_permission(self, request: Request, view) -> bool:
        if not keys_required():
            return True
        super().has_permission(request, view)
        rule: ScopeRule | None = getattr(view, "required_scope", None)
        accepted = rule.accepted_for(request) if rule is not None else ()
        granted = granted_scopes(request.auth)
        if rule is not None and holds_accepted_scope(granted, accepted):
            return True
        if rule is not None and rule.self_service and Scope.PATRON_SELF in granted:
            return _for_its_own_patron(request, view, accepted, granted)
        raise insufficient_scope(accepted, granted)


def _for_its_own_patron(request: Request, view, accepted: tuple[Scope, ...], granted: frozenset[str]) -> bool:
    """A `patron-self` key passes when the call is about the patron it is bound to; otherwise 403,
    whether the other patron exists or not."""
    bound = bound_patron(request.auth)
    if bound and patron_named(request, view) == bound:
        return True
    refusal = insufficient_scope(accepted, granted)
    refusal.message = f"{refusal.message[:-1]}, or a `patron-self` key of this patron: a key acts for its own only."
    raise refusal


def bound_patron(api_key) -> str:
    """The patron a `patron-self` key is bound to, as `ApiKeyAuthentication` read it ("" if none)."""
    return getattr(api_key, "bound_patron", "")


# The largest loan id the database holds (bigint): a larger one names no loan.
MAX_LOAN_ID = 2**63 - 1


def patron_named(request: Request, view) -> str | None:
    """Whose loans or holds the call is about: the loan's patron (`loan_id` in the path), the
    `user_email` filter of a listing, or the `user_email` of a write's body; lower-case, as stored."""
    kwargs = getattr(view, "kwargs", {}) or {}
    if "loan_id" in kwargs:
        from lending.models import Loan

        loan_id = kwargs["loan_id"]
        email = (
            Loan.objects.filter(pk=loan_id).values_list("user_email", flat=True).first()
            if loan_id <= MAX_LOAN_ID
            else None
        )
    elif request.method in ("GET", "HEAD", "OPTIONS"):
        email = request.query_params.get(PATRON_FILTER)
    else:
        body = request.data
        email = body.get(PATRON_FILTER) if isinstance(body, dict) else None
    return email.strip().lower() if isinstance(email, str) else None


def insufficient_scope(accepted: tuple[Scope, ...], granted: frozenset[str]) -> InsufficientScope:
    if not accepted:
        return InsufficientScope("No API key may call this endpoint.", details={"required_scope": None})
    return InsufficientScope(
        f"This call needs an API key with the `{accepted[0]}` scope.",
        details={
            "required_scope": accepted[0].value,
            "accepted_scopes": [scope.value for scope in accepted],
            "granted_scopes": sorted(granted),
        },
    )


def holds_accepted_scope(granted: frozenset[str], accepted: tuple[Scope, ...]) -> bool:
    """Whether a key's `granted` scopes include one the view `accepted` for this request (a view that
    accepts none lets any valid key through). The one rule, for DRF's `HasScope` and the writes' lean path."""
    return not accepted or bool(granted.intersection(accepted))


def granted_scopes(api_key) -> frozenset[str]:
    """The key's scopes, as `ApiKeyAuthentication` read them with the key (none without a grant)."""
    return getattr(api_key, "granted_scopes", frozenset())


def parse_scopes(text: str) -> list[str]:
    """`circulation,patron-read` (commas and/or spaces) -> the scopes, checked, in a fixed order."""
    names = {name for name in text.replace(",", " ").split() if name}
    unknown = sorted(names - set(Scope.values))
    if unknown:
        raise ValueError(f"Unknown scope(s): {', '.join(unknown)}. Scopes: {', '.join(Scope.values)}.")
    return [scope for scope in Scope.values if scope in names]


def create_key(
    name: str, scopes: list[str] | tuple[str, ...], *, patron_email: str = "", **fields
) -> tuple[AbstractAPIKey, str]:
    """A new API key holding `scopes` (checked), bound to `patron_email` when it holds `patron-self`:
    returns (the stored key, the key to hand out)."""
    from django.db import transaction
    from rest_framework_api_key.models import APIKey

    from lending.models import ApiKeyScopes

    chosen = parse_scopes(" ".join(scopes))
    patron_email = check_binding(chosen, patron_email)
    with transaction.atomic():
        api_key, key = APIKey.objects.create_key(name=name, **fields)
        ApiKeyScopes.objects.create(api_key_id=api_key.pk, scopes=" ".join(chosen), patron_email=patron_email)
    return api_key, key


def check_binding(scopes: list[str], patron_email: str) -> str:
    """Only a `patron-self` key is bound to a patron: the patron, lower-case. (Without one, its
    `patron-self` lets nothing through: the command and the admin ask for it.)"""
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    patron_email = patron_email.strip().lower()
    if patron_email and Scope.PATRON_SELF not in scopes:
        raise ValueError("Only a `patron-self` key is bound to a patron.")
    if patron_email:
        try:
            validate_email(patron_email)
        except ValidationError:
            raise ValueError(f"Not an email address: {patron_email!r}.") from None
    return patron_email
