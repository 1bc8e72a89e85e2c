"""The write endpoints' lean path: the request a lend, return, renewal, reservation or cancellation
nearly always is goes from Django to the write without DRF's request machinery.

That request is a POST with no query string, a JSON body of exactly `{"user_email": "...", "book_id": n}`
(a plain ASCII address that needs no trimming, a JSON integer in range), `Content-Type: application/json`,
no `Accept` or a plain JSON one, and, when keys are required, a key this process verified in the last
API_KEY_CACHE_SECONDS that holds one of the scopes the view accepts. It is checked here without DRF's
request wrapper, parsers, negotiation, authenticators, serializers and renderer, which cost a lend about
a third of its web worker's CPU; then it is counted by the same rate limits, written by the view's
own `write` (idempotency, history, metrics) and rendered as DRF renders it.

Every other request goes through the DRF view unchanged, which answers it as before: another method, a
query string (`?dry_run=true`), a body with other fields (`override`, `returned_at`) or values DRF would
coerce or refuse, an unusual `Accept` or `Content-Type`, a key not verified yet (the DRF path verifies and
caches it), an expired key, a missing scope, a `patron-self` key. The choice is made before anything is
counted or written, so a request never runs on both paths; `tests/api/test_lean_writes.py` checks that
both paths give the same answers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig, ValidationError
from django.core.validators import validate_email
from django.http import HttpRequest, HttpResponse
from rest_framework.renderers import JSONRenderer
from rest_framework.settings import api_settings

from lending.api import auth, errors, permissions
from lending.api.negotiation import PLAIN_ACCEPTS
from lending.api.serializers import MAX_BOOK_ID, MAX_EMAIL_LENGTH, MAX_LOCAL_PART_LENGTH, LoanRequestSerializer
from lending.api.views import LoanWriteApi
from lending.observability import metrics
from lending.strict_json import loads_strict

JSON_CONTENT_TYPES = frozenset(
    {"application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"}
)
LOAN_REQUEST_FIELDS = frozenset({"user_email", "book_id"})
_renderer = JSONRenderer()


def serving(view_class: type[LoanWriteApi]) -> Callable[..., Any]:
    """The view function for `view_class`'s routes: the lean path for the requests it answers exactly
    as the DRF view would, the DRF view (`as_view()`) for every other."""
    drf_view = view_class.as_view()
    if view_class.request_serializer is not LoanRequestSerializer:
        return drf_view  # check-out, check-in: bodies of their own, through DRF

    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        api_key = _verified_key(request, view_class)
        parsed = _loan_request(request) if api_key is not _REFUSED else None
        if parsed is None:
            return drf_view(request, *args, **kwargs)
        request.auth = api_key  # type: ignore[attr-defined]  # what DRF's Request sets too; throttles read it
        return _write(view_class(**drf_view.initkwargs), request, *parsed, api_key)  # type: ignore[attr-defined]

    # What Django (the URL's view name, CSRF) and drf-spectacular read of a view function: the DRF view's.
    functools.update_wrapper(view, drf_view)
    del view.__wrapped__  # type: ignore[attr-defined]  # the lean path is not a wrapper of DRF's view
    return view


# `_verified_key`'s answer for a request the lean path leaves to DRF (None is "keys are off").
_REFUSED = object()


def _verified_key(request: HttpRequest, view_class: type[LoanWriteApi]) -> Any:
    """The request's key when keys are required and this process verified it already, unexpired, holding
    a scope the view accepts for a request without query; None when keys are off; `_REFUSED` otherwise."""
    meta = request.META
    if meta.get("QUERY_STRING") or request.method != "POST":
        return _REFUSED
    if (
        meta.get("CONTENT_TYPE", "").lower() not in JSON_CONTENT_TYPES
        or meta.get("HTTP_ACCEPT", "").strip() not in PLAIN_ACCEPTS
    ):
        return _REFUSED
    if not auth.keys_required():
        return None
    key = auth.presented_key(request)
    api_key = auth.verified_keys.get(key) if key else None
    if api_key is None or api_key.has_expired:
        return _REFUSED
    accepted = view_class.required_scope.accepted_for(request)
    if not permissions.holds_accepted_scope(permissions.granted_scopes(api_key), accepted):
        return _REFUSED
    request.api_key_prefix = api_key.prefix  # type: ignore[attr-defined]  # for the log line, as the authenticator does
    return api_key


def _loan_request(request: HttpRequest) -> tuple[dict, dict] | None:
    """`{user_email, book_id}` as `LoanRequestSerializer` would validate it, and the body as parsed (the
    Idempotency-Key's fingerprint), when the body is in the shape that serializer takes as it is; None
    for anything else (DRF then parses, coerces or refuses it)."""
    try:
        body = loads_strict(request.body)
    except (ValueError, RequestDataTooBig):
        return None
    if not isinstance(body, dict) or body.keys() != LOAN_REQUEST_FIELDS:
        return None
    email, book_id = body["user_email"], body["book_id"]
    if type(book_id) is not int or not 1 <= book_id <= MAX_BOOK_ID:
        return None
    if not isinstance(email, str) or not _plain_address(email):
        return None
    return {"user_email": email.lower(), "book_id": book_id}, body


@functools.lru_cache(maxsize=4096)  # a patron's address comes back (their return, their next lend)
def _plain_address(email: str) -> bool:
    """An address the serializer's field keeps as it is (then lower-cases): ASCII, printable, untrimmed,
    within RFC 5321's sizes, valid for Django's validator. A pure function of the text, kept for the
    addresses seen lately: Django's validator is most of the lean path's own CPU."""
    if not (0 < len(email) <= MAX_EMAIL_LENGTH and email.isascii() and email.isprintable() and email == email.strip()):
        return False
    if len(email.rpartition("@")[0]) > MAX_LOCAL_PART_LENGTH:
        return False
    try:
        validate_email(email)
    except ValidationError:
        return False
    return True


def _write(view: LoanWriteApi, request: HttpRequest, data: dict, body: dict, api_key: Any) -> HttpResponse:
    """The write on the view's own path, after the rate limits the DRF path applies; refusals in the
    API's error shape, counted as the DRF view counts them."""
    view.request, view.args, view.kwargs = request, (), {}  # type: ignore[assignment]  # as DRF's dispatch sets them
    try:
        view.check_throttles(request)  # type: ignore[arg-type]  # DRF's own: its throttles read `auth` and the address
        written = view.write(data, request=request, body=body, api_key=api_key)
    except Exception as exc:
        answer = errors.exception_handler(exc, {"view": view, "request": None})
        if answer is None:
            raise
        metrics.record_refusal(view.operation, answer)
        headers = {name: value for name, value in answer.items() if name.lower() != "content-type"}
        return _rendered(view, answer.status_code, answer.data, headers)
    return _rendered(view, written.status, written.body, written.headers)


def _rendered(view: LoanWriteApi, status: int, body: Any, headers: dict[str, str]) -> HttpResponse:
    """The answer as DRF's renderer and the view's `finalize_response` make it."""
    response = HttpResponse(_renderer.render(body), status=status, content_type=_renderer.media_type)
    for name, value in headers.items():
        response[name] = value
    for name, value in view.default_response_headers.items():  # `Allow`, as DRF's finalize_response sets it
        response[name] = value
    response["Cache-Control"] = "no-store"  # what `NoStore`'s patch_cache_control makes of an answer without one
    return response


assert [JSONRenderer] == api_settings.DEFAULT_RENDERER_CLASSES, "the lean path renders as the API's only renderer"
