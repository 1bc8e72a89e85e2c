"""Django's session, authentication and messages middleware, run for the admin's paths only.

They exist for the admin (a staff member's login, their session, the admin's forms and messages);
the API authenticates each request by its key. Run on every API request they cost a session store, a
lazy user and a message store for nothing (`make bench`, tools/bench/REPORT.md). Here they are built once,
as Django would chain them, and a request goes through them only when its path is under ADMIN_URL.
CSRF stays in MIDDLEWARE for every path (`check --deploy` asks for it; DRF's views are exempt anyway).

Django's admin checks look for these classes in MIDDLEWARE by name (admin.E408-E410): config/settings.py
silences those three checks, and tests/api/test_admin_stack.py checks what they guarded — the admin
logs in, keeps its session and shows messages.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.handlers.exception import convert_exception_to_response
from django.utils.module_loading import import_string

ADMIN_ONLY_MIDDLEWARE = (
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
)


class AdminOnlyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.prefix = "/" + settings.ADMIN_URL.lstrip("/")
        handler = get_response
        self.view_hooks: list[Callable] = []
        for dotted in reversed(ADMIN_ONLY_MIDDLEWARE):
            middleware = import_string(dotted)(handler)
            if hasattr(middleware, "process_view"):
                self.view_hooks.insert(0, middleware.process_view)
            handler = convert_exception_to_response(middleware)
        self.admin = handler

    def is_admin(self, request) -> bool:
        return settings.ADMIN_ENABLED and request.path_info.startswith(self.prefix)

    def __call__(self, request):
        return self.admin(request) if self.is_admin(request) else self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        """Each wrapped middleware's own hook, in order, as Django's handler would call them."""
        if not self.is_admin(request):
            return None
        for hook in self.view_hooks:
            response = hook(request, view_func, view_args, view_kwargs)
            if response is not None:
                return response
        return None
