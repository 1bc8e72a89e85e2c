"""Each refusal of a write is declared once (lending/refusals.py) and every reader takes it from there:
the error catalogue agrees with it, an override lifts every liftable one in a real write, the status
screen says each blocking one in the declared words, and no other module spells the codes."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from lending import blocks, errors, overrides, refusals
from lending.blocks import BlockRules, FeesStanding, PatronCounts
from lending.clients import fees as fees_client
from lending.models import Event, Loan, PatronBlock
from tests.conftest import post_json
from tests.factories import LoanFactory, days
from tests.rules import set_policy

LENDING = Path(__file__).resolve().parents[2] / "lending"
OVERRIDE = {"override": {"reason": "Patron's fine paid at the desk."}}


# --- The declarations and the catalogue ------------------------------------------------------------
def test_every_api_refusal_is_the_catalogues_entry_of_its_code():
    for code, refusal in refusals.REFUSALS.items():
        if refusal.api_error is not None:
            assert errors.CATALOGUE[code] is refusal.api_error


def test_the_derived_sets_are_the_readers_sets():
    assert overrides.LIFTABLE == refusals.LIFTABLE
    assert blocks.BLOCKING_CODES == refusals.BLOCKING
    assert refusals.PATRON_BLOCKED.code in refusals.LIFTABLE
    assert blocks.Action is refusals.Action


def test_the_blocking_reasons_are_lifted_together_as_patron_blocked():
    for code in refusals.BLOCKING:
        refusal = refusals.REFUSALS[code]
        assert refusal.liftable == refusals.PATRON_BLOCKED.liftable
        assert set(refusal.actions) <= set(refusals.PATRON_BLOCKED.actions)


def test_the_status_screens_own_code_reasons_are_409s_as_its_help_text_says():
    for refusal in refusals.on_status_screen(blocking=False):
        assert refusal.api_error is not None and refusal.api_error.status == 409


def test_an_override_lifts_by_the_refusal_or_its_code():
    override = overrides.Override(reason="At the desk.")
    override.lift(refusals.LOAN_LIMIT)
    override.lift(refusals.LOAN_LIMIT.code)
    assert override.lifted == [refusals.LOAN_LIMIT.code]
    with pytest.raises(AssertionError):
        override.lift(refusals.NO_COPY_AVAILABLE)


# --- Every liftable refusal, lifted in a real write ------------------------------------------------
Write = Callable[..., object]


def lend(api, patron, book, **extra):
    return post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"], **extra})


def renew(api, patron, book, **extra):
    return post_json(api, "/renewBook/", {"user_email": patron, "book_id": book["id"], **extra})


def blocked_patron(api, patron, book, settings) -> Write:
    blocks.place(patron, reason="Damaged books", actions=["borrow"], expires_at=None, by="test", now=timezone.now())
    return lend


def patron_with_an_overdue_loan(api, patron, book, settings) -> Write:
    settings.LOAN_BLOCK_ON_OVERDUE = True
    LoanFactory(user_email=patron, due_in=days(-1))
    return lend


def patron_at_the_loan_limit(api, patron, book, settings) -> Write:
    set_policy(max_loans=1)
    LoanFactory(user_email=patron, due_in=days(5))
    return lend


def loan_renewed_to_the_limit(api, patron, book, settings) -> Write:
    set_policy(renewals_max=0)
    assert lend(api, patron, book).status_code == 201
    return renew


def overdue_loan(api, patron, book, settings) -> Write:
    settings.LOAN_RENEW_OVERDUE_ALLOWED = False
    assert lend(api, patron, book).status_code == 201
    Loan.objects.filter(user_email=patron).update(date_due=timezone.now() - days(1))
    return renew


# Each liftable refusal: how a patron meets it, and the write that then meets it.
MEETING: dict[str, Callable[..., Write]] = {
    refusals.PATRON_BLOCKED.code: blocked_patron,
    refusals.PATRON_HAS_OVERDUE_LOANS.code: patron_with_an_overdue_loan,
    refusals.LOAN_LIMIT.code: patron_at_the_loan_limit,
    refusals.RENEWAL_LIMIT.code: loan_renewed_to_the_limit,
    refusals.LOAN_OVERDUE.code: overdue_loan,
}


def test_every_liftable_refusal_has_a_write_that_meets_it():
    assert set(MEETING) == refusals.LIFTABLE


@pytest.mark.django_db
@pytest.mark.parametrize("refusal", refusals.lifted_by_override(), ids=lambda refusal: refusal.code)
def test_an_override_lifts_the_refusal_in_a_real_write(api, patron, book, settings, refusal):
    write = MEETING[refusal.code](api, patron, book, settings)
    refused = write(api, patron, book)
    assert refused.status_code == refusal.api_error.status
    assert refused.json()["error"]["code"] == refusal.code
    done = write(api, patron, book, **OVERRIDE)
    assert done.status_code in (200, 201), done.content
    event = Event.objects.filter(loan__user_email=patron).latest("pk")
    assert refusal.code in event.data["override"]["lifted"]


# --- The status screen ------------------------------------------------------------------------------
def test_the_status_screen_lists_each_blocking_refusal_in_its_declared_words():
    counts = PatronCounts(open_loans=10, overdue_loans=3, most_days_overdue=31, lost_loans=1)
    rules = BlockRules(max_overdue_loans=3, max_overdue_days=30, max_open_loans=10, block_on_overdue=True)
    block = PatronBlock(pk=4, user_email="a@example.com", reason="Damaged books", blocks=["borrow", "renew"])
    fees = FeesStanding(limit=Decimal("20.00"), balance=fees_client.Balance(Decimal("37.50"), "EUR"))
    values = {
        "open_loans": 10,
        "overdue_loans": 3,
        "max_overdue_loans": 3,
        "most_days_overdue": 31,
        "max_overdue_days": 30,
        "lost_loans": 1,
        "reason": "Damaged books",
        "balance": "37.50",
        "currency": "EUR",
        "limit": "20.00",
    }
    shown = {
        reason.code: reason
        for action in refusals.ALL_ACTIONS
        for reason in blocks.reasons_against(action, counts, [block], rules, fees)
    }
    for refusal in refusals.on_status_screen(blocking=True) + refusals.on_status_screen(blocking=False):
        assert refusal.message is not None
        assert shown[refusal.code].message == refusal.message.format(**values)
    for code in refusals.BLOCKING - {refusals.MANUAL_BLOCK.code}:
        assert shown[code].actions == refusals.REFUSALS[code].actions
    assert shown[refusals.MANUAL_BLOCK.code].actions == ("borrow", "renew")
    assert set(refusals.BLOCKING) <= set(shown)


# --- No other module spells the codes ---------------------------------------------------------------
# The codes of the refusals an override lifts or the status screen shows.
RULEBOOK_CODES = sorted(
    refusal.code
    for refusal in refusals.REFUSALS.values()
    if refusal.liftable or refusal.blocking or refusal.on_status_screen
)
# The declarations and the catalogue (the migrations too: history, never edited).
ALLOWED = {LENDING / "refusals.py", LENDING / "errors.py"}


def docstrings(tree: ast.Module) -> set[int]:
    owners = [
        tree,
        *(node for node in ast.walk(tree) if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)),
    ]
    return {id(owner.body[0].value) for owner in owners if ast.get_docstring(owner, clean=False) is not None}


def code_strings(path: Path, root: Path = LENDING.parent) -> list[str]:
    """The string literals of `path` (docstrings aside: prose for the reader) that spell one of the codes,
    e.g. `"lost_items"` or a help text naming `loan_limit_reached`; `lending.lost_items` is a module."""
    spelled = re.compile(r"(?<![\w.])(" + "|".join(RULEBOOK_CODES) + r")(?!\w)")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = docstrings(tree)
    return [
        f"{path.relative_to(root)}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in skipped
        and spelled.search(node.value)
    ]


def test_no_module_but_the_declarations_spells_the_codes():
    sources = [path for path in LENDING.rglob("*.py") if path not in ALLOWED and "migrations" not in path.parts]
    assert sources
    spelling = [line for path in sources for line in code_strings(path)]
    assert not spelling, "Take these codes from lending.refusals:\n" + "\n".join(spelling)


def test_the_source_check_sees_a_spelled_code(tmp_path):
    module = tmp_path / "module.py"
    module.write_text('"""Refused with `patron_blocked`."""\nCODE = "loan_limit_reached"\nHELP = f"`lost_items` {1}"\n')
    assert code_strings(module, root=tmp_path) == [
        "module.py:2: 'loan_limit_reached'",
        "module.py:3: '`lost_items` '",
    ]
