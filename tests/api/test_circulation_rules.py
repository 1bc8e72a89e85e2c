"""Circulation rules through the API: loan policies, the matrix, explain, and the writes that apply them
(`lending.circulation_rules`, `lending.api.circulation_rules`)."""

from __future__ import annotations

import pytest

from lending import calendar
from lending.circulation_rules import CirculationRule, LoanPolicy, RulesChange
from lending.models import Loan
from tests.conftest import post_json

pytestmark = pytest.mark.django_db

DVD_WEEK = {"loan_days": 7, "renewals_max": 1, "max_loans": 2}


def put(api, path: str, body):
    return api.put(path, body, format="json")


def code(response) -> str:
    return response.json()["error"]["code"]


def put_policy(api, name: str, **values):
    response = put(api, f"/loan-policies/{name}/", values)
    assert response.status_code in (200, 201), response.json()
    return response.json()


def put_rules(api, *rules: tuple[str | None, str | None, str]):
    body = {"rules": [{"patron_category": c, "item_type": t, "loan_policy": p} for c, t, p in rules]}
    return put(api, "/circulation-rules/", body)


def check_out(api, item_barcode: str, email: str):
    return post_json(api, "/checkouts/", {"item_barcode": item_barcode, "user_email": email})


def due_in_days(loan: dict) -> int:
    lent = Loan.objects.get(pk=loan["id"])
    return (calendar.library_day(lent.date_due) - calendar.library_day(lent.date_borrowed)).days


@pytest.fixture
def library(api, peers):
    """A library's typical setup: books 21 days, DVDs 7 (two at a time), students ten items, a
    reference collection that does not leave."""
    put_policy(api, "default", loan_days=21, renewals_max=2, max_loans=20)
    put_policy(api, "dvd-week", **DVD_WEEK)
    put_policy(api, "student", loan_days=21, renewals_max=2, max_loans=10)
    put_policy(api, "reference", loan_days=1, loanable=False, holds_allowed=False)
    assert (
        put_rules(
            api,
            (None, None, "default"),
            (None, "dvd", "dvd-week"),
            ("student", None, "student"),
            (None, "reference", "reference"),
        ).status_code
        == 200
    )
    return peers


# --- Loan policies -----------------------------------------------------------------------------------
def test_the_default_policy_and_the_fallback_rule_are_seeded_from_the_environment(api, settings):
    policies = api.get("/loan-policies/").json()["loan_policies"]
    assert [p["name"] for p in policies] == ["default"]
    assert (policies[0]["loan_days"], policies[0]["renewals_max"], policies[0]["max_loans"]) == (
        settings.LOAN_PERIOD_DAYS,
        settings.LOAN_MAX_RENEWALS,
        settings.LOAN_MAX_ACTIVE_PER_PATRON,
    )
    assert api.get("/circulation-rules/").json() == {
        "rules": [{"patron_category": None, "item_type": None, "loan_policy": "default"}]
    }


