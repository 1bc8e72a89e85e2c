"""Scopes on API keys: every endpoint × every scope. A key holding an accepted scope gets the
endpoint's answer; any other key gets 403 `insufficient_scope` naming the scope needed, and nothing
is written (loans, holds, outbox, idempotency records, events). With keys off, everything is open."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import pytest
from django.urls import get_resolver
from django.utils import timezone
from rest_framework.views import APIView

from lending import blocks
from lending.api import auth
from lending.api.permissions import HasScope, create_key
from lending.blocks import PatronBlock
from lending.calendar import LibraryCalendar
from lending.models import (
    ApiKeyScopes,
    BookStock,
    Event,
    Hold,
    IdempotencyRecord,
    Loan,
    LoanNotice,
    OutboxMessage,
    Scope,
)
from tests.conftest import post_json

pytestmark = pytest.mark.django_db

CIRCULATION, PATRON_READ, REPORTS, PRIVACY, OVERRIDE = (
    Scope.CIRCULATION,
    Scope.PATRON_READ,
    Scope.REPORTS,
    Scope.PRIVACY,
    Scope.OVERRIDE,
)


@dataclass(frozen=True)
class Call:
    """One endpoint as a caller uses it: the scopes that pass, and the answer when they do."""

    name: str
    method: str
    path: str  # formatted with the circulation state below
    accepted: tuple[Scope, ...]
    success: int
    body: tuple[str, str] | None = None  # (patron key, book key) of the state
    patron_data: bool = True
    payload: dict | None = None  # a body other than `{user_email, book_id}`

    def send(self, api, state: dict, headers: dict):
        path = self.path.format(**state)
        if self.method == "GET":
            return api.get(path, headers=headers or None)
        if self.method != "POST":
            return api.generic(self.method, path, json.dumps(self.payload or {}), "application/json", headers=headers)
        body = {"user_email": state[self.body[0]], "book_id": state[self.body[1]]} if self.body else {}
        body = self.payload if self.payload is not None else body
        body = {name: value.format(**state) if isinstance(value, str) else value for name, value in body.items()}
        return post_json(api, path, body, **headers, **{"Idempotency-Key": f"scopes-{uuid.uuid4().hex}"})


CALLS = [
    Call("lend", "POST", "/lendBook/", (CIRCULATION,), 201, body=("patron", "free_book")),
    # A dry run reads the patron (it tells whether they have the title): not for a key that may only lend.
    Call("lend dry run", "POST", "/lendBook/?dry_run=true", (PATRON_READ, REPORTS), 200, body=("patron", "free_book")),
    Call("return", "POST", "/returnBook/", (CIRCULATION,), 200, body=("patron", "held_book")),
    Call("renew", "POST", "/renewBook/", (CIRCULATION,), 200, body=("patron", "quiet_book")),
    Call("reserve", "POST", "/reserveBook/", (CIRCULATION,), 201, body=("third", "held_book")),
    Call("cancel", "POST", "/cancelReservation/", (CIRCULATION,), 200, body=("waiting", "held_book")),
    Call("overdue list", "GET", "/getExpiredBooks/", (REPORTS,), 200),
    Call("all loans", "GET", "/loans/", (REPORTS,), 200),
    Call("a book's loans", "GET", "/loans/?book_id={held_book}", (REPORTS,), 200),
    Call("a patron's loans", "GET", "/loans/?user_email={patron}", (PATRON_READ, REPORTS), 200),
    Call("all holds", "GET", "/reservations/", (REPORTS,), 200),
    Call("a patron's holds", "GET", "/reservations/?user_email={waiting}", (PATRON_READ, REPORTS), 200),
    Call("one loan", "GET", "/loans/{loan_id}/", (PATRON_READ, REPORTS), 200),
    Call("a loan's history", "GET", "/loans/{loan_id}/history/", (PATRON_READ, REPORTS), 200),
    Call("a fine's quote", "GET", "/loans/{loan_id}/fine/", (PATRON_READ, REPORTS), 200),
    Call("erasure", "POST", "/patrons/{nobody}/anonymize/", (PRIVACY,), 200),
    Call("policy", "GET", "/policy/", (), 200, patron_data=False),
    Call("calendar", "GET", "/calendar/", (PATRON_READ, REPORTS, CIRCULATION), 200, patron_data=False),
    Call(
        "set the calendar",
        "PUT",
        "/calendar/",
        (OVERRIDE,),
        200,
        patron_data=False,
        payload={"closed_weekdays": ["sunday"], "closed_dates": []},
    ),
    Call("a patron's blocks", "GET", "/patrons/{nobody}/blocks/", (PATRON_READ, REPORTS, CIRCULATION), 200),
    Call(
        "block a patron",
        "POST",
        "/patrons/{nobody}/blocks/",
        (OVERRIDE,),
        201,
        payload={"reason": "x", "blocks": ["borrow"]},
    ),
    Call("remove a block", "DELETE", "/patrons/{nobody}/blocks/{block_id}/", (OVERRIDE,), 204),
    Call("a patron's status", "GET", "/patrons/{patron}/status/", (PATRON_READ, REPORTS, CIRCULATION), 200),
    Call(
        "a patron by card",
        "POST",
        "/patrons/by-card/",
        (PATRON_READ, REPORTS),
        200,
        payload={"patron_barcode": "2100000001"},  # alice, a demo patron of the User peer
    ),
    Call(
        "change a due date",
        "POST",
        "/loans/{loan_id}/change-due-date/",
        (OVERRIDE,),
        200,
        payload={"date_due": "2030-01-01", "reason": "x"},
    ),
    Call("claim a loan returned", "POST", "/loans/{loan_id}/claim-returned/", (OVERRIDE,), 200, payload={}),
    Call("declare a loan lost", "POST", "/loans/{quiet_loan_id}/declare-lost/", (OVERRIDE,), 200, payload={}),
    # Allowed, it reaches the service, which refuses: the loan is neither lost nor claimed returned.
    Call("resolve a loan", "POST", "/loans/{loan_id}/resolve/", (OVERRIDE,), 409, payload={"outcome": "found"}),
    Call(
        "check out a copy",
        "POST",
        "/checkouts/",
        (CIRCULATION,),
        201,
        payload={"item_barcode": "{free_item}", "user_email": "{third}"},
    ),
    Call("check in a copy", "POST", "/checkins/", (CIRCULATION,), 200, payload={"item_barcode": "{lent_item}"}),
    Call("a copy's status", "GET", "/items/{lent_item}/circulation/", (CIRCULATION, PATRON_READ), 200),
    Call("loan policies", "GET", "/loan-policies/", (PATRON_READ, REPORTS, CIRCULATION), 200, patron_data=False),
    Call(
        "a loan policy", "GET", "/loan-policies/default/", (PATRON_READ, REPORTS, CIRCULATION), 200, patron_data=False
    ),
    Call(
        "set a loan policy",
        "PUT",
        "/loan-policies/default/",
        (OVERRIDE,),
        200,
        patron_data=False,
        payload={"loan_days": 60, "renewals_max": 2, "max_loans": 10},
    ),
    # Allowed, it reaches the service, which has no such policy.
    Call("delete a loan policy", "DELETE", "/loan-policies/unused/", (OVERRIDE,), 404, patron_data=False),
    Call(
        "circulation rules", "GET", "/circulation-rules/", (PATRON_READ, REPORTS, CIRCULATION), 200, patron_data=False
    ),
    Call(
        "set the circulation rules",
        "PUT",
        "/circulation-rules/",
        (OVERRIDE,),
        200,
        patron_data=False,
        payload={"rules": [{"patron_category": None, "item_type": None, "loan_policy": "default"}]},
    ),
    Call(
        "explain a rule",
        "GET",
        "/circulation-rules/explain/?user_email={patron}&book_id={free_book}",
        (PATRON_READ, REPORTS, CIRCULATION),
        200,
    ),
]
# Each key holds one scope, or none.
KEYS = [*Scope, None]


@pytest.fixture
def state(api, peers, settings) -> dict:
    """`patron` has open loans of `held_book` (for which `waiting` queues) and of `quiet_book`
    (nobody waits); `free_book` has a free copy; `third` and `nobody` have nothing."""
    settings.REQUIRE_API_KEY = False
    people = {
        role: peers.user.add_user(f"{role}-{uuid.uuid4().hex[:8]}@example.com")["email"]
        for role in ("patron", "waiting", "third", "nobody")
    }
    added = {role: peers.book.add_book(role, "Author", 1) for role in ("held_book", "quiet_book", "free_book", "desk")}
    books = {role: book["id"] for role, book in added.items()}
    items = {"free_item": added["free_book"]["items"][0]["barcode"], "lent_item": added["desk"]["items"][0]["barcode"]}
    checked_out = post_json(api, "/checkouts/", {"item_barcode": items["lent_item"], "user_email": people["patron"]})
    assert checked_out.status_code == 201, checked_out.content
    for book_role in ("held_book", "quiet_book"):
        lent = post_json(api, "/lendBook/", {"user_email": people["patron"], "book_id": books[book_role]})
        assert lent.status_code == 201, lent.content
    reserved = post_json(api, "/reserveBook/", {"user_email": people["waiting"], "book_id": books["held_book"]})
    assert reserved.status_code == 201, reserved.content
    settings.REQUIRE_API_KEY = True
    loan_id = Loan.objects.get(user_email=people["patron"], book_id=books["held_book"]).pk
    quiet_loan_id = Loan.objects.get(user_email=people["patron"], book_id=books["quiet_book"]).pk
    block = blocks.place(people["nobody"], reason="x", actions=["borrow"], expires_at=None, by="t", now=timezone.now())
    return {**people, **books, **items, "loan_id": loan_id, "quiet_loan_id": quiet_loan_id, "block_id": block.pk}


def key_with(scope: Scope | None) -> str:
    # A `patron-self` key acts for its patron only: bound here to someone the calls never name.
    outsider = "outsider@example.com" if scope == Scope.PATRON_SELF else ""
    return create_key(f"holds-{scope or 'nothing'}", [scope] if scope else [], patron_email=outsider)[1]


def rows() -> list:
    """Everything a request could write."""
    return [
        list(model.objects.order_by("pk").values())
        for model in (Loan, Hold, OutboxMessage, IdempotencyRecord, Event, BookStock, LoanNotice, PatronBlock)
    ] + [list(LibraryCalendar.objects.values("closed_weekdays", "closed_dates"))]


@pytest.mark.parametrize("scope", KEYS, ids=lambda scope: str(scope or "no-scope"))
@pytest.mark.parametrize("call", CALLS, ids=lambda call: call.name)
def test_scope_matrix(api, state, call, scope):
    headers = {"Authorization": f"Api-Key {key_with(scope)}"}
    allowed = not call.accepted or scope in call.accepted
    before = rows()
    response = call.send(api, state, headers)
    if allowed:
        assert response.status_code == call.success, response.content
        return
    assert response.status_code == 403, response.content
    error = response.json()["error"]
    assert error["code"] == "insufficient_scope"
    assert error["details"]["required_scope"] == call.accepted[0]
    assert error["details"]["accepted_scopes"] == list(call.accepted)
    assert error["details"]["granted_scopes"] == ([scope] if scope else [])
    assert f"`{call.accepted[0]}`" in error["message"]
    assert rows() == before


@pytest.mark.parametrize("call", CALLS, ids=lambda call: call.name)
def test_everything_is_open_when_keys_are_off(api, state, settings, call):
    settings.REQUIRE_API_KEY = False
    response = call.send(api, state, {})
    assert response.status_code == call.success, response.content


def test_a_key_with_several_scopes_may_do_what_each_allows(api, state):
    headers = {"Authorization": f"Api-Key {create_key('desk', [CIRCULATION, PATRON_READ])[1]}"}
    by_name = {call.name: call for call in CALLS}
    for name in ("renew", "a patron's loans", "one loan", "policy"):
        assert by_name[name].send(api, state, headers).status_code == by_name[name].success, name
    for name in ("all loans", "overdue list", "erasure"):
        assert by_name[name].send(api, state, headers).status_code == 403, name


@pytest.mark.parametrize("path", ["/loans/?user_email=", "/reservations/?user_email="])
def test_an_empty_patron_filter_never_lists_everyone(api, state, path):
    """Refused as a bad query (400) or, if it got that far, as an unfiltered listing (403)."""
    response = api.get(path, headers={"Authorization": f"Api-Key {key_with(PATRON_READ)}"})
    assert response.status_code in (400, 403), response.content
    assert "results" not in response.json()


def test_a_key_made_outside_the_command_has_no_scope(api, state):
    from rest_framework_api_key.models import APIKey

    headers = {"Authorization": f"Api-Key {APIKey.objects.create_key(name='bare')[1]}"}
    assert api.get("/policy/", headers=headers).status_code == 200
    assert api.get("/loans/", headers=headers).status_code == 403


def test_a_missing_key_is_still_401_before_any_scope(api, state):
    response = api.get("/loans/")
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"


def test_changed_scopes_apply_at_once_in_this_process(api, state, settings):
    settings.API_KEY_CACHE_SECONDS = 3600
    auth.verified_keys.clear()
    api_key, key = create_key("reporting", [PATRON_READ])
    headers = {"Authorization": f"Api-Key {key}"}
    assert api.get("/loans/", headers=headers).status_code == 403
    grant = ApiKeyScopes.objects.get(api_key=api_key)
    grant.scopes = "reports"
    grant.save()  # as the admin and `api_keys scopes` do
    assert api.get("/loans/", headers=headers).status_code == 200


@pytest.mark.parametrize("call", CALLS, ids=lambda call: call.name)
def test_patron_data_is_never_stored_by_caches(api, state, call):
    """Successes and refusals alike (a refusal's message may name the patron)."""
    for scope in (call.accepted[0] if call.accepted else CIRCULATION, OVERRIDE):
        response = call.send(api, state, {"Authorization": f"Api-Key {key_with(scope)}"})
        cache_control = response.get("Cache-Control", "")
        assert ("no-store" in cache_control) == call.patron_data, (scope, response.status_code, cache_control)


def test_an_idempotent_replay_is_not_stored_by_caches_either(api, state):
    headers = {"Authorization": f"Api-Key {key_with(CIRCULATION)}", "Idempotency-Key": "replayed-renewal"}
    body = {"user_email": state["patron"], "book_id": state["quiet_book"]}
    assert post_json(api, "/renewBook/", body, **headers).status_code == 200
    replay = post_json(api, "/renewBook/", body, **headers)
    assert replay["Idempotent-Replayed"] == "true" and "no-store" in replay["Cache-Control"]


def _api_views():
    """Every DRF view the service routes to, but the OpenAPI schema and its viewers (public)."""
    for pattern in get_resolver().url_patterns:
        for inner in getattr(pattern, "url_patterns", [pattern]):
            view = getattr(getattr(inner, "callback", None), "view_class", None)
            if isinstance(view, type) and issubclass(view, APIView) and view.__module__.startswith("lending."):
                yield str(inner.pattern), view


def test_every_api_view_states_its_scope_and_is_in_the_matrix():
    views = dict(_api_views())
    unguarded = [route for route, view in views.items() if HasScope not in view.permission_classes]
    assert unguarded == [], "these views bypass the scopes (permission_classes): leave the default"
    undeclared = [route for route, view in views.items() if getattr(view, "required_scope", None) is None]
    assert undeclared == [], "state `required_scope` on these views (lending.api.permissions)"
    routes = {route.rstrip("/") for route in views}
    matrix = {call.path.split("?")[0].strip("/") for call in CALLS}
    normalised = {
        route.replace("<int:loan_id>", "{loan_id}")
        .replace("<int:block_id>", "{block_id}")
        .replace("<str:email>", "{nobody}")
        .replace("<str:barcode>", "{lent_item}")
        .replace("<str:name>", "{policy}")
        for route in routes
    }
    matrix = {path.replace("{patron}", "{nobody}").replace("{quiet_loan_id}", "{loan_id}") for path in matrix}
    matrix = {path.replace("loan-policies/default", "loan-policies/{policy}") for path in matrix}
    assert normalised - matrix == set(), "add the new endpoint to CALLS"


def test_a_view_without_a_declared_scope_refuses_every_key(api, state, settings):
    from rest_framework.test import APIRequestFactory

    from lending.api.views import PolicyApi

    class Undeclared(PolicyApi):
        required_scope = None

    request = APIRequestFactory().get("/policy/", HTTP_AUTHORIZATION=f"Api-Key {create_key('all', Scope.values)[1]}")
    response = Undeclared.as_view()(request)
    assert response.status_code == 403 and response.data["error"]["code"] == "insufficient_scope"


def test_the_openapi_document_names_each_operations_scope():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = {
        op["operationId"]: op for path in schema["paths"].values() for op in path.values() if isinstance(op, dict)
    }
    # A lend needs `circulation`, its dry run `patron-read` or `reports`.
    assert operations["lendBook"]["x-required-scopes"] == ["circulation", "patron-read", "reports"]
    assert operations["returnBook"]["x-required-scopes"] == ["circulation"]
    assert operations["getExpiredBooks"]["x-required-scopes"] == ["reports"]
    assert operations["listLoans"]["x-required-scopes"] == ["patron-read", "reports", "patron-self"]
    assert operations["getLoanHistory"]["x-required-scopes"] == ["patron-read", "reports", "patron-self"]
    assert operations["anonymizePatron"]["x-required-scopes"] == ["privacy"]
    assert operations["getPolicy"]["x-required-scopes"] == []
    assert "**Scope**" in operations["renewBook"]["description"]
    scheme = schema["components"]["securitySchemes"]["ApiKeyAuth"]["description"]
    assert all(f"`{scope}`" in scheme for scope in Scope.values)
