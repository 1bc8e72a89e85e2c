"""Service API keys: with REQUIRE_API_KEY on, every write without a key, with a wrong key or with a
revoked (or expired) key is 401 in the error shape and changes nothing; a valid key works."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework_api_key.models import APIKey

from lending.api.permissions import create_key
from lending.models import BookStock, Hold, IdempotencyRecord, Loan, LoanNotice, OutboxMessage, Scope
from tests.conftest import post_json

pytestmark = pytest.mark.django_db

WRITES = [
    "/lendBook/",
    "/lendBook/?dry_run=true",
    "/returnBook/",
    "/renewBook/",
    "/reserveBook/",
    "/cancelReservation/",
]
READS = ["/getExpiredBooks/", "/loans/", "/reservations/", "/policy/"]


@pytest.fixture
def keys_required(settings):
    settings.REQUIRE_API_KEY = True


@pytest.fixture
def valid_key() -> str:
    return create_key("patron-app", Scope.values)[1]


@pytest.fixture
def revoked_key() -> str:
    api_key, key = APIKey.objects.create_key(name="retired-app")
    api_key.revoked = True
    api_key.save()
    return key


@pytest.fixture
def expired_key() -> str:
    return APIKey.objects.create_key(name="old-app", expiry_date=timezone.now() - timedelta(days=1))[1]


@pytest.fixture
def lent(api, peers, patron, book, settings):
    """An open loan of `book` to `patron`, and a second patron's hold on the same book."""
    settings.REQUIRE_API_KEY = False
    assert post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]}).status_code == 201
    other = peers.user.add_user(f"waiting-{patron}")["email"]
    assert post_json(api, "/reserveBook/", {"user_email": other, "book_id": book["id"]}).status_code == 201
    settings.REQUIRE_API_KEY = True
    return {"patron": patron, "other": other, "book_id": book["id"]}


def snapshot() -> list:
    return [
        list(model.objects.order_by("pk").values())
        for model in (Loan, Hold, OutboxMessage, IdempotencyRecord, BookStock, LoanNotice)
    ]


def body_for(path: str, lent: dict) -> dict:
    who = lent["other"] if path.startswith(("/reserveBook/", "/cancelReservation/")) else lent["patron"]
    return {"user_email": who, "book_id": lent["book_id"]}


def assert_refused(response, code: str) -> None:
    assert response.status_code == 401, response.content
    assert response.json()["error"]["code"] == code
    assert set(response.json()["error"]) >= {"code", "message"}
    assert response["WWW-Authenticate"] == "Api-Key"


@pytest.mark.parametrize("path", WRITES)
def test_write_without_a_key_is_401_and_writes_nothing(api, lent, path):
    before = snapshot()
    response = post_json(api, path, body_for(path, lent), **{"Idempotency-Key": f"no-key-{path}"})
    assert_refused(response, "not_authenticated")
    assert snapshot() == before


@pytest.mark.parametrize("path", WRITES)
@pytest.mark.parametrize(
    "authorization",
    ["Api-Key wrong.key", "Api-Key ", "Api-Key abcdefgh.0123456789abcdef0123456789abcdef", "Api-Key " + "x" * 500],
)
def test_write_with_a_wrong_key_is_401_and_writes_nothing(api, lent, valid_key, path, authorization):
    before = snapshot()
    response = post_json(
        api, path, body_for(path, lent), Authorization=authorization, **{"Idempotency-Key": f"wrong-key-{path}"}
    )
    assert_refused(response, "authentication_failed")
    assert snapshot() == before


@pytest.mark.parametrize("path", WRITES)
def test_write_with_another_schemes_credentials_is_401(api, lent, valid_key, path):
    before = snapshot()
    response = post_json(api, path, body_for(path, lent), Authorization=f"Bearer {valid_key}")
    assert_refused(response, "not_authenticated")
    assert snapshot() == before


@pytest.mark.parametrize("path", WRITES)
def test_write_with_a_revoked_key_is_401_and_writes_nothing(api, lent, revoked_key, path):
    before = snapshot()
    response = post_json(
        api,
        path,
        body_for(path, lent),
        Authorization=f"Api-Key {revoked_key}",
        **{"Idempotency-Key": f"revoked-{path}"},
    )
    assert_refused(response, "authentication_failed")
    assert snapshot() == before


@pytest.mark.parametrize("path", WRITES)
def test_write_with_an_expired_key_is_401_and_writes_nothing(api, lent, expired_key, path):
    before = snapshot()
    response = post_json(api, path, body_for(path, lent), Authorization=f"Api-Key {expired_key}")
    assert_refused(response, "authentication_failed")
    assert snapshot() == before


