"""Staff authentication for the admin: django-axes' lockout in front of Django's model backend, and API
keys' permissions kept for superusers.

Only superusers manage API keys (and their scopes): the model backend never grants a permission on
them to anyone else, whatever their groups or user permissions say, so the "desk" group and any
other staff see no key in the admin. Superusers hold every permission anyway (Django checks
`is_superuser` before asking a backend).
"""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend
from django.contrib.auth.backends import ModelBackend
from django.db.models import Q

# (app label, model) pairs whose permissions only superusers hold; None: every model of the app.
SUPERUSER_ONLY = (("rest_framework_api_key", None), ("lending", "apikeyscopes"))


def _superuser_only() -> Q:
    query = Q(pk__in=[])
    for app_label, model in SUPERUSER_ONLY:
        rule = Q(content_type__app_label=app_label)
        if model is not None:
            rule &= Q(content_type__model=model)
        query |= rule
    return query


class StaffModelBackend(ModelBackend):
    # ModelBackend's private hooks (the public methods cache what they return); django-stubs omits them.
    def _get_user_permissions(self, user_obj):
        return super()._get_user_permissions(user_obj).exclude(_superuser_only())  # type: ignore[misc]

    def _get_group_permissions(self, user_obj):
        return super()._get_group_permissions(user_obj).exclude(_superuser_only())  # type: ignore[misc]


class AxesBackend(AxesStandaloneBackend):
    """django-axes' lockout for every login that comes with a request (the admin's form). A call
    without one (a shell, `Client.login` in a test) is not a login over HTTP: nothing to lock out, and
    axes would refuse it outright."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
