"""Tests' way to set the circulation rules: a loan policy's values, a rule set (through the same
functions the API and the admin use, `lending.circulation_rules`)."""

from __future__ import annotations

from typing import Any

from django.forms.models import model_to_dict

from lending import circulation_rules
from lending.circulation_rules import DEFAULT_POLICY, CirculationRule, LoanPolicy, Rule

KEPT_OUT = ("name", "updated_at", "updated_by")


def set_policy(name: str = DEFAULT_POLICY, **values: Any) -> LoanPolicy:
    """Creates the loan policy `name` or changes the values given (the others keep theirs; a new
    policy starts from the environment's). The `default` policy stays the fallback rule's."""
    existing = LoanPolicy.objects.filter(name=name).first()
    merged = model_to_dict(existing, exclude=KEPT_OUT) if existing else circulation_rules.settings_defaults()
    merged.update(values)
    policy, _ = circulation_rules.put_policy(name, merged, changed_by="tests")
    if name == DEFAULT_POLICY and not CirculationRule.objects.filter(patron_category=None, item_type=None).exists():
        set_rules(Rule(None, None, DEFAULT_POLICY))
    return policy


def set_rules(*rules: Rule) -> None:
    """Replaces the matrix; the fallback rule must be among `rules`."""
    circulation_rules.replace_rules(list(rules), changed_by="tests")