def test_a_policy_is_created_then_replaced_and_each_change_says_who_made_it(api):
    created = put(api, "/loan-policies/dvd-week/", {**DVD_WEEK, "fine_per_day": "0.50"})
    assert created.status_code == 201
    assert created.json()["renewal_days"] == 7  # a renewal lasts a loan period unless said otherwise
    assert created.json()["fine_per_day"] == "0.50"
    replaced = put(api, "/loan-policies/dvd-week/", {**DVD_WEEK, "loan_days": 10})
    assert (replaced.status_code, replaced.json()["loan_days"]) == (200, 10)
    assert replaced.json()["fine_per_day"] == "0.00"  # a PUT replaces the whole policy
    changes = RulesChange.objects.filter(subject="loan-policy/dvd-week").order_by("id")
    assert [(c.action, c.changed_by) for c in changes] == [("put", "anonymous"), ("put", "anonymous")]
    assert changes[1].before["loan_days"] == 7 and changes[1].after["loan_days"] == 10


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "loan_days"),
        ({"loan_days": 0}, "loan_days"),
        ({"loan_days": "7"}, "loan_days"),
        ({"loan_days": 7.5}, "loan_days"),
        ({"loan_days": 7, "renewals_max": -1}, "renewals_max"),
        ({"loan_days": 7, "loanable": "false"}, "loanable"),
        ({"loan_days": 7, "fine_per_day": 0.1}, "fine_per_day"),
        ({"loan_days": 7, "fine_per_day": "-1.00"}, "fine_per_day"),
        ({"loan_days": 7, "fine_per_day": "0.001"}, "fine_per_day"),
        ({"loan_days": 7, "fine_max": "NaN"}, "fine_max"),
        ({"loan_days": 99999}, "loan_days"),
    ],
)
def test_an_invalid_policy_is_refused_and_changes_nothing(api, body, field):
    refused = put(api, "/loan-policies/odd/", body)
    assert (refused.status_code, code(refused)) == (400, "invalid_request")
    assert field in refused.json()["error"]["details"]
    assert not LoanPolicy.objects.filter(name="odd").exists()


@pytest.mark.parametrize("name", ["Upper", "-dash", "a" * 65, "sp ace", "ü"])
def test_a_policy_name_outside_the_pattern_is_refused(api, name):
    refused = put(api, f"/loan-policies/{name}/", DVD_WEEK)
    assert (refused.status_code, code(refused)) == (400, "invalid_request")


def test_a_policy_named_by_a_rule_cannot_be_deleted(api):
    refused = api.delete("/loan-policies/default/")
    assert (refused.status_code, code(refused)) == (409, "policy_in_use")
    assert LoanPolicy.objects.filter(name="default").exists()
    put_policy(api, "unused", **DVD_WEEK)
    assert api.delete("/loan-policies/unused/").status_code == 204
    gone = api.get("/loan-policies/unused/")
    assert (gone.status_code, code(gone)) == (404, "policy_not_found")
    assert code(api.delete("/loan-policies/unused/")) == "policy_not_found"


# --- The matrix --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ([(None, "dvd", "default")], "missing_fallback_rule"),
        ([(None, None, "default"), (None, "dvd", "nowhere")], "unknown_policy"),
        ([(None, None, "default"), ("student", "dvd", "default"), ("student", "dvd", "default")], "duplicate_rule"),
        ([(None, None, "default"), (None, None, "default")], "duplicate_rule"),
        ([], "missing_fallback_rule"),
    ],
)
def test_a_refused_rule_set_leaves_the_rules_in_force(api, rules, expected):
    before = api.get("/circulation-rules/").json()
    refused = put_rules(api, *rules)
    assert (refused.status_code, code(refused)) == (422, expected)
    assert api.get("/circulation-rules/").json() == before
    assert not RulesChange.objects.filter(subject="circulation-rules").exists()


@pytest.mark.parametrize(
    "body",
    [
        {"rules": [{"patron_category": None, "loan_policy": "default"}]},
        {"rules": "all"},
        {"rules": [{"patron_category": None, "item_type": None, "loan_policy": None}]},
        {"rules": [{"patron_category": "x" * 65, "item_type": None, "loan_policy": "default"}]},
        [],
    ],
)
def test_a_malformed_rule_set_is_a_400(api, body):
    refused = put(api, "/circulation-rules/", body)
    assert (refused.status_code, code(refused)) == (400, "invalid_request")


def test_the_whole_set_is_replaced_and_recorded(api, library):
    rules = api.get("/circulation-rules/").json()["rules"]
    assert len(rules) == 4 and rules[1] == {"patron_category": None, "item_type": "dvd", "loan_policy": "dvd-week"}
    assert CirculationRule.objects.count() == 4
    change = RulesChange.objects.filter(subject="circulation-rules").latest("id")
    assert len(change.before["rules"]) == 1 and len(change.after["rules"]) == 4


