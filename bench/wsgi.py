"""The WSGI callable `make bench` serves: the product's application, plus `/_bench/bare/` answered by a
Django handler with no middleware at all.

Both ceilings are then measured by the same server processes in the same run: `/_bench/bare/` (the
bare ceiling every ratio is given against) and `/_bench/ceiling/` (the same constant view through the
product's WSGI wrapper and full middleware), so the cost of the stack itself shows.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

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


def application(environ, start_response):
    if environ.get("PATH_INFO", "").startswith(BARE_PREFIX):
        return bare(environ, start_response)
    return product(environ, start_response)
