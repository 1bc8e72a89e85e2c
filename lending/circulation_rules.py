"""Circulation rules: named loan policies, and the matrix (patron category x item type) that picks one.

A *loan policy* says for how long a copy goes out, how often and for how long it renews, how many
open loans the patron may hold under it, whether a title may be reserved, whether the copy leaves the
building at all, and what lateness and loss cost (the fines fields). The *rules* pick the policy of a
write from the patron's category (the User service's) and the copy's item type (the Book service's):
the rule with more criteria wins; with as many, the patron category beats the item type. A rule with
neither criterion (the fallback) always exists, so every write finds a policy.

Reading the rules costs a lend no round trip: the matrix is kept per process (`Rulebook`), keyed by a
version that every change replaces in the same transaction (a new random token, never one seen before,
even after a rolled-back change); a write reads the version with the patron
lock it takes anyway (`lending.locks.lock_patron`) and reloads the matrix, in one statement, only when
it moved. So a write sees the whole matrix of one moment: the old or the new, never a mix.

A loan keeps the name and a snapshot of the policy it was made under (`Loan.loan_policy`,
`Loan.policy_terms`): editing a policy later never moves an open loan's due date, and its renewals
follow the snapshot.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.db.models.functions import Coalesce

from lending import errors
from lending.db import rules as statements

FALLBACK = (None, None)
DEFAULT_POLICY = "default"
NAME_MAX_LENGTH = 64
# A policy's name, as the API's path and the admin's form accept it.
NAME_PATTERN = rf"^[a-z0-9][a-z0-9_-]{{0,{NAME_MAX_LENGTH - 1}}}$"
CRITERION_MAX_LENGTH = 64  # as an item type (`lending.clients.books`) or a patron category (`users`)
MAX_RULES = 1000
MAX_DAYS = 3650
MAX_RENEWALS = 100
MAX_LOANS = 10_000
AMOUNT = [MinValueValidator(Decimal("0.00")), MaxValueValidator(Decimal("99999.99"))]


# --- The tables -----------------------------------------------------------------------------------
class LoanPolicy(models.Model):
    """A named loan policy (`GET /loan-policies/`, the admin). Amounts are decimals in FINES_CURRENCY."""

    name = models.SlugField(max_length=NAME_MAX_LENGTH, primary_key=True)
    loan_days = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MAX_DAYS)],
        help_text="A loan is due at the end of the open day this many days out.",
    )
    renewals_max = models.PositiveIntegerField(
        default=0, validators=[MaxValueValidator(MAX_RENEWALS)], help_text="Renewals allowed per loan."
    )
    renewal_days = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MAX_DAYS)],
        help_text="Each renewal moves the due date this many days on.",
    )
    max_loans = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(MAX_LOANS)],
        help_text="Open loans the patron may hold that the matched rule covers (all of them for a rule "
        "without item type, those of its type otherwise); empty: no limit.",
    )
    holds_allowed = models.BooleanField(default=True, help_text="Patrons may reserve titles under it.")
    loanable = models.BooleanField(default=True, help_text="False for reference copies: they do not leave.")
    fine_per_day = models.DecimalField(max_digits=8, decimal_places=2, default=Decimal("0.00"), validators=AMOUNT)
    fine_grace_days = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(MAX_DAYS)],
        help_text="Late by this many days or fewer: no fine; beyond, the whole late period counts.",
    )
    fine_max = models.DecimalField(
        max_digits=8, decimal_places=2, null=True, blank=True, validators=AMOUNT, help_text="Empty: no cap."
    )
    fine_counts_closed_days = models.BooleanField(default=True, help_text="Days the library is closed count as late.")
    lost_item_fee = models.DecimalField(max_digits=8, decimal_places=2, default=Decimal("0.00"), validators=AMOUNT)
    lost_processing_fee = models.DecimalField(
        max_digits=8, decimal_places=2, default=Decimal("0.00"), validators=AMOUNT
    )
    refund_lost_on_return = models.BooleanField(default=True, help_text="A lost item found refunds its fee.")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        app_label = "lending"
        ordering = ["name"]
        verbose_name = "loan policy"
        verbose_name_plural = "loan policies"

    def __str__(self) -> str:
        return self.name


class CirculationRule(models.Model):
    """One row of the matrix: patron category x item type -> loan policy (null: any)."""

    patron_category = models.CharField(max_length=CRITERION_MAX_LENGTH, null=True, blank=True)  # noqa: DJ001
    item_type = models.CharField(max_length=CRITERION_MAX_LENGTH, null=True, blank=True)  # noqa: DJ001
    loan_policy = models.ForeignKey(LoanPolicy, on_delete=models.PROTECT, related_name="rules")

    class Meta:
        app_label = "lending"
        ordering = ["id"]
        constraints = [
            # NULL means "any": two rules with the same criteria, NULLs included, are one too many.
            models.UniqueConstraint(
                Coalesce("patron_category", models.Value("")),
                Coalesce("item_type", models.Value("")),
                name="one_rule_per_criteria",
            )
        ]

    def __str__(self) -> str:
        return f"{self.patron_category or '*'} x {self.item_type or '*'} -> {self.loan_policy_id}"


class RulebookVersion(models.Model):
    """One row: bumped in the transaction of every change to the policies or the rules, read with the
    patron lock by every write, so each process knows when its copy of the matrix is stale."""

    version = models.CharField(max_length=32, default="seed")

    class Meta:
        app_label = "lending"

    def __str__(self) -> str:
        return f"circulation rules, version {self.version}"


class RulesChange(models.Model):
    """Who changed the rulebook, when, and what it was before and after (API and admin alike)."""

    at = models.DateTimeField(auto_now_add=True)
    changed_by = models.CharField(max_length=200)
    subject = models.CharField(max_length=100)  # "loan-policy/dvd-week", "circulation-rules"
    action = models.CharField(max_length=20)  # "put", "delete"
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        app_label = "lending"
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.subject} {self.action} by {self.changed_by}"


# --- What a write uses ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PolicyTerms:
    """A loan policy's values, as a write applies them and a loan keeps them (`Loan.policy_terms`)."""

    name: str
    loan_days: int
    renewals_max: int
    renewal_days: int
    max_loans: int | None
    holds_allowed: bool
    loanable: bool
    fine_per_day: Decimal
    fine_grace_days: int
    fine_max: Decimal | None
    fine_counts_closed_days: bool
    lost_item_fee: Decimal
    lost_processing_fee: Decimal
    refund_lost_on_return: bool

    @classmethod
    def of(cls, policy: LoanPolicy) -> PolicyTerms:
        return cls(**{field.name: getattr(policy, field.name) for field in fields(cls)})

    def snapshot(self) -> dict[str, Any]:
        """As the loan stores it, and as the API shows it: amounts as strings ("0.75"). Every value is a
        plain scalar, so the instance's own dict is read as it is (`asdict` deep-copies: a tenth of a
        lend's CPU in the write, `tools/bench`)."""
        return {key: str(value) if isinstance(value, Decimal) else value for key, value in vars(self).items()}

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any]) -> PolicyTerms:
        values: dict[str, Any] = {field.name: snapshot.get(field.name) for field in fields(cls)}
        for name in DECIMAL_FIELDS:
            if values[name] is not None:
                values[name] = Decimal(values[name])
        for name, default in SNAPSHOT_DEFAULTS.items():  # a snapshot older than a field
            if values[name] is None:
                values[name] = default
        return cls(**values)


