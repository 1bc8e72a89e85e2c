"""The loan policy in force and its rules, one function per decision.

The values come from settings (environment variables, see `config/settings.py`). Each rule refuses
with 409 and its own error code. A real lend and a dry-run lend call the same `check_lend`, so they
cannot disagree; the services call these functions under the book's lock.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.conf import settings

from lending.book_state import BookState
from lending.errors import Conflict
from lending.models import Hold, Loan


@dataclass(frozen=True)
class LoanPolicy:
    loan_period_days: int
    max_renewals: int
    max_active_loans_per_patron: int
    block_on_overdue: bool
    renew_overdue_allowed: bool
    hold_pickup_days: int

    @property
    def loan_period(self) -> timedelta:
        return timedelta(days=self.loan_period_days)

    @property
    def pickup_window(self) -> timedelta:
        """How long a READY hold keeps its copy for its patron."""
        return timedelta(days=self.hold_pickup_days)

    def pickup_deadline(self, ready_at: datetime) -> datetime:
        """The hold pickup window's one home: a hold READY at `ready_at` keeps its copy until then."""
        return ready_at + self.pickup_window

    def as_dict(self) -> dict:
        return asdict(self)


def current() -> LoanPolicy:
    return LoanPolicy(
        loan_period_days=settings.LOAN_PERIOD_DAYS,
        max_renewals=settings.LOAN_MAX_RENEWALS,
        max_active_loans_per_patron=settings.LOAN_MAX_ACTIVE_PER_PATRON,
        block_on_overdue=settings.LOAN_BLOCK_ON_OVERDUE,
        renew_overdue_allowed=settings.LOAN_RENEW_OVERDUE_ALLOWED,
        hold_pickup_days=settings.HOLD_PICKUP_DAYS,
    )


# --- Lending ---------------------------------------------------------------------------------------
def check_lend(*, user_email: str, state: BookState, policy: LoanPolicy) -> Hold | None:
    """Every rule of a lend, in order. Raises the first refusal; returns the patron's hold on the
    book, which the lend fulfils, or None. `state` carries the patron's loans (`read_state(patron=)`)."""
    patron = state.patron_loans
    if patron.of_this_book:
        raise already_borrowed(user_email, state.book_id)
    check_patron_may_borrow(user_email=user_email, open_loans=patron.open, overdue_loans=patron.overdue, policy=policy)
    if state.copies_on_shelf() <= 0:
        raise Conflict(f"No copy of book {state.book_id} is available.", code="no_copy_available")
    if state.copies_free_for(user_email) <= 0:
        raise Conflict(
            f"Every free copy of book {state.book_id} is kept for patrons in its holds queue; reserve it instead.",
            code="copies_on_hold",
        )
    return state.hold_of(user_email)


def check_patron_may_borrow(*, user_email: str, open_loans: int, overdue_loans: int, policy: LoanPolicy) -> None:
    """The patron-wide rules: no overdue loan (when the policy says so) and the open-loan limit."""
    if policy.block_on_overdue and overdue_loans:
        raise Conflict(
            f"{user_email} has {overdue_loans} overdue loan(s); return them before borrowing.",
            code="patron_has_overdue_loans",
        )
    if open_loans >= policy.max_active_loans_per_patron:
        raise Conflict(
            f"{user_email} already has {open_loans} loans, the most a patron may hold at once.",
            code="loan_limit_reached",
        )


def already_borrowed(user_email: str, book_id: int) -> Conflict:
    return Conflict(f"{user_email} already has book {book_id} on loan.", code="already_borrowed")


# --- Renewals --------------------------------------------------------------------------------------
def check_renewal(*, loan: Loan, others_waiting: bool, policy: LoanPolicy, now: datetime) -> None:
    if loan.renewals >= policy.max_renewals:
        raise Conflict(
            f"Loan {loan.pk} was already renewed {loan.renewals} time(s), the most allowed.",
            code="renewal_limit_reached",
        )
    if loan.is_overdue(now) and not policy.renew_overdue_allowed:
        raise Conflict(f"Loan {loan.pk} is overdue and cannot be renewed; return it.", code="loan_overdue")
    if others_waiting:
        raise Conflict(
            f"Another patron is waiting for book {loan.book_id}; the loan cannot be renewed.",
            code="book_reserved_by_others",
        )


# --- Holds -----------------------------------------------------------------------------------------
def check_reservable(*, user_email: str, state: BookState, on_loan: bool) -> None:
    if on_loan:
        raise already_borrowed(user_email, state.book_id)
    if state.hold_of(user_email) is not None:
        raise already_reserved(user_email, state.book_id)
    if state.copies_free_for(user_email) > 0:
        raise Conflict(
            f"A copy of book {state.book_id} is free: borrow it instead of reserving.", code="copy_available"
        )


def already_reserved(user_email: str, book_id: int) -> Conflict:
    return Conflict(f"{user_email} already has a hold on book {book_id}.", code="already_reserved")