# --- Applied on every write --------------------------------------------------------------------------
def test_books_go_for_21_days_and_dvds_for_7(api, library):
    alice = library.user.add_user("alice-rules@example.com", category="adult")["email"]
    novel = library.book.add_book("Novel", "A", 1)
    film = library.book.add_book("Film", "B", 1, item_type="dvd")

    lent_book = check_out(api, novel["items"][0]["barcode"], alice).json()
    lent_dvd = check_out(api, film["items"][0]["barcode"], alice).json()

    assert (lent_book["loan_policy"], due_in_days(lent_book)) == ("default", 21)
    assert (lent_dvd["loan_policy"], due_in_days(lent_dvd)) == ("dvd-week", 7)
    assert Loan.objects.get(pk=lent_dvd["id"]).policy_terms["loan_days"] == 7


def test_a_title_level_lend_follows_its_copies_type(api, library):
    patron = library.user.add_user("title-level@example.com")["email"]
    film = library.book.add_book("Film by title", "B", 2, item_type="dvd")
    lent = post_json(api, "/lendBook/", {"user_email": patron, "book_id": film["id"]})
    assert lent.status_code == 201
    assert due_in_days(lent.json()) == 7
    assert api.get(f"/loans/{lent.json()['id']}/").json()["loan_policy"] == "dvd-week"


def test_a_dvd_limit_counts_dvds_only(api, library):
    patron = library.user.add_user("dvd-limit@example.com")["email"]
    films = [library.book.add_book(f"Film {i}", "B", 1, item_type="dvd") for i in range(3)]
    novel = library.book.add_book("Book beside the films", "A", 1)
    assert [check_out(api, f["items"][0]["barcode"], patron).status_code for f in films[:2]] == [201, 201]
    refused = check_out(api, films[2]["items"][0]["barcode"], patron)
    assert (refused.status_code, code(refused)) == (409, "loan_limit_reached")
    assert check_out(api, novel["items"][0]["barcode"], patron).status_code == 201


def test_a_students_limit_is_their_categorys(api, library):
    api.put("/loan-policies/student/", {"loan_days": 21, "max_loans": 1}, format="json")
    student = library.user.add_user("student-rules@example.com", category="student")["email"]
    adult = library.user.add_user("adult-rules@example.com", category="adult")["email"]
    first, second = (library.book.add_book(f"Student {i}", "A", 2) for i in range(2))
    assert check_out(api, first["items"][0]["barcode"], student).status_code == 201
    assert code(check_out(api, second["items"][0]["barcode"], student)) == "loan_limit_reached"
    assert check_out(api, first["items"][1]["barcode"], adult).status_code == 201
    assert check_out(api, second["items"][1]["barcode"], adult).status_code == 201


def test_a_reference_copy_does_not_leave_and_cannot_be_reserved(api, library):
    patron = library.user.add_user("reference@example.com")["email"]
    atlas = library.book.add_book("Atlas", "C", 1, item_type="reference")
    refused = check_out(api, atlas["items"][0]["barcode"], patron)
    assert (refused.status_code, code(refused)) == (409, "item_not_loanable")
    assert "reference" in refused.json()["error"]["message"]
    refused = post_json(api, "/reserveBook/", {"user_email": patron, "book_id": atlas["id"]})
    assert (refused.status_code, code(refused)) == (409, "holds_not_allowed")
    assert not Loan.objects.filter(user_email=patron).exists()


def test_editing_a_policy_moves_no_open_loan_and_its_renewals_follow_the_snapshot(api, library):
    patron = library.user.add_user("snapshot@example.com")["email"]
    film = library.book.add_book("Film kept", "B", 1, item_type="dvd")
    lent = check_out(api, film["items"][0]["barcode"], patron).json()
    due = Loan.objects.get(pk=lent["id"]).date_due

    put_policy(api, "dvd-week", loan_days=2, renewals_max=0, renewal_days=2)

    assert Loan.objects.get(pk=lent["id"]).date_due == due
    renewed = post_json(api, "/renewBook/", {"user_email": patron, "book_id": film["id"]})
    assert renewed.status_code == 200, renewed.json()  # the snapshot allows one renewal of 7 days
    assert (Loan.objects.get(pk=lent["id"]).date_due - due).days in (7, 8)
    again = post_json(api, "/renewBook/", {"user_email": patron, "book_id": film["id"]})
    assert code(again) == "renewal_limit_reached"


