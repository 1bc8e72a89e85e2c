"""Patron blocks: whether a patron may borrow, renew or reserve, and every reason why not.

Two kinds of reason:
- manual blocks, placed by staff (`PatronBlock`: a reason, the actions it blocks, an optional expiry);
- automated blocks, computed from the patron's loans at the moment of asking — never stored, so they
  cannot drift: `BLOCK_MAX_OVERDUE_LOANS` overdue loans or more, a loan overdue more than
  `BLOCK_MAX_OVERDUE_DAYS` days, unresolved lost items; and the policy's borrowing rules (no overdue
  loan when `LOAN_BLOCK_ON_OVERDUE`, the fallback loan policy's open-loan limit), listed so that a
  status screen shows them; and a balance owed at the Fees service above `FINES_BLOCK_LIMIT`.

`reasons_against` is a pure function of the counts, the manual blocks and the rules; `standing` reads
the counts and blocks (one query each) and applies it. The writes ask `standing` inside their
transaction, after taking the patron's lock, so a block placed before the write commits is seen.

The balance is the exception: it lives at the Fees service, and no peer is called under a lock. A
write asks `fees_standing` BEFORE its transaction and hands the answer to `check_not_blocked(...,
fees=...)`. Asking fails open: when the Fees service cannot answer, the balance is unknown and
nothing is refused for it (a desk must not stop because Fees is down). Without a limit nobody asks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction

from lending import calendar, circulation_rules, refusals
from lending.book_state import BookState
from lending.clients import fees as fees_client
from lending.db import blocks as statements
from lending.db.loans import PatronLoans, count_patron_loans
from lending.models import PatronBlock
from lending.patron_ref import patron_ref
from lending.refusals import Refusal
from lending.write_context import SYSTEM_WRITE, WriteContext

# Declared with the refusals; the admin, the API and the services take them from here too.
Action = refusals.Action
ALL_ACTIONS = refusals.ALL_ACTIONS


# --- The rules, as pure functions ------------------------------------------------------------------
@dataclass(frozen=True)
class BlockRules:
    max_overdue_loans: int
    max_overdue_days: int
    # The fallback loan policy's `max_loans` (None: no limit): what a status screen shows. A write
    # applies the limit of the rule it matched (`lending.policy.check_lend`).
    max_open_loans: int | None
    block_on_overdue: bool


def current_rules(rulebook: circulation_rules.Rulebook | None = None) -> BlockRules:
    """The rules in force; `rulebook`: the circulation rules a write already read with its patron
    lock (else they are read here)."""
    rulebook = rulebook or circulation_rules.in_force()
    return BlockRules(
        max_overdue_loans=settings.BLOCK_MAX_OVERDUE_LOANS,
        max_overdue_days=settings.BLOCK_MAX_OVERDUE_DAYS,
        max_open_loans=rulebook.fallback.terms.max_loans,
        block_on_overdue=settings.LOAN_BLOCK_ON_OVERDUE,
    )


@dataclass(frozen=True)
class PatronCounts:
    open_loans: int = 0
    overdue_loans: int = 0
    most_days_overdue: int = 0
    lost_loans: int = 0
    blocks_in_force: int = 0


@dataclass(frozen=True)
class Reason:
    """One reason an action is refused. `code` names the rule; a manual block carries its id, the
    staff's reason and its expiry."""

    code: str
    message: str
    actions: tuple[str, ...]
    block_id: int | None = None
    reason: str = ""
    expires_at: datetime | None = None

    @classmethod
    def of(cls, refusal: Refusal, actions: tuple[str, ...] | None = None, **values: object) -> Reason:
        """The reason `refusal` gives, its declared message filled with `values`; `actions`: those it
        refuses here, when fewer than the declared ones (a staff block's)."""
        assert refusal.message is not None, f"{refusal.code} is not shown on the status screen"
        return cls(refusal.code, refusal.message.format(**values), refusal.actions if actions is None else actions)

    def as_dict(self) -> dict:
        shown = {key: value for key, value in asdict(self).items() if value not in (None, "")}
        shown["actions"] = list(self.actions)
        return shown


# Codes of the reasons that `403 patron_blocked` refuses with; the others keep their own refusal.
BLOCKING_CODES = refusals.BLOCKING
# What a balance over FINES_BLOCK_LIMIT refuses: taking more home. Never a return, and not a hold.
FINES_BLOCKED_ACTIONS = refusals.FINES_OVER_LIMIT.actions


