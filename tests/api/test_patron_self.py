"""A key bound to one patron (`patron-self`, issue 28): a patron's own app reads and acts on that
patron's loans and holds, and gets 403 for anyone else's, whoever they are."""

from __future__ import annotations

import uuid

import pytest
from django.core.management import CommandError, call_command

from lending.api.permissions import create_key
from lending.models import ApiKeyScopes, Hold, IdempotencyRecord, Loan, Scope
from tests.conftest import post_json

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(api, peers, settings) -> dict:
    """`own` and `other` each have an open loan of their own book, and `shared` is a book both could
    reserve (its one copy is out)."""
    settings.REQUIRE_API_KEY = False
    names = {
        role: peers.user.add_user(f"{role}-{uuid.uuid4().hex[:8]}@example.com")["email"] for role in ("own", "other")
    }
    books = {role: peers.book.add_book(role, "Author", 1)["id"] for role in ("own", "other", "shared", "free")}
    loans = {}
    for role in ("own", "other"):
        lent = post_json(api, "/lendBook/", {"user_email": names[role], "book_id": books[role]})
        assert lent.status_code == 201, lent.content
        loans[role] = lent.json()["id"]
    third = peers.user.add_user(f"third-{uuid.uuid4().hex[:8]}@example.com")["email"]
    assert post_json(api, "/lendBook/", {"user_email": third, "book_id": books["shared"]}).status_code == 201
    settings.REQUIRE_API_KEY = True
    return {"emails": names, "books": books, "loans": loans}


def bound_key(email: str) -> dict:
    return {"Authorization": f"Api-Key {create_key('opac', [Scope.PATRON_SELF], patron_email=email)[1]}"}


def assert_refused(response) -> None:
    assert response.status_code == 403, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "insufficient_scope"


def test_the_key_reads_its_own_patrons_loans_and_holds(api, people):
    own = people["emails"]["own"]
    headers = bound_key(own.upper())  # bound as typed, compared as stored

    loans = api.get(f"/loans/?user_email={own}", headers=headers)
    holds = api.get(f"/reservations/?user_email={own}", headers=headers)
    one = api.get(f"/loans/{people['loans']['own']}/", headers=headers)
    history = api.get(f"/loans/{people['loans']['own']}/history/", headers=headers)

    assert loans.status_code == 200 and [loan["id"] for loan in loans.json()["results"]] == [people["loans"]["own"]]
    assert holds.status_code == 200
    assert one.status_code == 200 and one.json()["user_email"] == own
    assert history.status_code == 200


def test_the_key_is_refused_anyone_elses_loans_and_holds(api, people):
    headers = bound_key(people["emails"]["own"])
    other = people["emails"]["other"]

    for path in (
        f"/loans/?user_email={other}",
        f"/reservations/?user_email={other}",
        "/loans/",  # everyone's
        f"/reservations/?book_id={people['books']['shared']}",
        f"/loans/{people['loans']['other']}/",
        f"/loans/{people['loans']['other']}/history/",
        "/loans/999999999/",  # nobody's: refused the same way, so the key learns nothing
        "/getExpiredBooks/",
    ):
        assert_refused(api.get(path, headers=headers))


def test_the_key_renews_reserves_and_cancels_for_its_own_patron(api, people):
    own, books = people["emails"]["own"], people["books"]
    headers = bound_key(own)

    renewed = post_json(api, "/renewBook/", {"user_email": own, "book_id": books["own"]}, **headers)
    reserved = post_json(api, "/reserveBook/", {"user_email": own.upper(), "book_id": books["shared"]}, **headers)
    cancelled = post_json(api, "/cancelReservation/", {"user_email": own, "book_id": books["shared"]}, **headers)

    assert (renewed.status_code, reserved.status_code, cancelled.status_code) == (200, 201, 200), (
        renewed.content,
        reserved.content,
        cancelled.content,
    )


def test_the_key_acts_for_nobody_else_and_writes_nothing(api, people):
    other, books = people["emails"]["other"], people["books"]
    headers = {**bound_key(people["emails"]["own"]), "Idempotency-Key": "self-1"}
    before = (list(Loan.objects.values()), list(Hold.objects.values()))

    for path, book in (("/renewBook/", "other"), ("/reserveBook/", "shared"), ("/cancelReservation/", "shared")):
        assert_refused(post_json(api, path, {"user_email": other, "book_id": books[book]}, **headers))
    # Lending and returning stay at the desk (`circulation`), even for the key's own patron.
    own = people["emails"]["own"]
    assert_refused(post_json(api, "/lendBook/", {"user_email": own, "book_id": books["free"]}, **headers))
    assert_refused(post_json(api, "/returnBook/", {"user_email": own, "book_id": books["own"]}, **headers))

    assert (list(Loan.objects.values()), list(Hold.objects.values())) == before
    assert not IdempotencyRecord.objects.exists()


def test_a_patron_self_key_without_its_patron_is_refused_everything(api, people):
    api_key, key = create_key("opac", [Scope.PATRON_READ])
    ApiKeyScopes.objects.filter(api_key=api_key).update(scopes=Scope.PATRON_SELF.value)
    own = people["emails"]["own"]

    assert_refused(api.get(f"/loans/?user_email={own}", headers={"Authorization": f"Api-Key {key}"}))


def test_a_binding_goes_with_patron_self_only():
    with pytest.raises(ValueError, match="Only a `patron-self` key"):
        create_key("desk", [Scope.CIRCULATION], patron_email="ann@example.com")
    with pytest.raises(ValueError, match="Not an email"):
        create_key("opac", [Scope.PATRON_SELF], patron_email="not-an-email")


def test_the_command_binds_a_key_to_its_patron(capsys):
    with pytest.raises(CommandError, match="needs the patron"):
        call_command("api_keys", "create", "opac", "--scopes", "patron-self")

    call_command("api_keys", "create", "opac", "--scopes", "patron-self", "--patron", "Ann@Example.com")

    assert ApiKeyScopes.objects.get(api_key__name="opac").patron_email == "ann@example.com"
    call_command("api_keys", "scopes", "opac", "patron-read")
    assert ApiKeyScopes.objects.get(api_key__name="opac").patron_email == ""
