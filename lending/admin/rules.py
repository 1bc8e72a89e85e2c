"""The admin of the circulation rules: loan policies, and the rules with the matrix drawn as a table
(patron categories as rows, item types as columns). Every change goes through the functions the API
uses (`lending.circulation_rules`): the same validation, the same record of who made it
(`RulesChange`, by `staff:<username>`), and the version bump that every process's next write sees."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from lending import circulation_rules
from lending.circulation_rules import CirculationRule, LoanPolicy, Rule, RulesChange
from lending.errors import LendingError

POLICY_VALUES = [name for name in circulation_rules.PolicyTerms.__dataclass_fields__ if name != "name"]


def staff(request: HttpRequest) -> str:
    return f"staff:{request.user.get_username()}"


class LoanPolicyForm(forms.ModelForm):
    class Meta:
        model = LoanPolicy
        fields = ["name", *POLICY_VALUES]

    def clean_name(self) -> str:
        """The names the API can address (`/loan-policies/{name}/`): lower-case, digits, - and _."""
        name = self.cleaned_data["name"]
        if not re.fullmatch(circulation_rules.NAME_PATTERN, name):
            raise forms.ValidationError("Lower-case letters, digits, '-' and '_'; a letter or digit first.")
        return name


@admin.register(LoanPolicy)
class LoanPolicyAdmin(admin.ModelAdmin):
    form = LoanPolicyForm
    list_display = ["name", "loan_days", "renewals_max", "renewal_days", "max_loans", "holds_allowed", "loanable"]
    readonly_fields = ["updated_at", "updated_by"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # A policy's name is what rules and loans name it by: set once.
        return [*self.readonly_fields, "name"] if obj is not None else list(self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: LoanPolicy, form: Any, change: bool) -> None:
        values = {name: getattr(obj, name) for name in POLICY_VALUES}
        saved, _ = circulation_rules.put_policy(obj.name, values, changed_by=staff(request))
        obj.updated_at, obj.updated_by = saved.updated_at, saved.updated_by

    def delete_model(self, request: HttpRequest, obj: LoanPolicy) -> None:
        circulation_rules.delete_policy(obj.name, changed_by=staff(request))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Not while a rule names it (`policy_in_use`): the admin offers no delete button then."""
        in_use = obj is not None and CirculationRule.objects.filter(loan_policy=obj).exists()
        return super().has_delete_permission(request, obj) and not in_use

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for policy in queryset:
            try:
                circulation_rules.delete_policy(policy.name, changed_by=staff(request))
            except LendingError as refused:
                self.message_user(request, refused.message, messages.ERROR)


class RuleForm(forms.ModelForm):
    """One rule, checked against the rules it would join: no two with the same criteria, the fallback kept."""

    class Meta:
        model = CirculationRule
        fields = ["patron_category", "item_type", "loan_policy"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if "loan_policy" not in cleaned:
            return cleaned
        for field in ("patron_category", "item_type"):
            cleaned[field] = cleaned.get(field) or None  # an empty box means "any"
        try:
            circulation_rules.check_rule_set(
                rules_with(self.instance, _rule(cleaned)),
                known_policies=set(LoanPolicy.objects.values_list("name", flat=True)),
            )
        except LendingError as refused:
            raise forms.ValidationError(refused.message) from None
        return cleaned


def _rule(values: dict[str, Any]) -> Rule:
    return Rule(values.get("patron_category"), values.get("item_type"), values["loan_policy"].name)


def rules_with(instance: CirculationRule, rule: Rule | None) -> list[Rule]:
    """The rules in force with `instance` replaced by `rule` (added when new; removed when None)."""
    others = CirculationRule.objects.exclude(pk=instance.pk) if instance.pk else CirculationRule.objects.all()
    kept = [Rule(r.patron_category, r.item_type, r.loan_policy_id) for r in others.order_by("id")]
    return kept if rule is None else [*kept, rule]


@admin.register(CirculationRule)
class CirculationRuleAdmin(admin.ModelAdmin):
    form = RuleForm
    list_display = ["__str__", "patron_category", "item_type", "loan_policy"]
    change_list_template = "admin/lending/circulationrule/change_list.html"

    def save_model(self, request: HttpRequest, obj: CirculationRule, form: Any, change: bool) -> None:
        rule = Rule(obj.patron_category or None, obj.item_type or None, obj.loan_policy_id)
        saved = circulation_rules.replace_rules(rules_with(obj, rule), changed_by=staff(request))
        obj.pk = next(r.pk for r in saved if (r.patron_category, r.item_type) == rule.criteria)

    def delete_model(self, request: HttpRequest, obj: CirculationRule) -> None:
        circulation_rules.replace_rules(rules_with(obj, None), changed_by=staff(request))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Never the fallback rule (`missing_fallback_rule`)."""
        fallback = obj is not None and obj.patron_category is None and obj.item_type is None
        return super().has_delete_permission(request, obj) and not fallback

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one rule at a time, each checked against the rest
        return actions

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        return super().changelist_view(request, {**(extra_context or {}), "matrix": matrix()})


def matrix() -> dict[str, Any]:
    """The rules as a table: a row per patron category ("any" first), a column per item type."""
    rules = list(CirculationRule.objects.all())
    categories = [None, *sorted({r.patron_category for r in rules if r.patron_category})]
    types = [None, *sorted({r.item_type for r in rules if r.item_type})]
    by_criteria = {(r.patron_category, r.item_type): r.loan_policy_id for r in rules}
    book = circulation_rules.in_force()
    return {
        "types": [t or "any type" for t in types],
        "rows": [
            {
                "category": c or "any category",
                "cells": [{"policy": book.decide(c, t).terms.name, "explicit": (c, t) in by_criteria} for t in types],
            }
            for c in categories
        ],
    }


@admin.register(RulesChange)
class RulesChangeAdmin(admin.ModelAdmin):
    """Who changed the rules and policies, and what they were before and after: read only."""

    list_display = ["at", "subject", "action", "changed_by"]
    list_filter = ["subject", "action"]
    readonly_fields = ["at", "subject", "action", "changed_by", "before", "after"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
