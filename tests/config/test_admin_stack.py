"""Sessions, authentication and messages run for the admin's paths only (lending/api/admin_stack.py):
the API's requests skip them, the admin keeps every one of them."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory, override_settings

from lending.api.admin_stack import AdminOnlyMiddleware

pytestmark = pytest.mark.django_db


def seen_by_view(path: str) -> object:
    """The request as the view behind AdminOnlyMiddleware receives it."""
    seen = []
    middleware = AdminOnlyMiddleware(lambda request: seen.append(request) or None)
    middleware(RequestFactory().get(path))
    return seen[0]


def test_an_api_request_skips_the_admins_middleware():
    request = seen_by_view("/lendBook/")
    assert not hasattr(request, "session")
    assert not hasattr(request, "user")
    assert not hasattr(request, "_messages")


def test_an_admin_request_gets_session_user_and_messages():
    request = seen_by_view("/admin/login/")
    assert hasattr(request, "session")
    assert hasattr(request, "user")
    assert hasattr(request, "_messages")


@override_settings(ADMIN_URL="staff-desk/")
def test_the_admins_path_follows_admin_url():
    assert hasattr(seen_by_view("/staff-desk/"), "session")
    assert not hasattr(seen_by_view("/admin/"), "session")


def test_the_admin_login_refuses_a_post_without_its_csrf_token():
    client = Client(enforce_csrf_checks=True)
    assert client.post("/admin/login/", {"username": "x", "password": "y"}).status_code == 403


def test_the_admin_logs_in_with_its_csrf_token_and_keeps_the_session():
    get_user_model().objects.create_superuser("desk", "desk@example.com", "a long pass phrase 42")
    client = Client(enforce_csrf_checks=True)
    client.get("/admin/login/")
    token = client.cookies["csrftoken"].value
    answer = client.post(
        "/admin/login/?next=/admin/",
        {"username": "desk", "password": "a long pass phrase 42", "csrfmiddlewaretoken": token},
    )
    assert answer.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_an_api_answer_sets_no_cookie(client):
    answer = client.get("/loans/", {"user_email": "nobody@example.com"})
    assert not answer.cookies
    assert "Cookie" not in answer.get("Vary", "")
