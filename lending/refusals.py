"""Every refusal of a write (borrow, renew, reserve), each declared once.

A refusal says its code, the actions it refuses, whether a staff override lifts it, what the patron
status screen says of it and, when a write answers with it, its API error from the catalogue
(`lending.errors`, which keeps the status and the error's message). Every reader takes it from here:
the write's rules (`lending.policy`, `lending.blocks.check_not_blocked`), the status screen's reasons
(`lending.blocks`), the overrides (`lending.overrides`) and the OpenAPI text (`lending.api`).

Two kinds of refusal reach a patron's standing:
- blocking: a reason with no API error of its own (a staff block, too many overdue loans, ...); a write
  refuses it with 403 `patron_blocked`, listing every such reason in `details.blocks`, and an override
  lifts them together, as `patron_blocked`;
- its own: a refusal a write answers with under its own code (409 `loan_limit_reached`, ...).

A leaf module: it imports only the error catalogue (and Django's choices, for `Action`), so that every
reader may import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import models

from lending import errors
from lending.errors import ErrorCode, LendingError


class Action(models.TextChoices):
    BORROW = "borrow"
    RENEW = "renew"
    RESERVE = "reserve"


ALL_ACTIONS = (Action.BORROW, Action.RENEW, Action.RESERVE)
# Every refusal by code, in declaration order (each registers itself, as the error catalogue's codes do).
REFUSALS: dict[str, Refusal] = {}


@dataclass(frozen=True)
class Refusal:
    """One refusal. `message`: what the status screen says of it, a `str.format` template the screen
    fills with the patron's counts and the rules; None for a refusal the screen does not list (it is
    about a book or a loan, not the patron). `api_error`: the catalogue's entry a write answers with,
    whose code is this refusal's; None for a blocking reason, answered with `patron_blocked`."""

    code: str
    actions: tuple[Action, ...]
    liftable: bool
    message: str | None = None
    api_error: ErrorCode | None = None

    def __post_init__(self) -> None:
        if self.api_error is not None and self.api_error.code != self.code:
            raise ValueError(f"Refusal {self.code} names the error {self.api_error.code}")
        REFUSALS[self.code] = self

    @classmethod
    def of(
        cls, api_error: ErrorCode, actions: tuple[Action, ...], *, liftable: bool = False, message: str | None = None
    ) -> Refusal:
        """A refusal a write answers with under its own code: the catalogue's entry."""
        return cls(api_error.code, actions, liftable, message, api_error)

    @property
    def blocking(self) -> bool:
        return self.api_error is None

    @property
    def on_status_screen(self) -> bool:
        return self.message is not None

    def error(self, message: str | None = None, **values: Any) -> LendingError:
        """The exception a write raises, as `ErrorCode.error` makes it."""
        if self.api_error is None:
            raise TypeError(f"{self.code} is refused as {PATRON_BLOCKED.code}, not on its own")
        return self.api_error.error(message, **values)


# --- Lifted by an override -----------------------------------------------------------------------
# In the order a write meets them.
PATRON_BLOCKED = Refusal.of(errors.PATRON_BLOCKED, ALL_ACTIONS, liftable=True)
PATRON_HAS_OVERDUE_LOANS = Refusal.of(
    errors.PATRON_HAS_OVERDUE_LOANS,
    (Action.BORROW,),
    liftable=True,
    message="{overdue_loans} overdue loan(s); return them before borrowing.",
)
LOAN_LIMIT = Refusal.of(
    errors.LOAN_LIMIT_REACHED,
    (Action.BORROW,),
    liftable=True,
    message="{open_loans} open loan(s), the most a patron may hold at once.",
)
RENEWAL_LIMIT = Refusal.of(errors.RENEWAL_LIMIT_REACHED, (Action.RENEW,), liftable=True)
LOAN_OVERDUE = Refusal.of(errors.LOAN_OVERDUE, (Action.RENEW,), liftable=True)

