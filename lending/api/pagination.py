"""Limit/offset paging for the listings, with an RFC 8288 `Link` header.

`/loans/` and `/reservations/` answer `{"count", "next", "previous", "results"}`; `getExpiredBooks`
stays a bare JSON list and tells what remains only through the `Link` header.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int


class PageParamsSerializer(serializers.Serializer):
    limit = serializers.IntegerField(required=False, min_value=1)
    offset = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1)

    def validate_limit(self, value: int) -> int:
        if value > settings.API_MAX_PAGE_SIZE:
            raise serializers.ValidationError(f"At most {settings.API_MAX_PAGE_SIZE} items per page.")
        return value


def page_params(request: Request, *, default_limit: int | None = None) -> Page:
    """The page asked for; a bad `limit` or `offset` is a 400 with details."""
    params = PageParamsSerializer(data=request.query_params)
    params.is_valid(raise_exception=True)
    limit = params.validated_data.get("limit", default_limit or settings.API_PAGE_SIZE)
    return Page(limit=limit, offset=params.validated_data.get("offset", 0))


def _url(request: Request, page: Page, offset: int) -> str:
    url = replace_query_param(request.build_absolute_uri(), "limit", page.limit)
    return replace_query_param(url, "offset", offset) if offset else remove_query_param(url, "offset")


def links(request: Request, page: Page, *, more: bool, count: int | None = None) -> dict[str, str | None]:
    found = {
        "first": _url(request, page, 0),
        "prev": _url(request, page, max(page.offset - page.limit, 0)) if page.offset > 0 else None,
        "next": _url(request, page, page.offset + page.limit) if more else None,
        "last": None,
    }
    if count is not None and count > 0:
        found["last"] = _url(request, page, (count - 1) // page.limit * page.limit)
    return found


def link_header(found: dict[str, str | None]) -> str:
    return ", ".join(f'<{url}>; rel="{rel}"' for rel, url in found.items() if url)


SerializerClass = type[serializers.BaseSerializer]


def counted_page(request: Request, queryset: QuerySet, serializer_class: SerializerClass) -> Response:
    """Two queries: the total, then the page."""
    page = page_params(request)
    count = queryset.count()
    items = list(queryset[page.offset : page.offset + page.limit])
    found = links(request, page, more=page.offset + len(items) < count, count=count)
    body = {
        "count": count,
        "next": found["next"],
        "previous": found["prev"],
        "results": serializer_class(items, many=True).data,
    }
    return Response(body, headers={"Link": link_header(found), "X-Total-Count": str(count)})


def bare_list_page(request: Request, queryset: QuerySet, serializer_class: SerializerClass) -> Response:
    """One query: a bare JSON list of at most `limit` items (default and cap API_MAX_PAGE_SIZE), with
    a `Link` header whose `next` is present only when more remain."""
    page = page_params(request, default_limit=settings.API_MAX_PAGE_SIZE)
    items = list(queryset[page.offset : page.offset + page.limit + 1])
    more = len(items) > page.limit
    items = items[: page.limit]
    headers = {}
    if more or page.offset:
        headers["Link"] = link_header(links(request, page, more=more))
    return Response(serializer_class(items, many=True).data, headers=headers)