DECIMAL_FIELDS = ("fine_per_day", "fine_max", "lost_item_fee", "lost_processing_fee")
SNAPSHOT_DEFAULTS: dict[str, Any] = {
    "fine_per_day": Decimal("0.00"),
    "fine_grace_days": 0,
    "fine_counts_closed_days": True,
    "lost_item_fee": Decimal("0.00"),
    "lost_processing_fee": Decimal("0.00"),
    "refund_lost_on_return": True,
    "holds_allowed": True,
    "loanable": True,
}


@dataclass(frozen=True)
class Rule:
    patron_category: str | None
    item_type: str | None
    loan_policy: str

    @property
    def criteria(self) -> tuple[str | None, str | None]:
        return (self.patron_category, self.item_type)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    """The rule a write matched and the policy it names."""

    rule: Rule
    terms: PolicyTerms


@dataclass(frozen=True)
class Rulebook:
    """The whole matrix at one version: the rules by criteria, the policies they name."""

    version: str
    rules: dict[tuple[str | None, str | None], Rule]
    policies: dict[str, PolicyTerms]

    def decide(self, patron_category: str | None, item_type: str | None) -> Decision:
        """The most specific rule matching: category and type, then category alone, then type
        alone, then the fallback (which every valid rulebook has). A patron without category (or a
        copy without type) is matched only by rules that leave that criterion out."""
        for criteria in ((patron_category, item_type), (patron_category, None), (None, item_type), FALLBACK):
            rule = self.rules.get(criteria)
            if rule is not None:
                return Decision(rule, self.policies[rule.loan_policy])
        raise LookupError("The rulebook has no fallback rule.")

    @property
    def fallback(self) -> Decision:
        rule = self.rules[FALLBACK]
        return Decision(rule, self.policies[rule.loan_policy])


