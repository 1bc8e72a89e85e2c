"""Content-Security-Policy on every answer (Django 5.2 has none of its own).

Two policies, chosen by what the answer is:

- a page (`text/html`: the admin, Swagger UI, ReDoc) may load scripts, styles, images and fonts from
  the service itself only — never inline scripts, never another origin (drf-spectacular-sidecar serves
  the viewers' assets locally). Styles may be inline: Swagger UI and ReDoc set `style` attributes and
  ReDoc writes its own `<style>` tags; ReDoc runs its search in a worker made from a `blob:` URL;
  images may be `data:` URLs (the admin's and Swagger UI's icons);
- anything else (the API's JSON, the probes, static files) may load nothing and be framed nowhere:
  `default-src 'none'; frame-ancestors 'none'`.

A page that must not run inline scripts needs its scripts served as files: Swagger UI runs as
drf-spectacular's "split" view (its init script at `?script`), ReDoc from `lending/templates/api/redoc.html`.
"""

from __future__ import annotations

HEADER = "Content-Security-Policy"

PAGE_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
STRICT_POLICY = "default-src 'none'; frame-ancestors 'none'"


def policy_for(content_type: str) -> str:
    return PAGE_POLICY if content_type.startswith("text/html") else STRICT_POLICY


class ContentSecurityPolicyMiddleware:
    """Sets the policy on every answer that has none yet (first in MIDDLEWARE, so it sees them all)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if HEADER not in response:
            response[HEADER] = policy_for(response.get("Content-Type", ""))
        return response
