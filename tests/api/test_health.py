"""Health endpoints for the spec and the Kubernetes probes."""

from unittest import mock

import pytest
from django.db.utils import OperationalError

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/health/", "/health", "/health/ready/"])
def test_healthy_when_the_database_answers(api, path):
    response = api.get(path)
    assert response.status_code == 200
    body = response.json()
    assert body["service"] == "lending-service" and body["status"] == "healthy"
    assert body["checks"]["database"] == "ok"


def test_ready_checks_migrations(api):
    assert api.get("/health/ready/").json()["checks"]["migrations"] == "ok"


@pytest.mark.parametrize("path", ["/health/", "/health/ready/"])
def test_unhealthy_503_json_when_the_database_is_down(api, path):
    with mock.patch("django.db.backends.utils.CursorWrapper.execute", side_effect=OperationalError("down")):
        response = api.get(path)
    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy"
    assert response.json()["checks"]["database"].startswith("unavailable")


def test_live_needs_no_database(api, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = api.get("/health/live/")
    assert response.status_code == 200 and response.json()["status"] == "healthy"