def test_an_override_lifts_a_categorys_limit(api, library):
    api.put("/loan-policies/student/", {"loan_days": 21, "max_loans": 0}, format="json")
    student = library.user.add_user("override-limit@example.com", category="student")["email"]
    novel = library.book.add_book("Lifted", "A", 1)
    body = {"item_barcode": novel["items"][0]["barcode"], "user_email": student, "override": {"reason": "exam week"}}
    lent = post_json(api, "/checkouts/", body)
    assert lent.status_code == 201, lent.json()


# --- Explain -----------------------------------------------------------------------------------------
def test_explain_names_the_rule_and_every_value_of_its_policy(api, library):
    student = library.user.add_user("explain@example.com", category="student")["email"]
    film = library.book.add_book("Explained", "B", 1, item_type="dvd")

    by_item = api.get(f"/circulation-rules/explain/?user_email={student}&item_barcode={film['items'][0]['barcode']}")
    by_title = api.get(f"/circulation-rules/explain/?user_email={student}&book_id={film['id']}")

    assert by_item.status_code == 200, by_item.json()
    body = by_item.json()
    # A category rule and a type rule both match: the category wins (as many criteria each).
    assert body["rule"] == {"patron_category": "student", "item_type": None, "loan_policy": "student"}
    assert body["loan_policy"]["name"] == "student" and body["loan_policy"]["max_loans"] == 10
    assert (body["patron_category"], body["item_type"]) == ("student", "dvd")
    assert by_title.json()["rule"] == body["rule"]


def test_explain_without_copy_or_title_gives_the_categorys_rule_and_a_copy_wins_over_its_title(api, library):
    student = library.user.add_user("explain-none@example.com", category="student")["email"]
    film = library.book.add_book("Both given", "B", 1, item_type="dvd")
    alone = api.get(f"/circulation-rules/explain/?user_email={student}").json()
    assert (alone["rule"]["loan_policy"], alone["item_type"]) == ("student", None)
    atlas = library.book.add_book("Atlas given too", "C", 1, item_type="reference")
    both = api.get(
        f"/circulation-rules/explain/?user_email={student}&book_id={atlas['id']}&item_barcode={film['items'][0]['barcode']}"
    ).json()
    assert both["item_type"] == "dvd"


@pytest.mark.parametrize("query", ["book_id=1", "user_email=x", "user_email=a@example.com&book_id=0"])
def test_explain_needs_a_patron_and_one_copy_or_title(api, query):
    refused = api.get(f"/circulation-rules/explain/?{query}")
    assert (refused.status_code, code(refused)) == (400, "invalid_request")


def test_explain_of_an_unknown_item_is_a_404(api, patron):
    refused = api.get(f"/circulation-rules/explain/?user_email={patron}&item_barcode=NOPE")
    assert (refused.status_code, code(refused)) == (404, "item_not_found")


def test_the_fallback_rule_answers_get_policy(api):
    put_policy(api, "default", loan_days=14, renewals_max=1, max_loans=None)
    body = api.get("/policy/").json()
    assert (body["loan_period_days"], body["max_renewals"], body["max_active_loans_per_patron"]) == (14, 1, None)


def test_a_loan_made_before_the_rules_follows_the_fallback_policy(api, patron, book):
    lent = post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]}).json()
    Loan.objects.filter(pk=lent["id"]).update(policy_terms=None, loan_policy="")
    put_policy(api, "default", loan_days=5, renewals_max=0)
    refused = post_json(api, "/renewBook/", {"user_email": patron, "book_id": book["id"]})
    assert code(refused) == "renewal_limit_reached"