# --- Reading it, once per version per process -----------------------------------------------------
_cached: Rulebook | None = None
_cache_lock = threading.Lock()


def in_force(version: str | None = None) -> Rulebook:
    """The rulebook at `version` (the one `lock_patron` read with the patron lock), from this process's
    copy when it is that version; else read again, in one statement. Without a version (a dry run, an
    explain call): one small query reads it."""
    global _cached
    if version is None:
        version = read_version()
    cached = _cached
    if cached is not None and cached.version == version:
        return cached
    loaded = _load()
    with _cache_lock:
        _cached = loaded
    return loaded


def read_version() -> str:
    return statements.read_version()


NO_VERSION = statements.NO_VERSION


def _load() -> Rulebook:
    """The rules with their policies and the version, from one snapshot of the database (one
    statement), so a change committed meanwhile is either wholly in it or wholly out."""
    rows = statements.read_matrix()
    version = rows[0][0] if rows else NO_VERSION
    rules: dict[tuple[str | None, str | None], Rule] = {}
    policies: dict[str, PolicyTerms] = {}
    for _, category, kind, *values in rows:
        if category is None and kind is None and values[0] is None:  # no rule at all (LEFT JOIN)
            continue
        terms = _terms(dict(zip(statements.POLICY_COLUMNS, values, strict=True)))
        rules[(category, kind)] = Rule(category, kind, terms.name)
        policies[terms.name] = terms
    if FALLBACK not in rules:  # an emptied table (a test's flush, a restore gone wrong): the environment's
        rules[FALLBACK] = Rule(None, None, DEFAULT_POLICY)
        policies.setdefault(DEFAULT_POLICY, terms_from_settings())
    return Rulebook(version=version, rules=rules, policies=policies)


def terms_from_settings() -> PolicyTerms:
    """The `default` policy as the environment describes it (LOAN_PERIOD_DAYS, LOAN_MAX_RENEWALS,
    LOAN_MAX_ACTIVE_PER_PATRON): what the first migration seeds, and what a rulebook without a
    fallback rule falls back on."""
    return PolicyTerms.of(LoanPolicy(name=DEFAULT_POLICY, **settings_defaults()))


def settings_defaults() -> dict[str, Any]:
    return {
        "loan_days": settings.LOAN_PERIOD_DAYS,
        "renewals_max": settings.LOAN_MAX_RENEWALS,
        "renewal_days": settings.LOAN_PERIOD_DAYS,
        "max_loans": settings.LOAN_MAX_ACTIVE_PER_PATRON,
    }


def _terms(row: dict[str, Any]) -> PolicyTerms:
    """A policy's row as PolicyTerms: SQLite answers decimals as floats or text, booleans as ints."""
    for name in DECIMAL_FIELDS:
        if row[name] is not None:
            row[name] = Decimal(str(row[name])).quantize(Decimal("0.01"))
    for field in fields(PolicyTerms):
        if field.type == "bool":
            row[field.name] = bool(row[field.name])
    return PolicyTerms(**row)


def forget_cached() -> None:
    """Tests: the next read loads the rulebook again."""
    global _cached
    _cached = None


def bump_version() -> None:
    """In the transaction of a change: every write that begins after it commits reloads the matrix."""
    statements.replace_version(uuid.uuid4().hex)


