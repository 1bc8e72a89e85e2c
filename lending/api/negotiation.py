"""Content negotiation: DRF's, answered at once for what nearly every client sends."""

from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation

JSON = "application/json"
# Accept headers that DRF's walk answers with a JSON first renderer, whatever the view.
PLAIN_ACCEPTS = frozenset({"", "*/*", JSON})


class JsonFirstNegotiation(DefaultContentNegotiation):
    """No Accept header, `*/*` or `application/json`, no `?format=`, and a view whose first renderer is
    JSON (every API view): that renderer, as DRF's own walk over the header's media ranges would pick.
    Anything else (the docs' YAML and HTML, a client asking for XML: 406) walks it."""

    def select_renderer(self, request, renderers, format_suffix=None):
        if (
            format_suffix is None
            and renderers
            and renderers[0].media_type == JSON
            and request.META.get("HTTP_ACCEPT", "").strip() in PLAIN_ACCEPTS
            and self.settings.URL_FORMAT_OVERRIDE not in request.GET
        ):
            return renderers[0], JSON
        return super().select_renderer(request, renderers, format_suffix)
