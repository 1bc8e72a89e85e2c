"""WSGI entry point (gunicorn config.wsgi:application).

Django's handler sits behind `RequestGuard` (lending/api/middleware.py), which answers what Django
would crash on or misread before its own middleware runs: a non-UTF-8 charset, a chunked body,
X-Forwarded-* headers from a peer that is not a trusted proxy.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_application = get_wsgi_application()

from lending.api.middleware import RequestGuard, declared_parameters  # noqa: E402 (after Django's setup)

# The API's declared parameters come from its OpenAPI schema: built once here, at boot, rather
# than by the first request of each worker.
declared_parameters()

application = RequestGuard(django_application)
