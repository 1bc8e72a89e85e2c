"""The loan policy in force and its rules, one function per decision.

The values come from settings (environment variables, see `config/settings.py`). Each rule refuses
with 409 and its own error code. A real lend and a dry-run lend call the same `check_lend`, so they
cannot disagree; the services call these functions under the book's lock.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.conf import settings

from lending import calendar, errors
from lending.book_state import BookState
from lending.errors import LendingError
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

    def pickup_deadline(self, ready_at: datetime, closed: calendar.ClosedDays | None = None) -> datetime:
        """The hold pickup window's one home: a hold READY at `ready_at` keeps its copy until the end
        of the window's last day, moved past closed days (`lending.calendar`'s one rule)."""
        return calendar.due_after(ready_at, self.pickup_window, closed)

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
    if patron is None:
        raise ValueError("check_lend needs the patron's loans: read the state with read_state(patron=...)")
    if patron.of_this_book:
        raise already_borrowed(user_email, state.book_id)
    check_patron_may_borrow(user_email=user_email, open_loans=patron.open, overdue_loans=patron.overdue, policy=policy)
    if state.copies_on_shelf() <= 0:
        raise errors.NO_COPY_AVAILABLE.error(book_id=state.book_id)
    if state.copies_free_for(user_email) <= 0:
        raise errors.COPIES_ON_HOLD.error(book_id=state.book_id)
    return state.hold_of(user_email)


def check_patron_may_borrow(*, user_email: str, open_loans: int, overdue_loans: int, policy: LoanPolicy) -> None:
    """The patron-wide rules: no overdue loan (when the policy says so) and the open-loan limit."""
    if policy.block_on_overdue and overdue_loans:
        raise errors.PATRON_HAS_OVERDUE_LOANS.error(user_email=user_email, overdue_loans=overdue_loans)
    if open_loans >= policy.max_active_loans_per_patron:
        raise errors.LOAN_LIMIT_REACHED.error(user_email=user_email, open_loans=open_loans)


def already_borrowed(user_email: str, book_id: int) -> LendingError:
    return errors.ALREADY_BORROWED.error(user_email=user_email, book_id=book_id)


# --- Renewals --------------------------------------------------------------------------------------
def check_renewal(*, loan: Loan, others_waiting: bool, policy: LoanPolicy, now: datetime) -> None:
    if loan.renewals >= policy.max_renewals:
        raise errors.RENEWAL_LIMIT_REACHED.error(loan_id=loan.pk, renewals=loan.renewals)
    if loan.is_overdue(now) and not policy.renew_overdue_allowed:
        raise errors.LOAN_OVERDUE.error(loan_id=loan.pk)
    if others_waiting:
        raise errors.BOOK_RESERVED_BY_OTHERS.error(book_id=loan.book_id)


# --- Holds -----------------------------------------------------------------------------------------
def check_reservable(*, user_email: str, state: BookState, on_loan: bool) -> None:
    if on_loan:
        raise already_borrowed(user_email, state.book_id)
    if state.hold_of(user_email) is not None:
        raise already_reserved(user_email, state.book_id)
    if state.copies_free_for(user_email) > 0:
        raise errors.COPY_AVAILABLE.error(book_id=state.book_id)


def already_reserved(user_email: str, book_id: int) -> LendingError:
    return errors.ALREADY_RESERVED.error(user_email=user_email, book_id=book_id)
