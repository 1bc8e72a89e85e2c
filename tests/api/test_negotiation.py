"""lending/api/negotiation.py: the plain Accept headers are answered at once, and every answer is the
one DRF's own negotiation gives (the JSON renderer, or 406 for a media type the API does not speak)."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from lending.api.negotiation import JsonFirstNegotiation

ACCEPTS = [
    None,
    "*/*",
    "application/json",
    " application/json ",
    "application/json; charset=utf-8",
    "application/*",
    "text/html, application/json;q=0.9",
    "application/xml",
    "text/html",
]


def _request(accept: str | None, query: str = "") -> Request:
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    return Request(RequestFactory().get(f"/loans/{query}", **headers))


def _choice(negotiation, accept: str | None, query: str = ""):
    try:
        renderer, media_type = negotiation.select_renderer(_request(accept, query), [JSONRenderer()])
    except Exception as exc:  # DRF's NotAcceptable, compared by class
        return type(exc)
    return type(renderer), media_type


@pytest.mark.parametrize("accept", ACCEPTS)
def test_the_answer_is_drfs(accept):
    assert _choice(JsonFirstNegotiation(), accept) == _choice(DefaultContentNegotiation(), accept)


def test_format_in_the_query_walks_drfs_negotiation():
    ours = _choice(JsonFirstNegotiation(), None, "?format=xml")
    assert ours == _choice(DefaultContentNegotiation(), None, "?format=xml")


@pytest.mark.django_db
def test_the_api_answers_406_for_a_media_type_it_does_not_speak(api):
    response = api.get("/policy/", HTTP_ACCEPT="application/xml")
    assert response.status_code == 406
    assert response.json()["error"]["code"] == "not_acceptable"
    assert api.get("/policy/", HTTP_ACCEPT="*/*").status_code == 200
