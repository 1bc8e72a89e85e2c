from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from lending.api.errors import json_404

# The admin: removed with ADMIN_ENABLED=false, moved with ADMIN_URL.
ADMIN_ROUTES = [path(settings.ADMIN_URL, admin.site.urls)] if settings.ADMIN_ENABLED else []

urlpatterns = [
    *ADMIN_ROUTES,
    # OpenAPI 3 schema and its viewers (static assets served locally, no CDN); open like /health/.
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI's init script as a file of its own (`?script`): the docs' Content-Security-Policy
    # allows no inline script (lending/csp.py).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"), name="redoc"),
    path("", include("lending.api.urls")),
    # Unknown paths answer the JSON error shape, in debug mode too.
    re_path(r"^", json_404),
]

handler400 = "lending.api.errors.json_400"
handler404 = "lending.api.errors.json_404"
handler500 = "lending.api.errors.json_500"
