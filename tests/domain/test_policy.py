"""The loan policy's rules (lending/policy.py) without a database: each decision from the book's state, the
patron's loan counts and a policy built in the test. A refusal is a 409 with its own error code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lending import policy
from lending.book_state import BookState, PatronLoans
from lending.calendar import ClosedDays
from lending.errors import LendingError
from lending.models import HoldStatus, Loan
from tests.factories import HoldFactory

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PATRON = "reader@example.com"
RULES = policy.LoanPolicy(
    loan_period_days=60,
    max_renewals=2,
    max_active_loans_per_patron=3,
    block_on_overdue=True,
    renew_overdue_allowed=False,
    hold_pickup_days=3,
)


def book(copies: int = 1, open_loans: int = 0, *, holds=(), patron: PatronLoans | None = None) -> BookState:
    return BookState(book_id=7, copies=copies, open_loans=open_loans, holds=list(holds), patron_loans=patron)


def refusal(call) -> tuple[int, str]:
    with pytest.raises(LendingError) as refused:
        call()
    return refused.value.status, refused.value.code


def lend(state: BookState, rules: policy.LoanPolicy = RULES):
    return policy.check_lend(user_email=PATRON, state=state, policy=rules)


# --- lending -----------------------------------------------------------------------------------------
def test_a_lend_of_a_free_copy_passes_and_fulfils_no_hold():
    assert lend(book(patron=PatronLoans())) is None


def test_a_lend_fulfils_the_patrons_own_ready_hold():
    own = HoldFactory.build(pk=1, user_email=PATRON, status=HoldStatus.READY)
    assert lend(book(holds=[own], patron=PatronLoans())) is own


@pytest.mark.parametrize(
    ("state", "code"),
    [
        (book(patron=PatronLoans(open=1, of_this_book=1)), "already_borrowed"),
        (book(patron=PatronLoans(open=1, overdue=1)), "patron_has_overdue_loans"),
        (book(patron=PatronLoans(open=3)), "loan_limit_reached"),
        (book(copies=1, open_loans=1, patron=PatronLoans()), "no_copy_available"),
        (book(holds=[HoldFactory.build(pk=1, status=HoldStatus.WAITING)], patron=PatronLoans()), "copies_on_hold"),
    ],
    ids=["same book", "overdue", "limit", "no copy", "kept for the queue"],
)
def test_each_lending_rule_refuses_with_its_code(state, code):
    assert refusal(lambda: lend(state)) == (409, code)


def test_the_first_rule_broken_is_the_one_reported():
    everything_wrong = book(copies=1, open_loans=1, patron=PatronLoans(open=3, overdue=1, of_this_book=1))
    assert refusal(lambda: lend(everything_wrong)) == (409, "already_borrowed")


def test_an_overdue_loan_does_not_block_when_the_policy_says_so():
    lenient = policy.LoanPolicy(**{**RULES.as_dict(), "block_on_overdue": False})
    assert lend(book(patron=PatronLoans(open=1, overdue=1)), lenient) is None


# --- renewals ----------------------------------------------------------------------------------------
def loan(*, renewals: int = 0, due_in: timedelta = timedelta(days=10)) -> Loan:
    return Loan(pk=1, user_email=PATRON, book_id=7, date_borrowed=NOW, date_due=NOW + due_in, renewals=renewals)


def renew(subject: Loan, *, others_waiting: bool = False, rules: policy.LoanPolicy = RULES) -> None:
    policy.check_renewal(loan=subject, others_waiting=others_waiting, policy=rules, now=NOW)


def test_a_loan_in_time_with_nobody_waiting_may_be_renewed():
    assert renew(loan(renewals=1)) is None


@pytest.mark.parametrize(
    ("subject", "others_waiting", "code"),
    [
        (loan(renewals=2), False, "renewal_limit_reached"),
        (loan(due_in=-timedelta(days=1)), False, "loan_overdue"),
        (loan(), True, "book_reserved_by_others"),
    ],
    ids=["limit", "overdue", "others waiting"],
)
def test_each_renewal_rule_refuses_with_its_code(subject, others_waiting, code):
    assert refusal(lambda: renew(subject, others_waiting=others_waiting)) == (409, code)


def test_an_overdue_loan_may_be_renewed_when_the_policy_allows_it():
    lenient = policy.LoanPolicy(**{**RULES.as_dict(), "renew_overdue_allowed": True})
    assert renew(loan(due_in=-timedelta(days=1)), rules=lenient) is None


# --- holds -------------------------------------------------------------------------------------------
def reserve(state: BookState, *, on_loan: bool = False) -> None:
    policy.check_reservable(user_email=PATRON, state=state, on_loan=on_loan)


def test_a_book_with_no_free_copy_may_be_reserved():
    assert reserve(book(copies=1, open_loans=1)) is None


@pytest.mark.parametrize(
    ("state", "on_loan", "code"),
    [
        (book(copies=1, open_loans=1), True, "already_borrowed"),
        (book(copies=1, open_loans=1, holds=[HoldFactory.build(pk=1, user_email=PATRON)]), False, "already_reserved"),
        (book(copies=2, open_loans=1), False, "copy_available"),
    ],
    ids=["on loan to the patron", "already queued", "a copy is free"],
)
def test_each_reservation_rule_refuses_with_its_code(state, on_loan, code):
    assert refusal(lambda: reserve(state, on_loan=on_loan)) == (409, code)


def test_the_pickup_window_ends_at_the_end_of_its_last_open_day(settings):
    settings.LIBRARY_TIME_ZONE = "UTC"
    assert RULES.pickup_deadline(NOW, ClosedDays()) == datetime(2026, 3, 5, 23, 59, 59, 999999, tzinfo=UTC)
    thursday = frozenset({3})  # NOW + 3 days is Thursday 5 March
    assert RULES.pickup_deadline(NOW, ClosedDays(weekdays=thursday)).date() == (NOW + timedelta(days=4)).date()


def test_the_policy_in_force_comes_from_the_settings(settings):
    settings.LOAN_MAX_RENEWALS, settings.HOLD_PICKUP_DAYS = 5, 9
    current = policy.current()
    assert (current.max_renewals, current.pickup_window) == (5, timedelta(days=9))
