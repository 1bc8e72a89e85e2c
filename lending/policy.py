"""The rules of a write, one function per decision.

A write's loan policy comes from the circulation rules (`lending.circulation_rules`: the rule matched by
the patron's category and the copy's item type); the library-wide rules stay settings (environment
variables, see `config/settings.py`): no borrowing with an overdue loan (`LOAN_BLOCK_ON_OVERDUE`),
renewing an overdue loan (`LOAN_RENEW_OVERDUE_ALLOWED`), the hold pickup window (`HOLD_PICKUP_DAYS`).
Each rule refuses with its own refusal, declared in `lending.refusals` with its error code. A real lend
and a dry-run lend call the same `check_lend`, so they cannot disagree; the services call these
functions under the book's lock. A refusal staff may lift (`liftable`) is lifted here, when the write
carries an override, and noted.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from lending import calendar, circulation_rules, refusals
from lending.book_state import BookState
from lending.circulation_rules import Decision, PolicyTerms
from lending.errors import LendingError
from lending.models import Hold, Loan
from lending.write_context import SYSTEM_WRITE, WriteContext


def pickup_deadline(ready_at: datetime, closed: calendar.ClosedDays | None = None) -> datetime:
    """The hold pickup window's one home: a hold READY at `ready_at` keeps its copy until the end of
    the window's last day, moved past closed days (`lending.calendar`'s one rule)."""
    return calendar.due_after(ready_at, timedelta(days=settings.HOLD_PICKUP_DAYS), closed)


def fallback_summary() -> dict:
    """`GET /policy/`: the fallback loan policy (what a patron without category borrows a copy without
    type under) and the library-wide rules, in the names of the policy's first release."""
    terms = circulation_rules.in_force().fallback.terms
    return {
        "loan_period_days": terms.loan_days,
        "max_renewals": terms.renewals_max,
        "max_active_loans_per_patron": terms.max_loans,
        "block_on_overdue": settings.LOAN_BLOCK_ON_OVERDUE,
        "renew_overdue_allowed": settings.LOAN_RENEW_OVERDUE_ALLOWED,
        "hold_pickup_days": settings.HOLD_PICKUP_DAYS,
        "loan_policy": terms.name,
    }


# --- Lending ---------------------------------------------------------------------------------------
def check_lend(
    *,
    user_email: str,
    state: BookState,
    decision: Decision,
    open_covered: int,
    item_barcode: str | None = None,
    context: WriteContext = SYSTEM_WRITE,
) -> Hold | None:
    """Every rule of a lend, in order. Raises the first refusal; returns the patron's hold on the
    book, which the lend fulfils, or None. `state` carries the patron's loans (`read_state(patron=)`);
    `open_covered`: the patron's open loans that the matched rule's limit counts (`covered_loans`);
    `item_barcode`: the copy, for a check-out; `context`: the write's (its override lifts what it may)."""
    patron = state.patron_loans
    if patron is None:
        raise ValueError("check_lend needs the patron's loans: read the state with read_state(patron=...)")
    if patron.of_this_book:
        raise already_borrowed(user_email, state.book_id)
    if not decision.terms.loanable:
        raise not_loanable(decision.terms, book_id=state.book_id, item_barcode=item_barcode)
    check_patron_may_borrow(
        user_email=user_email,
        open_loans=open_covered,
        overdue_loans=patron.overdue,
        terms=decision.terms,
        context=context,
    )
    if state.copies_on_shelf() <= 0:
        raise refusals.NO_COPY_AVAILABLE.error(book_id=state.book_id)
    if state.copies_free_for(user_email) <= 0:
        raise refusals.COPIES_ON_HOLD.error(book_id=state.book_id)
    return state.hold_of(user_email)


def check_patron_may_borrow(
    *, user_email: str, open_loans: int, overdue_loans: int, terms: PolicyTerms, context: WriteContext = SYSTEM_WRITE
) -> None:
    """The patron-wide rules: no overdue loan (when the library says so) and the policy's open-loan
    limit. An override lifts both."""
    if settings.LOAN_BLOCK_ON_OVERDUE and overdue_loans and not context.lifts(refusals.PATRON_HAS_OVERDUE_LOANS):
        raise refusals.PATRON_HAS_OVERDUE_LOANS.error(user_email=user_email, overdue_loans=overdue_loans)
    limit = terms.max_loans
    if limit is not None and open_loans >= limit and not context.lifts(refusals.LOAN_LIMIT):
        raise refusals.LOAN_LIMIT.error(user_email=user_email, open_loans=open_loans, loan_policy=terms.name)


def not_loanable(terms: PolicyTerms, *, book_id: int, item_barcode: str | None) -> LendingError:
    copy = f"Item {item_barcode}" if item_barcode else f"Book {book_id}"
    return refusals.ITEM_NOT_LOANABLE.error(f"{copy} is not for loan (loan policy {terms.name}).")


def covered_loans(decision: Decision, *, all_open: int, of_type: int | None) -> int:
    """The open loans the rule's limit counts: all of the patron's for a rule without item type, those
    of its type otherwise (`of_type`)."""
    if decision.rule.item_type is None or of_type is None:
        return all_open
    return of_type


def already_borrowed(user_email: str, book_id: int) -> LendingError:
    return refusals.ALREADY_BORROWED.error(user_email=user_email, book_id=book_id)


# --- Renewals --------------------------------------------------------------------------------------
def loan_terms(loan: Loan, rulebook: circulation_rules.Rulebook) -> PolicyTerms:
    """The policy a loan follows: its snapshot; a loan made before the rules existed follows the
    fallback policy in force."""
    if loan.policy_terms:
        return PolicyTerms.from_snapshot(loan.policy_terms)
    return rulebook.fallback.terms


def check_renewal(
    *, loan: Loan, others_waiting: bool, terms: PolicyTerms, now: datetime, context: WriteContext = SYSTEM_WRITE
) -> None:
    if loan.renewals >= terms.renewals_max and not context.lifts(refusals.RENEWAL_LIMIT):
        raise refusals.RENEWAL_LIMIT.error(loan_id=loan.pk, renewals=loan.renewals)
    overdue_refused = loan.is_overdue(now) and not settings.LOAN_RENEW_OVERDUE_ALLOWED
    if overdue_refused and not context.lifts(refusals.LOAN_OVERDUE):
        raise refusals.LOAN_OVERDUE.error(loan_id=loan.pk)
    if others_waiting:
        raise refusals.BOOK_RESERVED_BY_OTHERS.error(book_id=loan.book_id)


# --- Holds -----------------------------------------------------------------------------------------
def check_reservable(*, user_email: str, state: BookState, on_loan: bool, decision: Decision) -> None:
    if not decision.terms.holds_allowed:
        raise refusals.HOLDS_NOT_ALLOWED.error(book_id=state.book_id, loan_policy=decision.terms.name)
    if on_loan:
        raise already_borrowed(user_email, state.book_id)
    if state.hold_of(user_email) is not None:
        raise already_reserved(user_email, state.book_id)
    if state.copies_free_for(user_email) > 0:
        raise refusals.COPY_AVAILABLE.error(book_id=state.book_id)


def already_reserved(user_email: str, book_id: int) -> LendingError:
    return refusals.ALREADY_RESERVED.error(user_email=user_email, book_id=book_id)