# --- Blocking: refused with 403 `patron_blocked`, lifted with it ----------------------------------
# A staff block refuses the actions it names, any of these.
MANUAL_BLOCK = Refusal("manual_block", ALL_ACTIONS, liftable=True, message="Blocked by staff: {reason}")
TOO_MANY_OVERDUE_LOANS = Refusal(
    "too_many_overdue_loans",
    ALL_ACTIONS,
    liftable=True,
    message="{overdue_loans} overdue loan(s); {max_overdue_loans} or more block the patron.",
)
LOAN_OVERDUE_TOO_LONG = Refusal(
    "loan_overdue_too_long",
    ALL_ACTIONS,
    liftable=True,
    message="A loan is {most_days_overdue} day(s) overdue; more than {max_overdue_days} block the patron.",
)
LOST_ITEMS = Refusal("lost_items", ALL_ACTIONS, liftable=True, message="{lost_loans} lost item(s) not resolved.")
# Taking more home: never a return, and not a hold.
FINES_OVER_LIMIT = Refusal(
    "fines_over_limit",
    (Action.BORROW, Action.RENEW),
    liftable=True,
    message="{balance} {currency} owed in fines and fees; more than {limit} blocks borrowing and renewing.",
)

# --- Never lifted: they protect the book's copies and the other patrons ---------------------------
ALREADY_BORROWED = Refusal.of(errors.ALREADY_BORROWED, (Action.BORROW, Action.RESERVE))
ITEM_NOT_LOANABLE = Refusal.of(errors.ITEM_NOT_LOANABLE, (Action.BORROW,))
# A check-out names its copy (`lending.services.checkout`): out to another patron, or trapped for one.
ITEM_ON_LOAN = Refusal.of(errors.ITEM_ON_LOAN, (Action.BORROW,))
ITEM_ON_HOLD_SHELF = Refusal.of(errors.ITEM_ON_HOLD_SHELF, (Action.BORROW,))
NO_COPY_AVAILABLE = Refusal.of(errors.NO_COPY_AVAILABLE, (Action.BORROW,))
COPIES_ON_HOLD = Refusal.of(errors.COPIES_ON_HOLD, (Action.BORROW,))
BOOK_RESERVED_BY_OTHERS = Refusal.of(errors.BOOK_RESERVED_BY_OTHERS, (Action.RENEW,))
HOLDS_NOT_ALLOWED = Refusal.of(errors.HOLDS_NOT_ALLOWED, (Action.RESERVE,))
ALREADY_RESERVED = Refusal.of(errors.ALREADY_RESERVED, (Action.RESERVE,))
COPY_AVAILABLE = Refusal.of(errors.COPY_AVAILABLE, (Action.RESERVE,))


# --- Derived -------------------------------------------------------------------------------------
# What an override lifts and records (`Override.lifted`), by code: the blocking reasons are lifted as
# one, as `patron_blocked`.
LIFTABLE = frozenset(code for code, refusal in REFUSALS.items() if refusal.liftable and not refusal.blocking)
# The status screen's reasons that a write refuses with 403 `patron_blocked`.
BLOCKING = frozenset(code for code, refusal in REFUSALS.items() if refusal.blocking)


def lifted_by_override() -> list[Refusal]:
    """The refusals an override lifts by their own code, in declaration order."""
    return [refusal for refusal in REFUSALS.values() if refusal.code in LIFTABLE]


def on_status_screen(*, blocking: bool) -> list[Refusal]:
    """The reasons the status screen may list, blocking or with their own code, in declaration order."""
    return [refusal for refusal in REFUSALS.values() if refusal.on_status_screen and refusal.blocking == blocking]


def code_list(refusals: list[Refusal], conjunction: str | None = None) -> str:
    """Codes as prose lists them: "`a`, `b`, `c`", or with a conjunction "`a`, `b` and `c`"."""
    codes = [f"`{refusal.code}`" for refusal in refusals]
    if conjunction is None or len(codes) < 2:
        return ", ".join(codes)
    return f"{', '.join(codes[:-1])} {conjunction} {codes[-1]}"
