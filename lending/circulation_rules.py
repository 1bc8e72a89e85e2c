"""Circulation rules: named loan policies, and the matrix (patron category x item type) that picks one.

A *loan policy* says for how long a copy goes out, how often and for how long it renews, how many
open loans the patron may hold under it, whether a title may be reserved, whether the copy leaves the
building at all, and what lateness and loss cost (the fines fields). The *rules* pick the policy of a
write from the patron's category (the User service's) and the copy's item type (the Book service's):
the rule with more criteria wins; with as many, the patron category beats the item type. A rule with
neither criterion (the fallback) always exists, so every write finds a policy.

Reading the rules costs a lend no round trip: the matrix is kept per process (`Rulebook`), keyed by a
version that every change bumps in the same transaction; a write reads the version with the patron
lock it takes anyway (`lending.locks.lock_patron`) and reloads the matrix, in one statement, only when
it moved. So a write sees the whole matrix of one moment: the old or the new, never a mix.

A loan keeps the name and a snapshot of the policy it was made under (`Loan.loan_policy`,
`Loan.policy_terms`): editing a policy later never moves an open loan's due date, and its renewals
follow the snapshot.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from typing import Any

from django.db import connection, models
from django.db.models.functions import Coalesce

FALLBACK = (None, None)
DEFAULT_POLICY = "default"
NAME_MAX_LENGTH = 64
CRITERION_MAX_LENGTH = 64  # as an item type (`lending.clients.books`) or a patron category (`users`)
MAX_RULES = 1000


# --- The tables -----------------------------------------------------------------------------------
class LoanPolicy(models.Model):
    """A named loan policy (`GET /loan-policies/`, the admin). Amounts are decimals in FINES_CURRENCY."""

    name = models.SlugField(max_length=NAME_MAX_LENGTH, primary_key=True)
    loan_days = models.PositiveIntegerField(help_text="A loan is due at the end of the open day this many days out.")
    renewals_max = models.PositiveIntegerField(default=0, help_text="Renewals allowed per loan.")
    renewal_days = models.PositiveIntegerField(help_text="Each renewal moves the due date this many days on.")
    max_loans = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Open loans the patron may hold that the matched rule covers (all of them for a rule "
        "without item type, those of its type otherwise); empty: no limit.",
    )
    holds_allowed = models.BooleanField(default=True, help_text="Patrons may reserve titles under it.")
    loanable = models.BooleanField(default=True, help_text="False for reference copies: they do not leave.")
    fine_per_day = models.DecimalField(max_digits=8, decimal_places=2, default=Decimal("0.00"))
    fine_grace_days = models.PositiveIntegerField(
        default=0, help_text="Late by this many days or fewer: no fine; beyond, the whole late period counts."
    )
    fine_max = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True, help_text="Empty: no cap.")
    fine_counts_closed_days = models.BooleanField(default=True, help_text="Days the library is closed count as late.")
    lost_item_fee = models.DecimalField(max_digits=8, decimal_places=2, default=Decimal("0.00"))
    lost_processing_fee = models.DecimalField(max_digits=8, decimal_places=2, default=Decimal("0.00"))
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

    version = models.BigIntegerField(default=1)

    class Meta:
        app_label = "lending"


ROW_ID = 1


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
        """As the loan stores it, and as the API shows it: amounts as strings ("0.75")."""
        return {key: str(value) if isinstance(value, Decimal) else value for key, value in asdict(self).items()}

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any]) -> PolicyTerms:
        values = {field.name: snapshot.get(field.name) for field in fields(cls)}
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

    version: int
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


def in_force(version: int | None = None) -> Rulebook:
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
        if _cached is None or loaded.version >= _cached.version:
            _cached = loaded
    return loaded


def read_version() -> int:
    with connection.cursor() as cursor:
        cursor.execute(VERSION_SQL, [ROW_ID])
        row = cursor.fetchone()
    return row[0] if row else 0


VERSION_SQL = "SELECT version FROM lending_rulebookversion WHERE id = %s"


def _load() -> Rulebook:
    """The rules with their policies and the version, from one snapshot of the database (one
    statement), so a change committed meanwhile is either wholly in it or wholly out."""
    columns = [field.name for field in fields(PolicyTerms)]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT v.version, r.patron_category, r.item_type, "
            + ", ".join(f"p.{column}" for column in columns)
            + " FROM lending_rulebookversion v"
            " LEFT JOIN lending_circulationrule r ON TRUE"
            " LEFT JOIN lending_loanpolicy p ON p.name = r.loan_policy_id"
            " WHERE v.id = %s",
            [ROW_ID],
        )
        rows = cursor.fetchall()
    version = rows[0][0] if rows else 0
    rules: dict[tuple[str | None, str | None], Rule] = {}
    policies: dict[str, PolicyTerms] = {}
    for _, category, kind, *values in rows:
        if category is None and kind is None and values[0] is None:  # no rule at all (LEFT JOIN)
            continue
        terms = _terms(dict(zip(columns, values, strict=True)))
        rules[(category, kind)] = Rule(category, kind, terms.name)
        policies[terms.name] = terms
    return Rulebook(version=version, rules=rules, policies=policies)


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
    with connection.cursor() as cursor:
        cursor.execute("UPDATE lending_rulebookversion SET version = version + 1 WHERE id = %s", [ROW_ID])
        if cursor.rowcount == 0:
            cursor.execute("INSERT INTO lending_rulebookversion (id, version) VALUES (%s, 2)", [ROW_ID])


def lock_rulebook() -> None:
    """Serialises the changes (an API PUT, the admin): the version row, locked for the transaction."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT version FROM lending_rulebookversion WHERE id = %s FOR UPDATE", [ROW_ID])
