"""The spec's endpoints. Each path answers with and without its trailing slash (never a redirect:
a redirected POST would lose its body)."""
from django.urls import path

from lending.api import health, views


def both_slashes(route: str, view, name: str) -> list:
    return [path(f"{route}/", view, name=name), path(route, view)]


urlpatterns = [
    *both_slashes("lendBook", views.LendBookApi.as_view(), "lend-book"),
    *both_slashes("returnBook", views.ReturnBookApi.as_view(), "return-book"),
    *both_slashes("getExpiredBooks", views.ExpiredBooksApi.as_view(), "expired-books"),
    *both_slashes("health", health.health, "health"),
    *both_slashes("health/live", health.live, "health-live"),
    *both_slashes("health/ready", health.ready, "health-ready"),
]
