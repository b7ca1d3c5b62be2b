"""What a request or a websocket presents to say who it is, read in one place.

- ``Authorization: Token <secret>`` (or ``Bearer <secret>``): an API token (``accounts.tokens``).
- ``?frame_token=``: a sandboxed plot frame's signed token (``documents.frames``).
- ``?key=`` (or ``Authorization: Key <key>``, for a program): a secret link's key, an app
  session's among them; ``?embed_token=``: another site's embed token (``documents.embeds``).

Only strings are read here; what each one is worth is decided by the module named. DRF
authentication, logout, ``documents.access``, ``streaming.auth`` and the ``/metrics`` gate
(``bokehsite.metrics``, which compares a bearer secret with its own token) all read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from django.http import HttpRequest, QueryDict

# The Authorization schemes that carry an API token.
SCHEMES = ("token", "bearer")


@dataclass(frozen=True)
class Credentials:
    """The credentials one request or connection presents (``None``: not presented)."""

    # The Authorization header as sent (not empty), whatever its scheme.
    authorization: str | None = None
    # The secret of ``Token <secret>`` or ``Bearer <secret>``; None if the header is anything else.
    api_token: str | None = None
    frame_token: str | None = None
    key: str | None = None
    embed_token: str | None = None

    @property
    def scheme(self) -> str:
        """The Authorization header's scheme, in lower case ("" without the header)."""
        return (self.authorization or "").partition(" ")[0].lower()

    @property
    def names_api_token(self) -> bool:
        """The Authorization header names the Token or Bearer scheme, whether its secret is well
        formed or not (one that is not then fails, instead of being ignored)."""
        return self.scheme in SCHEMES

    @property
    def bearer(self) -> str | None:
        """The secret after ``Bearer``, as sent (spaces around it stripped), whether it would pass for
        an API token or not; None if the header names another scheme or none."""
        return (self.authorization or "").partition(" ")[2].strip() if self.scheme == "bearer" else None

    @property
    def names_key(self) -> bool:
        """The Authorization header carries a secret link's key (``Key <key>``), not an account."""
        return self.scheme == "key"

    @classmethod
    def parse(cls, authorization: str | None, query: QueryDict | dict[str, list[str]]) -> Credentials:
        """From an Authorization header value and a query string's parameters."""
        def value(name: str) -> str | None:
            # Django's QueryDict gives a repeated parameter's last value; parse_qs's lists, the first.
            found = query.get(name) if isinstance(query, QueryDict) else (query.get(name) or [None])[0]
            return found or None

        parts = (authorization or "").split()
        api_token = parts[1] if len(parts) == 2 and parts[0].lower() in SCHEMES else None
        header_key = parts[1] if len(parts) == 2 and parts[0].lower() == "key" else None
        return cls(authorization or None, api_token, value("frame_token"), value("key") or header_key,
                   value("embed_token"))

    @classmethod
    def from_request(cls, request: HttpRequest) -> Credentials:
        """A page's or an API request's credentials (a DRF ``Request`` or Django's), read once."""
        request = getattr(request, "_request", request)  # DRF's Request wraps Django's
        if not hasattr(request, "_credentials"):
            request._credentials = cls.parse(request.META.get("HTTP_AUTHORIZATION"), request.GET)
        return request._credentials

    @classmethod
    def from_scope(cls, scope: dict[str, Any]) -> Credentials:
        """A websocket connection's credentials, read once (kept in ``scope["credentials"]``)."""
        if "credentials" not in scope:
            authorization = dict(scope.get("headers", [])).get(b"authorization", b"").decode("latin-1")
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            scope["credentials"] = cls.parse(authorization, query)
        return scope["credentials"]
