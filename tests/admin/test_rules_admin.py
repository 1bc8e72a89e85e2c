"""The circulation rules in the admin: policies and rules edited with the API's validation, every change
recorded with the staff member who made it, and the matrix drawn as a table."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from lending.circulation_rules import CirculationRule, LoanPolicy, RulesChange
from tests.rules import set_policy

pytestmark = pytest.mark.django_db

POLICY_FORM = {
    "loan_days": "7",
    "renewals_max": "1",
    "renewal_days": "7",
    "max_loans": "3",
    "holds_allowed": "on",
    "loanable": "on",
    "fine_per_day": "0.50",
    "fine_grace_days": "0",
    "fine_max": "",
    "fine_counts_closed_days": "on",
    "lost_item_fee": "0.00",
    "lost_processing_fee": "0.00",
    "refund_lost_on_return": "on",
}


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_superuser("rules-librarian", "rules@example.com", "pw")
    client.force_login(user)
    return client


def test_a_policy_added_in_the_admin_is_recorded_with_its_author(staff):
    response = staff.post(reverse("admin:lending_loanpolicy_add"), {"name": "dvd-week", **POLICY_FORM})
    assert response.status_code == 302, response.content[:2000]
    policy = LoanPolicy.objects.get(name="dvd-week")
    assert (policy.loan_days, str(policy.fine_per_day), policy.updated_by) == (7, "0.50", "staff:rules-librarian")
    change = RulesChange.objects.get(subject="loan-policy/dvd-week")
    assert (change.action, change.changed_by, change.before) == ("put", "staff:rules-librarian", None)


def test_the_admin_refuses_what_the_api_refuses(staff):
    response = staff.post(reverse("admin:lending_loanpolicy_add"), {"name": "odd", **POLICY_FORM, "loan_days": "0"})
    assert response.status_code == 200  # the form again, with its error
    assert not LoanPolicy.objects.filter(name="odd").exists()
    response = staff.post(reverse("admin:lending_loanpolicy_add"), {"name": "odd", **POLICY_FORM, "fine_per_day": "-1"})
    assert response.status_code == 200 and not LoanPolicy.objects.filter(name="odd").exists()


def test_a_rule_duplicating_another_is_refused_and_the_fallback_cannot_be_deleted(staff):
    duplicate = staff.post(
        reverse("admin:lending_circulationrule_add"), {"patron_category": "", "item_type": "", "loan_policy": "default"}
    )
    assert duplicate.status_code == 200 and b"same criteria" in duplicate.content
    fallback = CirculationRule.objects.get(patron_category=None, item_type=None)
    refused = staff.post(reverse("admin:lending_circulationrule_delete", args=[fallback.pk]), {"post": "yes"})
    assert refused.status_code == 403
    assert CirculationRule.objects.filter(pk=fallback.pk).exists()


def test_a_rule_added_in_the_admin_shows_in_the_matrix(staff):
    set_policy("dvd-week", loan_days=7)
    added = staff.post(
        reverse("admin:lending_circulationrule_add"),
        {"patron_category": "", "item_type": "dvd", "loan_policy": "dvd-week"},
    )
    assert added.status_code == 302
    rule = CirculationRule.objects.get(item_type="dvd")
    assert (rule.patron_category, rule.loan_policy_id) == (None, "dvd-week")
    assert RulesChange.objects.filter(subject="circulation-rules", changed_by="staff:rules-librarian").exists()

    page = staff.get(reverse("admin:lending_circulationrule_changelist")).content.decode()
    assert 'id="rules-matrix"' in page
    assert '<th scope="col">dvd</th>' in page and "<strong>dvd-week</strong>" in page


def test_a_policy_named_by_a_rule_offers_no_delete(staff):
    page = staff.post(reverse("admin:lending_loanpolicy_delete", args=["default"]), {"post": "yes"})
    assert page.status_code == 403
    assert LoanPolicy.objects.filter(name="default").exists()


def test_a_policy_name_the_api_could_not_address_is_refused(staff):
    response = staff.post(reverse("admin:lending_loanpolicy_add"), {"name": "DVD_Week", **POLICY_FORM})
    assert response.status_code == 200
    assert not LoanPolicy.objects.filter(name="DVD_Week").exists()
