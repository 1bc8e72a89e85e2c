"""The admin's change-list filters, checked before a change list runs them.

A change list takes its filters from the query string (`?date_due__gte=...`, the date hierarchy's
`?date_due__year=...&date_due__month=...`, and any lookup on a field: `?user_email__regex=...`).
Django parses them, but some values crashed it (a 500) rather than being refused:

- a date at the calendar's edge: a UTC offset beyond ±15:59 is refused by PostgreSQL,
  `9999-12-31T23:59:59-23:59` does not fit a datetime once in UTC, the date hierarchy adds a day or a
  year past 9999-12-31, and a `__year` lookup beyond 9999 cannot be turned into bounds;
- a NUL character, which PostgreSQL refuses in a text value;
- a regular expression (`__regex`, `__iregex`), which PostgreSQL compiles its own way and refuses
  when malformed: the admin offers none, so none is taken from the URL.

Such a filter is a 400 in the one JSON error shape, naming the parameter; other bad filters are left
to Django (which redirects with `?e=1` for those it cannot use).
"""

from __future__ import annotations

from django.contrib.admin.options import IS_POPUP_VAR, TO_FIELD_VAR
from django.contrib.admin.views.main import ALL_VAR, ERROR_FLAG, ORDER_VAR, PAGE_VAR, SEARCH_VAR
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.http import JsonResponse
from django.utils.dateparse import parse_datetime

from lending import errors
from lending.api.errors import refusal
from lending.moments import MomentOutOfRange, check_moment

# Lookups whose value the database compiles as a regular expression.
REGEX_LOOKUPS = frozenset({"regex", "iregex"})
# The change list's own parameters, not filters.
NOT_FILTERS = frozenset({ALL_VAR, ORDER_VAR, PAGE_VAR, SEARCH_VAR, ERROR_FLAG, IS_POPUP_VAR, TO_FIELD_VAR, "_facets"})
YEAR_LOOKUPS = frozenset({"year", "iso_year"})
# Years whose bounds (the next year, the next month, the next day) Python can still hold.
FIRST_YEAR, LAST_YEAR = 1, 9998


class AdminFilterMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        model_admin = getattr(view_func, "model_admin", None)  # set by ModelAdmin.get_urls on its views
        match = getattr(request, "resolver_match", None)
        if model_admin is None or match is None or not (match.url_name or "").endswith("_changelist"):
            return None
        return filter_refusal(model_admin.model, request.GET)


def filter_refusal(model: type[models.Model], query) -> JsonResponse | None:
    for name, values in query.lists():
        if name in NOT_FILTERS:
            continue
        problem = _problem(model, name, values)
        if problem:
            return refusal(
                errors.INVALID_REQUEST, f"The filter {name} is refused: {problem}", details={name: [problem]}
            )
    return None


def _problem(model: type[models.Model], name: str, values: list[str]) -> str:
    if any("\x00" in value for value in values):
        return "no NUL character."
    if REGEX_LOOKUPS.intersection(name.split("__")[1:]):
        return "no regular expression."
    field, lookups = _date_field_of(model, name)
    if field is None:
        return ""
    return next((problem for value in values if (problem := _out_of_range(field, lookups, value))), "")


def _date_field_of(model: type[models.Model], name: str) -> tuple[models.DateField | None, list[str]]:
    """The date or date-time field a filter `name` (`loan__date_due__gte`) is about, and its lookups."""
    parts = name.split("__")
    for index, part in enumerate(parts):
        try:
            field = model._meta.get_field(part)
        except FieldDoesNotExist:
            return None, []
        if isinstance(field, models.DateField):  # DateTimeField is one too
            return field, parts[index + 1 :]
        related = field.related_model
        if related is None or isinstance(related, str):  # not a relation (or one still unresolved)
            return None, []
        model = related
    return None, []


def _out_of_range(field: models.DateField, lookups: list[str], value: str) -> str:
    if lookups and lookups[0] in YEAR_LOOKUPS:
        year = value.strip()
        if year.isascii() and year.lstrip("-").isdigit() and not FIRST_YEAR <= int(year) <= LAST_YEAR:
            return f"a year from {FIRST_YEAR} to {LAST_YEAR}."
        return ""
    if lookups and lookups[0] not in ("exact", "gt", "gte", "lt", "lte", "in", "range"):
        return ""  # month, day, date, isnull...: Django's own parsing copes
    for text in value.split(","):
        problem = _moment_problem(text.strip()) if isinstance(field, models.DateTimeField) else ""
        if problem:
            return problem
    return ""


def _moment_problem(text: str) -> str:
    try:
        moment = parse_datetime(text)
    except ValueError:
        return ""  # malformed: Django refuses it as it does any bad filter
    if moment is None:
        return ""  # a day (midnight in UTC) or malformed: Django copes with both
    try:
        check_moment(moment)
    except MomentOutOfRange as exc:
        return str(exc)
    return ""
