"""Content negotiation for the API: DRF's, and a request body its view cannot parse is refused.

DRF looks for a parser only when a view reads ``request.data``, so a view that reads nothing
(publish, secret link, logout) would accept any body at all. A ``text/plain`` or form POST is
what another site's page can send without asking the browser's permission (a CORS "simple"
request), so every unsafe request's body must be of a media type the view parses, whether the
view reads it or not; otherwise the answer is 415 with the error envelope.
"""

from __future__ import annotations

from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import SAFE_METHODS


def _has_body(request) -> bool:
    length = request.META.get("CONTENT_LENGTH") or "0"
    return bool(request.content_type) or not length.isdigit() or int(length) > 0


class ContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        # DRF negotiates the answer's media type first thing in every view: the earliest point
        # at which the view's parsers are known.
        if request.method not in SAFE_METHODS and _has_body(request):
            if self.select_parser(request, request.parsers) is None:
                raise UnsupportedMediaType(request.content_type or "a body without a Content-Type")
        return super().select_renderer(request, renderers, format_suffix)