@dataclass(frozen=True)
class FeesStanding:
    """The patron's balance at the Fees service, as asked before a write's transaction.

    `limit` None: not asked (no FINES_BLOCK_LIMIT, or a caller that does not ask). `balance` None
    with a limit: asked, and the Fees service could not answer (unknown: fail open)."""

    limit: Decimal | None = None
    balance: fees_client.Balance | None = None

    @property
    def asked(self) -> bool:
        return self.limit is not None

    @property
    def unknown(self) -> bool:
        return self.asked and self.balance is None

    @property
    def over_limit(self) -> bool:
        return self.limit is not None and self.balance is not None and self.balance.amount > self.limit

    def shown_balance(self) -> str | None:
        """The status screen's `balance`: the amount, `unknown`, or None when not asked."""
        if not self.asked:
            return None
        return "unknown" if self.balance is None else str(self.balance.amount)


NOT_ASKED = FeesStanding()


def fines_block_limit() -> Decimal | None:
    limit = getattr(settings, "FINES_BLOCK_LIMIT", None)
    if limit is None or limit == "":
        return None
    return Decimal(str(limit))


def fees_standing(user_email: str) -> FeesStanding:
    """Asks the Fees service for the patron's balance, when a limit is set; never under a lock
    (call it before the write's transaction). An anonymised stand-in has no ref: nothing to ask."""
    limit = fines_block_limit()
    if limit is None:
        return NOT_ASKED
    ref = patron_ref(user_email)
    if ref is None:
        return FeesStanding(limit=limit, balance=fees_client.Balance(Decimal("0"), settings.FINES_CURRENCY))
    return FeesStanding(limit=limit, balance=fees_client.balance(ref))


def fees_reasons(fees: FeesStanding) -> list[Reason]:
    """The balance block: only on a known balance above the limit (unknown fails open)."""
    if not fees.over_limit:
        return []
    assert fees.balance is not None and fees.limit is not None
    return [
        Reason.of(
            refusals.FINES_OVER_LIMIT, balance=fees.balance.amount, currency=fees.balance.currency, limit=fees.limit
        )
    ]


def automated_reasons(counts: PatronCounts, rules: BlockRules) -> list[Reason]:
    """The reasons the patron's loans alone give, in a fixed order."""
    # Every template below is filled from the counts and the rules.
    values = {**vars(counts), **vars(rules)}  # plain scalars: no deep copy (`asdict`) on every write
    applying = [
        (refusals.TOO_MANY_OVERDUE_LOANS, 0 < rules.max_overdue_loans <= counts.overdue_loans),
        (refusals.LOAN_OVERDUE_TOO_LONG, counts.most_days_overdue > rules.max_overdue_days),
        (refusals.LOST_ITEMS, counts.lost_loans > 0),
        (refusals.PATRON_HAS_OVERDUE_LOANS, rules.block_on_overdue and counts.overdue_loans > 0),
        (refusals.LOAN_LIMIT, rules.max_open_loans is not None and counts.open_loans >= rules.max_open_loans),
    ]
    return [Reason.of(refusal, **values) for refusal, applies in applying if applies]


def manual_reasons(blocks: list[PatronBlock]) -> list[Reason]:
    return [
        replace(
            Reason.of(refusals.MANUAL_BLOCK, tuple(block.blocks), reason=block.reason),
            block_id=block.pk,
            reason=block.reason,
            expires_at=block.expires_at,
        )
        for block in blocks
    ]


def reasons_against(
    action: str,
    counts: PatronCounts,
    blocks: list[PatronBlock],
    rules: BlockRules,
    fees: FeesStanding = NOT_ASKED,
) -> list[Reason]:
    """Every reason the patron may not take `action`, manual blocks first."""
    every = manual_reasons(blocks) + automated_reasons(counts, rules) + fees_reasons(fees)
    return [reason for reason in every if action in reason.actions]


# --- Reading a patron's standing -------------------------------------------------------------------
@dataclass(frozen=True)
class Standing:
    user_email: str
    counts: PatronCounts
    blocks: list[PatronBlock]
    rules: BlockRules
    reasons: dict[str, list[Reason]] = field(default_factory=dict)
    fees: FeesStanding = NOT_ASKED

    def may(self, action: str) -> bool:
        return not self.reasons[action]

    def blocking(self, action: str) -> list[Reason]:
        """The reasons that refuse `action` with `403 patron_blocked`."""
        return [reason for reason in self.reasons[action] if reason.code in BLOCKING_CODES]


