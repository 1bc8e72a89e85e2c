from django.contrib import admin
from django.urls import include, path, re_path

from lending.api.errors import json_404

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("lending.api.urls")),
    # Unknown paths answer the JSON error shape, in debug mode too.
    re_path(r"^", json_404),
]

handler400 = "lending.api.errors.json_400"
handler404 = "lending.api.errors.json_404"
handler500 = "lending.api.errors.json_500"
