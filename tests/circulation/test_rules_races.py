"""The circulation rules under concurrency (PostgreSQL): a rules change racing lends, and one patron's
lends racing for their category's limit."""

from __future__ import annotations

import threading

import pytest
from rest_framework.test import APIClient

from lending import calendar
from lending.circulation_rules import Rule
from lending.models import Loan
from tests.racing import race
from tests.rules import set_policy, set_rules

pytestmark = [pytest.mark.postgres, pytest.mark.many_connections, pytest.mark.django_db(transaction=True)]


def test_twenty_concurrent_lends_by_one_student_stop_at_the_categorys_limit(peers):
    set_policy("student", loan_days=21, max_loans=4)
    set_policy()  # the fallback, from the environment
    set_rules(Rule(None, None, "default"), Rule("student", None, "student"))
    student = peers.user.add_user("race-student@example.com", category="student")["email"]
    books = [peers.book.add_book(f"Student race {i}", "A", 1)["id"] for i in range(20)]

    answers = race([("/lendBook/", {"user_email": student, "book_id": b}) for b in books])

    assert sorted(status for status, _ in answers) == [201] * 4 + [409] * 16
    assert {code for status, code in answers if status == 409} == {"loan_limit_reached"}
    assert Loan.objects.filter(user_email=student, date_returned__isnull=True).count() == 4


def test_a_rules_change_racing_lends_gives_each_the_old_rules_or_the_new_never_a_mix(peers):
    """Old: every title for 10 days under `ten`. New, in one PUT: a rule naming `twenty` (20 days) for
    every title. Each loan names one policy and carries that policy's period in its snapshot and its due
    date: a lend that read the new rule with the old policy's values (or the reverse) would show it."""
    set_policy("ten", loan_days=10, max_loans=None)
    set_policy("twenty", loan_days=20, max_loans=None)
    set_policy()
    set_rules(Rule(None, None, "default"), Rule("adult", None, "ten"))
    patrons = [peers.user.add_user(f"mix-{i}@example.com", category="adult")["email"] for i in range(16)]
    books = [peers.book.add_book(f"Mix {i}", "A", 1)["id"] for i in range(16)]

    changer = threading.Thread(target=_change_rules_midway)
    changer.start()
    answers = race([("/lendBook/", {"user_email": p, "book_id": b}) for p, b in zip(patrons, books, strict=True)])
    changer.join(timeout=60)

    assert [status for status, _ in answers] == [201] * 16
    for loan in Loan.objects.filter(user_email__in=patrons):
        days = (calendar.library_day(loan.date_due) - calendar.library_day(loan.date_borrowed)).days
        expected = {"ten": 10, "twenty": 20}[loan.loan_policy]
        assert (loan.policy_terms["loan_days"], days) == (expected, expected), loan.loan_policy
    # The next lend, after the change committed, follows the new rules.
    late = APIClient().post(
        "/lendBook/", {"user_email": patrons[0], "book_id": peers.book.add_book("After", "A", 1)["id"]}, format="json"
    )
    assert Loan.objects.get(pk=late.json()["id"]).loan_policy == "twenty"


def _change_rules_midway() -> None:
    from django.db import connection

    try:
        set_rules(Rule(None, None, "default"), Rule("adult", None, "twenty"))
    finally:
        connection.close()
