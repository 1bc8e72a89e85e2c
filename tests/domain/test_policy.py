"""The rules of a write (lending/policy.py) without a database: each decision from the book's state, the
patron's loan counts and a loan policy built in the test. A refusal is a 409 with its own error code."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from lending import policy
from lending.book_state import BookState, PatronLoans
from lending.calendar import ClosedDays
from lending.circulation_rules import Decision, PolicyTerms, Rule
from lending.errors import LendingError
from lending.models import HoldStatus, Loan
from tests.factories import HoldFactory

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PATRON = "reader@example.com"
TERMS = PolicyTerms(
    name="default",
    loan_days=60,
    renewals_max=2,
    renewal_days=60,
    max_loans=3,
    holds_allowed=True,
    loanable=True,
    fine_per_day=Decimal("0.00"),
    fine_grace_days=0,
    fine_max=None,
    fine_counts_closed_days=True,
    lost_item_fee=Decimal("0.00"),
    lost_processing_fee=Decimal("0.00"),
    refund_lost_on_return=True,
)
FALLBACK = Decision(Rule(None, None, "default"), TERMS)


def book(copies: int = 1, open_loans: int = 0, *, holds=(), patron: PatronLoans | None = None) -> BookState:
    return BookState(book_id=7, copies=copies, open_loans=open_loans, holds=list(holds), patron_loans=patron)


def refusal(call) -> tuple[int, str]:
    with pytest.raises(LendingError) as refused:
        call()
    return refused.value.status, refused.value.code


def lend(state: BookState, terms: PolicyTerms = TERMS):
    assert state.patron_loans is not None
    decision = Decision(FALLBACK.rule, terms)
    return policy.check_lend(user_email=PATRON, state=state, decision=decision, open_covered=state.patron_loans.open)


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


def test_an_overdue_loan_does_not_block_when_the_library_says_so(settings):
    settings.LOAN_BLOCK_ON_OVERDUE = False
    assert lend(book(patron=PatronLoans(open=1, overdue=1))) is None


def test_a_policy_without_limit_lends_whatever_the_count():
    assert lend(book(patron=PatronLoans(open=500)), replace(TERMS, max_loans=None)) is None


def test_a_policy_that_keeps_copies_in_refuses_them():
    assert refusal(lambda: lend(book(patron=PatronLoans()), replace(TERMS, loanable=False))) == (
        409,
        "item_not_loanable",
    )


def test_the_limit_of_a_rule_for_one_type_counts_that_types_loans_only():
    dvd_rule = Decision(Rule(None, "dvd", "dvd-week"), TERMS)
    assert policy.covered_loans(dvd_rule, all_open=9, of_type=1) == 1
    assert policy.covered_loans(FALLBACK, all_open=9, of_type=None) == 9


# --- renewals ----------------------------------------------------------------------------------------
def loan(*, renewals: int = 0, due_in: timedelta = timedelta(days=10)) -> Loan:
    return Loan(pk=1, user_email=PATRON, book_id=7, date_borrowed=NOW, date_due=NOW + due_in, renewals=renewals)


def renew(subject: Loan, *, others_waiting: bool = False, terms: PolicyTerms = TERMS) -> None:
    policy.check_renewal(loan=subject, others_waiting=others_waiting, terms=terms, now=NOW)


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


def test_an_overdue_loan_may_be_renewed_when_the_library_allows_it(settings):
    settings.LOAN_RENEW_OVERDUE_ALLOWED = True
    assert renew(loan(due_in=-timedelta(days=1))) is None


def test_a_loan_follows_its_own_snapshot_not_the_policy_now():
    snapshot = replace(TERMS, renewals_max=5).snapshot()
    subject = loan(renewals=3)
    subject.policy_terms = snapshot
    assert policy.loan_terms(subject, rulebook=None).renewals_max == 5  # type: ignore[arg-type]
    assert renew(subject, terms=policy.loan_terms(subject, rulebook=None)) is None  # type: ignore[arg-type]


# --- holds -------------------------------------------------------------------------------------------
def reserve(state: BookState, *, on_loan: bool = False, terms: PolicyTerms = TERMS) -> None:
    decision = Decision(FALLBACK.rule, terms)
    policy.check_reservable(user_email=PATRON, state=state, on_loan=on_loan, decision=decision)


def test_a_policy_without_holds_refuses_a_reservation():
    no_holds = replace(TERMS, holds_allowed=False)
    assert refusal(lambda: reserve(book(copies=1, open_loans=1), terms=no_holds)) == (409, "holds_not_allowed")


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
    settings.HOLD_PICKUP_DAYS = 3
    assert policy.pickup_deadline(NOW, ClosedDays()) == datetime(2026, 3, 5, 23, 59, 59, 999999, tzinfo=UTC)
    thursday = frozenset({3})  # NOW + 3 days is Thursday 5 March
    assert policy.pickup_deadline(NOW, ClosedDays(weekdays=thursday)).date() == (NOW + timedelta(days=4)).date()


def test_a_snapshot_reads_back_as_the_terms_it_was_taken_from():
    terms = replace(TERMS, fine_per_day=Decimal("0.25"), fine_max=Decimal("5.00"))
    snapshot = terms.snapshot()
    assert snapshot["fine_per_day"] == "0.25" and snapshot["fine_max"] == "5.00"
    assert PolicyTerms.from_snapshot(snapshot) == terms
