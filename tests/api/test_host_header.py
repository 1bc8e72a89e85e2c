"""A request for a host the service does not serve (not in DJANGO_ALLOWED_HOSTS) gets the one JSON
error shape, 400 `disallowed_host`, in debug mode (`make run`) as in production: never Django's HTML
debug page, which would also show the settings to whoever sent the request."""

from __future__ import annotations

import pytest


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [True, False], ids=["debug (make run)", "production"])
@pytest.mark.parametrize("path", ["/getExpiredBooks/", "/lendBook/", "/admin/", "/no-such-page/"])
def test_a_disallowed_host_gets_a_json_400(client, settings, debug, path):
    settings.DEBUG = debug
    answer = client.get(path, HTTP_HOST="attacker.example")
    assert answer.status_code == 400
    assert answer["Content-Type"] == "application/json"
    assert answer.json()["error"]["code"] == "disallowed_host"
    assert "attacker.example" not in answer.content.decode()


@pytest.mark.django_db
def test_an_allowed_host_is_served(client, settings):
    settings.DEBUG = True
    assert client.get("/getExpiredBooks/", HTTP_HOST="localhost").status_code == 200


def test_probes_answer_for_any_host(client, settings):
    """Kubernetes probes and Prometheus use the pod's address as Host: they answer before the check."""
    settings.DEBUG = True
    assert client.get("/health/live/", HTTP_HOST="10.42.0.17:8000").status_code == 200