def test_every_write_works_with_a_valid_key(api, lent, valid_key):
    auth = {"Authorization": f"Api-Key {valid_key}"}
    mine = {"user_email": lent["patron"], "book_id": lent["book_id"]}
    theirs = {"user_email": lent["other"], "book_id": lent["book_id"]}
    dry_run = post_json(api, "/lendBook/?dry_run=true", theirs, **auth)
    assert dry_run.status_code == 200 and dry_run.json()["would_succeed"] is False
    assert post_json(api, "/cancelReservation/", theirs, **auth).status_code == 200
    assert post_json(api, "/renewBook/", mine, **auth).status_code == 200
    returned = post_json(api, "/returnBook/", mine, **auth, **{"Idempotency-Key": "valid-return"})
    assert returned.status_code == 200 and returned.json()["status"] == "RETURNED"
    lend = post_json(api, "/lendBook/", theirs, **auth)
    assert lend.status_code == 201, lend.content
    assert post_json(api, "/reserveBook/", mine, **auth).status_code == 201


@pytest.mark.parametrize("path", READS)
def test_reads_need_a_key_too(api, keys_required, valid_key, revoked_key, path):
    assert_refused(api.get(path), "not_authenticated")
    assert_refused(api.get(path, headers={"Authorization": f"Api-Key {revoked_key}"}), "authentication_failed")
    assert api.get(path, headers={"Authorization": f"Api-Key {valid_key}"}).status_code == 200


def test_open_endpoints_need_no_key(api, keys_required):
    for path in ("/health/", "/health/live/", "/health/ready/"):
        assert api.get(path).status_code == 200, path


def test_keys_are_ignored_when_not_required(api, settings, revoked_key):
    settings.REQUIRE_API_KEY = False
    assert api.get("/getExpiredBooks/", headers={"Authorization": f"Api-Key {revoked_key}"}).status_code == 200
    assert api.get("/getExpiredBooks/").status_code == 200


def test_keys_are_stored_hashed(valid_key):
    stored = APIKey.objects.get(prefix=valid_key.partition(".")[0])
    assert valid_key not in (stored.hashed_key, stored.id)
    assert valid_key.partition(".")[2] not in stored.hashed_key


def test_a_verified_key_is_trusted_without_a_query_until_its_time_is_up(
    api, keys_required, valid_key, settings, monkeypatch, django_assert_num_queries
):
    from lending.api import auth

    settings.API_KEY_CACHE_SECONDS = 10
    auth.verified_keys.clear()
    headers = {"Authorization": f"Api-Key {valid_key}"}
    # The key with its scopes, then the policy: the circulation rules' version, and the rules once.
    with django_assert_num_queries(3):
        assert api.get("/policy/", headers=headers).status_code == 200
    with django_assert_num_queries(1):  # the key is trusted: only the rules' version is read
        assert api.get("/policy/", headers=headers).status_code == 200

    # Revoked by another process (no signal here): trusted until the entry is older than the delay.
    APIKey.objects.filter(prefix=valid_key.partition(".")[0]).update(revoked=True)
    assert api.get("/policy/", headers=headers).status_code == 200
    later = auth.time.monotonic() + 11
    monkeypatch.setattr(auth.time, "monotonic", lambda: later)
    assert_refused(api.get("/policy/", headers=headers), "authentication_failed")


def test_a_key_revoked_in_this_process_is_refused_at_once(api, keys_required, valid_key, settings):
    settings.API_KEY_CACHE_SECONDS = 3600
    headers = {"Authorization": f"Api-Key {valid_key}"}
    assert api.get("/policy/", headers=headers).status_code == 200
    stored = APIKey.objects.get(prefix=valid_key.partition(".")[0])
    stored.revoked = True
    stored.save()  # the admin and `manage.py api_keys revoke` save the key
    assert_refused(api.get("/policy/", headers=headers), "authentication_failed")


def test_wrong_keys_are_never_cached(api, keys_required, settings, django_assert_num_queries):
    from lending.api import auth

    settings.API_KEY_CACHE_SECONDS = 3600
    auth.verified_keys.clear()
    for _ in range(3):
        assert_refused(api.get("/policy/", headers={"Authorization": "Api-Key abc.def"}), "authentication_failed")
    assert not auth.verified_keys._entries


def test_each_calling_service_has_its_own_idempotency_keys(api, keys_required, peers, book):
    desk = create_key("circulation-desk", [Scope.CIRCULATION])[1]
    kiosk = create_key("self-service-kiosk", [Scope.CIRCULATION])[1]
    other_book = peers.book.add_book("Another book", "A", 1)
    patrons = [peers.user.add_user(f"scoped-{name}-{book['id']}@example.com")["email"] for name in ("a", "b")]

    def lend_as(key: str, patron: str, book_id: int):
        return post_json(
            api,
            "/lendBook/",
            {"user_email": patron, "book_id": book_id},
            Authorization=f"Api-Key {key}",
            **{"Idempotency-Key": "lend-0001"},
        )

    first = lend_as(desk, patrons[0], book["id"])
    second = lend_as(kiosk, patrons[1], other_book["id"])  # same key, another service, another body
    assert (first.status_code, second.status_code) == (201, 201), second.content
    assert "Idempotent-Replayed" not in second
    assert lend_as(desk, patrons[0], book["id"])["Idempotent-Replayed"] == "true"
    assert Loan.objects.filter(user_email__in=patrons).count() == 2