def patron_counts(
    user_email: str, now: datetime, blocks_in_force: int = 0, loans: PatronLoans | None = None
) -> PatronCounts:
    """The patron's loans counted as the rules need them: one query, unless the caller already has
    them (`loans`: a lend reads them with the book's state)."""
    loans = loans or count_patron_loans(user_email, now)
    oldest = loans.oldest_overdue_due
    return PatronCounts(
        open_loans=loans.open,
        overdue_loans=loans.overdue,
        most_days_overdue=calendar.days_overdue(oldest, now) if oldest else 0,
        lost_loans=loans.lost,
        blocks_in_force=blocks_in_force,
    )


def standing(
    user_email: str,
    now: datetime,
    rules: BlockRules | None = None,
    loans: PatronLoans | None = None,
    *,
    fees: FeesStanding = NOT_ASKED,
    blocks_in_force: list[PatronBlock] | None = None,
) -> Standing:
    """What the patron may do at `now`, and why not (`loans`, `blocks_in_force`: the patron's, when
    already read; `fees`: the balance `fees_standing` found, asked before any lock)."""
    rules = rules or current_rules()
    blocks = statements.blocks_in_force(user_email, now) if blocks_in_force is None else blocks_in_force
    counts = patron_counts(user_email, now, blocks_in_force=len(blocks), loans=loans)
    reasons = {action.value: reasons_against(action, counts, blocks, rules, fees) for action in ALL_ACTIONS}
    return Standing(user_email=user_email, counts=counts, blocks=blocks, rules=rules, reasons=reasons, fees=fees)


def check_not_blocked(
    user_email: str,
    action: str,
    now: datetime,
    *,
    rulebook: circulation_rules.Rulebook,
    loans: PatronLoans | None = None,
    blocks_in_force: list[PatronBlock] | None = None,
    fees: FeesStanding = NOT_ASKED,
    context: WriteContext = SYSTEM_WRITE,
) -> Standing:
    """Inside a write's transaction, after the patron's lock (so a block committed meanwhile is seen):
    403 `patron_blocked` with every blocking reason in `details`, unless the write carries a staff
    override (which then notes what it lifted). Returns the standing, whose counts the caller may use.
    `rulebook`: the circulation rules the write read with its patron lock; `loans`, `blocks_in_force`:
    the patron's, when the write read them with the book's state; `fees`: what
    `fees_standing(user_email)` answered BEFORE the transaction (default: not asked, no balance block)."""
    found = standing(
        user_email, now, rules=current_rules(rulebook), loans=loans, fees=fees, blocks_in_force=blocks_in_force
    )
    refusing = found.blocking(action)
    if refusing and not context.lifts(refusals.PATRON_BLOCKED):
        raise refusals.PATRON_BLOCKED.error(
            user_email=user_email, action=action, details={"blocks": [reason.as_dict() for reason in refusing]}
        )
    return found


def check_patron_in_state(
    state: BookState,
    user_email: str,
    action: str,
    now: datetime,
    *,
    rulebook: circulation_rules.Rulebook,
    fees: FeesStanding = NOT_ASKED,
    context: WriteContext = SYSTEM_WRITE,
) -> Standing:
    """`check_not_blocked` with the patron's loans and blocks that the write read with the book's state
    (`read_state(patron=user_email)`, after the patron lock): no query of its own."""
    assert state.patron_loans is not None, "the state was read for this patron"
    return check_not_blocked(
        user_email,
        action,
        now,
        rulebook=rulebook,
        loans=state.patron_loans,
        blocks_in_force=state.patron_blocks,
        fees=fees,
        context=context,
    )


def place(
    user_email: str, *, reason: str, actions: list[str], expires_at: datetime | None, by: str, now: datetime
) -> PatronBlock:
    """A new block, placed under the patron's lock: a write of this patron in flight finishes first
    (it is ordered before the block), and every write that starts after it sees the block."""
    from lending.locks import lock_patron

    with transaction.atomic():
        lock_patron(user_email)
        return PatronBlock.objects.create(
            user_email=user_email,
            reason=reason,
            blocks=[action for action in ALL_ACTIONS if action in actions],
            created_at=now,
            expires_at=expires_at,
            created_by=by,
        )
