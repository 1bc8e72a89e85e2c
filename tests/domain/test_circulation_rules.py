"""The rules matrix's precedence, without a database (`lending.circulation_rules.Rulebook.decide`): the
rule with more criteria wins; with as many, the patron category beats the item type; the fallback
catches the rest."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lending.circulation_rules import Rule, Rulebook
from tests.domain.test_policy import TERMS

RULES = [
    Rule(None, None, "fallback"),
    Rule("student", None, "student"),
    Rule(None, "dvd", "dvd"),
    Rule("student", "dvd", "student-dvd"),
    Rule("staff", None, "staff"),
]
BOOK = Rulebook(
    version="v1",
    rules={rule.criteria: rule for rule in RULES},
    policies={rule.loan_policy: replace(TERMS, name=rule.loan_policy) for rule in RULES},
)


@pytest.mark.parametrize(
    ("category", "item_type", "policy"),
    [
        ("student", "dvd", "student-dvd"),  # both criteria
        ("student", "book", "student"),  # the category alone
        ("adult", "dvd", "dvd"),  # the type alone
        ("staff", "dvd", "staff"),  # as many criteria: the category beats the type
        ("adult", "book", "fallback"),
        (None, "dvd", "dvd"),  # a patron without category: only rules without one match
        (None, None, "fallback"),
        ("student", None, "student"),  # a copy without type: only rules without one match
    ],
)
def test_the_most_specific_rule_wins(category, item_type, policy):
    decision = BOOK.decide(category, item_type)
    assert (decision.rule.loan_policy, decision.terms.name) == (policy, policy)


def test_a_rulebook_without_fallback_cannot_decide():
    partial = Rulebook(version="v1", rules={("student", None): RULES[1]}, policies=BOOK.policies)
    with pytest.raises(LookupError):
        partial.decide("adult", "book")
