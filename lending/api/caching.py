"""Caching headers. Loans and holds name patrons and what they read: no cache (a browser, a proxy, a
CDN) may keep them, so every answer of a view carrying patron data says `Cache-Control: no-store`,
refusals included (their messages name the patron too)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.cache import patch_cache_control
from rest_framework.request import Request
from rest_framework.response import Response

if TYPE_CHECKING:
    from rest_framework.views import APIView as _View  # what the mixin is mixed into
else:
    _View = object


class NoStore(_View):
    """Mixin for API views whose answers carry patron data."""

    def finalize_response(self, request: Request, response: Response, *args, **kwargs) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        patch_cache_control(response, no_store=True)
        return response
