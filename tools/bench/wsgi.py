"""The WSGI callable `make bench` serves: the product's application, plus `/_bench/bare/` answered by a
Django handler with no middleware at all.

Both ceilings are then measured by the same server processes in the same run: `/_bench/bare/` (the
bare ceiling every ratio is given against) and `/_bench/ceiling/` (the same constant view through the
product's WSGI wrapper and full middleware), so the cost of the stack itself shows.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tools.bench.settings")

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402 (the settings module must be chosen first)
from django.test.utils import override_settings  # noqa: E402

from config.wsgi import application as product  # noqa: E402

BARE_PREFIX = "/_bench/bare/"


class BareHandler(WSGIHandler):
    """Django's WSGI handler with an empty middleware chain: URL resolution, the view, the response."""

    def load_middleware(self, is_async: bool = False) -> None:
        with override_settings(MIDDLEWARE=[]):
            super().load_middleware(is_async)


bare = BareHandler()

# The same constant view through the middleware as it was before the admin's session, CSRF,
# authentication and messages middleware ran for the admin's paths only (lending/api/admin_stack.py):
# that lever, measured side by side with `/_bench/ceiling/` in one run.
ALL_MIDDLEWARE_PREFIX = "/_bench/all-middleware/"


def every_middleware_on_every_path() -> list[str]:
    from django.conf import settings

    from lending.api.admin_stack import ADMIN_ONLY_MIDDLEWARE

    found: list[str] = []
    for dotted in settings.MIDDLEWARE:
        found += ADMIN_ONLY_MIDDLEWARE if dotted == "lending.api.admin_stack.AdminOnlyMiddleware" else [dotted]
    return found


class AllMiddlewareHandler(WSGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        with override_settings(MIDDLEWARE=every_middleware_on_every_path()):
            super().load_middleware(is_async)


all_middleware = AllMiddlewareHandler()


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith(BARE_PREFIX):
        return bare(environ, start_response)
    if path.startswith(ALL_MIDDLEWARE_PREFIX):
        return all_middleware(environ, start_response)
    return product(environ, start_response)
