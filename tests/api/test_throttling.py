"""Rate limits per API key and per client address: beyond them 429 `rate_limited` with Retry-After,
and nothing written."""

from __future__ import annotations

import os
import socket
import uuid

import pytest
from django.core.cache import cache
from rest_framework_api_key.models import APIKey

from lending.models import Loan
from tests.conftest import post_json

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters():
    cache.clear()
    yield
    cache.clear()


def assert_throttled(response) -> None:
    assert response.status_code == 429, response.content
    assert response.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 61


def test_per_address_limit(api, settings):
    settings.THROTTLE_RATE_PER_IP = "2/min"
    assert [api.get("/policy/").status_code for _ in range(2)] == [200, 200]
    assert_throttled(api.get("/policy/"))
    # Another address has its own budget.
    assert api.get("/policy/", REMOTE_ADDR="10.1.2.3").status_code == 200


def test_a_throttled_write_writes_nothing(api, settings, patron, book):
    settings.THROTTLE_RATE_PER_IP = "1/min"
    assert api.get("/policy/").status_code == 200
    response = post_json(api, "/lendBook/", {"user_email": patron, "book_id": book["id"]})
    assert_throttled(response)
    assert not Loan.objects.filter(user_email=patron).exists()


def test_per_key_limit(api, settings):
    settings.REQUIRE_API_KEY = True
    settings.THROTTLE_RATE_PER_KEY = "2/min"
    first = APIKey.objects.create_key(name="first")[1]
    second = APIKey.objects.create_key(name="second")[1]

    def get(key: str):
        return api.get("/policy/", headers={"Authorization": f"Api-Key {key}"})

    assert [get(first).status_code for _ in range(2)] == [200, 200]
    assert_throttled(get(first))
    # Same address, another key: its own budget (no per-address limit set here).
    assert get(second).status_code == 200


def test_forwarded_for_is_ignored_without_trusted_proxies(api, settings):
    settings.THROTTLE_RATE_PER_IP = "1/min"
    assert api.get("/policy/", HTTP_X_FORWARDED_FOR="10.0.0.1").status_code == 200
    # A client cannot dodge the limit by inventing X-Forwarded-For addresses.
    assert_throttled(api.get("/policy/", HTTP_X_FORWARDED_FOR="10.0.0.2"))


def _redis_reachable() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_counters_live_in_the_shared_cache(api, settings):
    """With CACHE_URL pointing at Redis, the counters are in Redis: every process sees the same ones."""
    if not _redis_reachable():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true: Redis is not reachable on 127.0.0.1:6379")
        pytest.skip("Redis not reachable on 127.0.0.1:6379")
    import redis

    prefix = f"test-throttle-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/1",
            "KEY_PREFIX": prefix,
        }
    }
    settings.THROTTLE_RATE_PER_IP = "2/min"
    client = redis.Redis.from_url("redis://127.0.0.1:6379/1")
    try:
        assert [api.get("/policy/").status_code for _ in range(2)] == [200, 200]
        assert client.keys(f"{prefix}:*throttle_address_*"), "no throttle counter in Redis"
        assert_throttled(api.get("/policy/"))
    finally:
        for key in client.keys(f"{prefix}:*"):
            client.delete(key)
        client.close()


def test_a_request_costs_one_counter_whatever_the_rate(api, settings):
    """The state of a limit is one integer per window, not the timestamps of its requests."""
    settings.THROTTLE_RATE_PER_IP = "6000/min"
    for _ in range(50):
        assert api.get("/policy/").status_code == 200
    counters = [key for key in cache._cache if "throttle_address_" in key]
    assert len(counters) == 1
    assert cache.get(counters[0].split(":", 2)[-1]) == 50


def test_the_wait_is_the_rest_of_the_window(api, settings, monkeypatch):
    from lending.api import throttling

    settings.THROTTLE_RATE_PER_IP = "1/min"
    monkeypatch.setattr(throttling.time, "time", lambda: 6_000_000 * 60 + 45.5)  # 45.5 s into a minute
    assert api.get("/policy/").status_code == 200
    response = api.get("/policy/")
    assert_throttled(response)
    assert int(response["Retry-After"]) == 15
    monkeypatch.setattr(throttling.time, "time", lambda: 6_000_001 * 60 + 0.5)  # the next minute
    assert api.get("/policy/").status_code == 200