def lock_rulebook() -> None:
    """Serialises the changes (an API PUT, the admin): the version row, locked for the transaction."""
    statements.lock_version()


# --- Changing it (the API and the admin) ----------------------------------------------------------
def policy_body(policy: LoanPolicy) -> dict[str, Any]:
    """A policy as the API shows it (amounts as strings), with who changed it last and when."""
    body = PolicyTerms.of(policy).snapshot()
    body["updated_at"] = policy.updated_at.isoformat() if policy.updated_at else None
    body["updated_by"] = policy.updated_by
    return body


def rules_body(rules: list[CirculationRule] | None = None) -> dict[str, Any]:
    rows = rules if rules is not None else list(CirculationRule.objects.order_by("id"))
    return {"rules": [Rule(r.patron_category, r.item_type, r.loan_policy_id).as_dict() for r in rows]}


def put_policy(name: str, values: dict[str, Any], *, changed_by: str) -> tuple[LoanPolicy, bool]:
    """Creates or replaces the policy `name` with `values` (validated by the caller: the API's
    serializer or the admin's form, both from the model's fields). Open loans keep their snapshot.
    Returns the policy and whether it was created."""
    with transaction.atomic():
        lock_rulebook()
        before = LoanPolicy.objects.filter(name=name).first()
        policy = LoanPolicy(name=name, updated_by=changed_by, **values)
        policy.save()
        _changed(f"loan-policy/{name}", "put", changed_by, before and policy_body(before), policy_body(policy))
    return policy, before is None


def delete_policy(name: str, *, changed_by: str) -> None:
    """404 policy_not_found; 409 policy_in_use while a rule names it."""
    with transaction.atomic():
        lock_rulebook()
        policy = LoanPolicy.objects.filter(name=name).first()
        if policy is None:
            raise errors.POLICY_NOT_FOUND.error(loan_policy=name)
        if CirculationRule.objects.filter(loan_policy=policy).exists():
            raise errors.POLICY_IN_USE.error(loan_policy=name)
        before = policy_body(policy)
        policy.delete()
        _changed(f"loan-policy/{name}", "delete", changed_by, before, None)


def replace_rules(rules: list[Rule], *, changed_by: str) -> list[CirculationRule]:
    """Replaces the whole matrix, atomically: a refused set (422) leaves the rules in force."""
    with transaction.atomic():
        lock_rulebook()
        check_rule_set(rules, known_policies=set(LoanPolicy.objects.values_list("name", flat=True)))
        before = rules_body()
        CirculationRule.objects.all().delete()
        saved = CirculationRule.objects.bulk_create(
            CirculationRule(patron_category=r.patron_category, item_type=r.item_type, loan_policy_id=r.loan_policy)
            for r in rules
        )
        after = rules_body(saved)
        _changed("circulation-rules", "put", changed_by, before, after)
    return saved


def check_rule_set(rules: list[Rule], *, known_policies: set[str]) -> None:
    """422 `unknown_policy`, `duplicate_rule` or `missing_fallback_rule`, each naming the rules at
    fault by their index in the list."""
    unknown = {
        str(i): [f"No loan policy is named {r.loan_policy}."]
        for i, r in enumerate(rules)
        if r.loan_policy not in known_policies
    }
    if unknown:
        first = rules[int(next(iter(unknown)))].loan_policy
        raise errors.UNKNOWN_POLICY.error(loan_policy=first, details={"rules": unknown})
    seen: dict[tuple[str | None, str | None], int] = {}
    duplicates: dict[str, list[str]] = {}
    for index, rule in enumerate(rules):
        if rule.criteria in seen:
            duplicates[str(index)] = [f"Same patron_category and item_type as rule {seen[rule.criteria]}."]
        seen.setdefault(rule.criteria, index)
    if duplicates:
        raise errors.DUPLICATE_RULE.error(details={"rules": duplicates})
    if FALLBACK not in seen:
        raise errors.MISSING_FALLBACK_RULE.error()


def _changed(subject: str, action: str, changed_by: str, before: Any, after: Any) -> None:
    """Records the change (who, what before and after) and bumps the version, in its transaction."""
    RulesChange.objects.create(subject=subject, action=action, changed_by=changed_by, before=before, after=after)
    bump_version()
