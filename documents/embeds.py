"""Embed tokens: what lets other sites' pages show a private document.

An embed token names one document, the origins (scheme, host and port) whose pages may show it,
and when it expires; its owner may revoke it. It grants reading only. The secret sits in the
snippet of the host page (``<script src=".../autoload.js?embed_token=...">``), so it is as
secret as that page: anyone who can read the page can read the plot. What the origins add is
that no other site can show it: the frame that renders the plot is served with
``Content-Security-Policy: frame-ancestors`` naming them, so browsers refuse to draw it anywhere
else, and the server refuses its loader and fresh frame tokens to pages of other origins.

Public documents need no token (``autoload.js?public=true``), nor, in single-user mode, any
document: there everyone who reaches the server may read everything.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.secrets import SecretKind, has_expired
from accounts.signals import announce
from bokehsite.errors import ApiError
from documents.exceptions import EmbedOriginRefused, InvalidEmbedToken
from documents.frames import SESSION_EMBED
from documents.models import Document, EmbedToken

EMBED_TOKENS = SecretKind("bke_", EmbedToken)
MAX_ORIGINS = 20
MAX_ORIGIN_LENGTH = 200
DEFAULT_LIFETIME = timedelta(days=30)
MAX_LIFETIME = timedelta(days=366)
# Frames of these embeds may be drawn in any page: "public" (a public document), "open" (any
# document of a single-user server) and "session" (an app session, which holds only its viewer's
# own state and is reached only through its key).
ANYWHERE = ("public", "open", SESSION_EMBED)


def normalize_origin(value: object) -> str:
    """``value`` as an origin (``https://example.org``, ``http://localhost:8888``).

    Raises:
        ApiError: it is not an http(s) origin (``field``: ``origins``).
    """
    bad = ApiError(f"{value!r} is not an origin such as https://example.org (a scheme, a host and perhaps a port, "
                   "no path)", field="origins", code="invalid")
    if not isinstance(value, str) or not value or len(value) > MAX_ORIGIN_LENGTH:
        raise bad
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        raise bad from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query \
            or parts.fragment or parts.username or parts.password or any(c in value for c in " ;,'\"\\"):
        raise bad
    default = {"http": 80, "https": 443}[parts.scheme]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def normalize_origins(values: object) -> list[str]:
    if not isinstance(values, (list, tuple)) or not values:
        raise ApiError("origins must be a list of one or more origins, such as [\"https://example.org\"]",
                       field="origins", code="invalid")
    if len(values) > MAX_ORIGINS:
        raise ApiError(f"at most {MAX_ORIGINS} origins per embed token", field="origins", code="invalid")
    return sorted({normalize_origin(v) for v in values})


def create(document: Document, origins: list[str], *, expires: datetime | None = None, name: str = "") -> tuple[EmbedToken, str]:
    """A new embed token for ``document``, for pages of ``origins``, valid until ``expires``
    (default: in 30 days; at most a year from now).

    Returns:
        The stored token and its secret, which is not stored: show it once.
    Raises:
        ApiError: an origin is not one, or ``expires`` is past or too far (``field`` says which).
    """
    origins = normalize_origins(origins)
    now = timezone.now()
    expires = expires or now + DEFAULT_LIFETIME
    if expires <= now:
        raise ApiError("expires must be in the future", field="expires", code="invalid")
    if expires > now + MAX_LIFETIME:
        raise ApiError(f"an embed token lasts at most {MAX_LIFETIME.days} days", field="expires", code="invalid")
    return EMBED_TOKENS.mint(document=document, name=name, origins=origins, expires=expires)


def check(token: EmbedToken) -> EmbedToken:
    """``token``, if it still holds.

    Raises:
        InvalidEmbedToken: it was revoked, it has expired, or its document's owner was deactivated.
    """
    if token.revoked is not None:
        raise InvalidEmbedToken("the embed token was revoked by the document's owner")
    if has_expired(token):
        raise InvalidEmbedToken("the embed token has expired; the document's owner can make a new one")
    if not token.document.owner.is_active:
        raise InvalidEmbedToken("the document's owner's account is disabled")
    return token


def lookup(secret: str) -> EmbedToken:
    """The embed token whose secret this is, if it still holds.

    Raises:
        InvalidEmbedToken: there is none, or it was revoked or has expired.
    """
    token = EMBED_TOKENS.find(secret, EmbedToken.objects.select_related("document__owner"))
    if token is None:
        raise InvalidEmbedToken("the embed token is not valid")
    return check(token)


def by_id(token_id: str) -> EmbedToken:
    """The embed token a frame token names, if it still holds (raises ``InvalidEmbedToken``)."""
    try:
        token = EmbedToken.objects.select_related("document__owner").filter(pk=token_id).first()
    except (ValueError, ValidationError):
        token = None
    if token is None:
        raise InvalidEmbedToken("the embed token no longer exists")
    return check(token)


def check_origin(token: EmbedToken, origin: str | None) -> None:
    """Refuse a page whose origin ``token`` does not list (``None``: the browser did not say).

    Raises:
        EmbedOriginRefused: it is not one of the token's origins.
    """
    if origin is None:
        return
    try:
        normalized = normalize_origin(origin)
    except ApiError:
        normalized = origin
    if normalized not in token.origins:
        raise EmbedOriginRefused(
            f"this page ({origin}) may not show this plot: its embed token allows only {', '.join(token.origins)}")


def frame_ancestors(embed: str) -> str:
    """The ``frame-ancestors`` directive for the frame of an embed: ``embed`` is a token's id, or
    one of ``ANYWHERE``. An embed token that no longer holds allows no page at all."""
    if embed in ANYWHERE:
        return "frame-ancestors *"
    try:
        return "frame-ancestors " + " ".join(by_id(embed).origins)
    except (InvalidEmbedToken, ValueError, ValidationError):
        return "frame-ancestors 'none'"


def tokens_of(document: Document):
    """Every embed token of ``document``, newest first, revoked and expired ones included."""
    return EmbedToken.objects.filter(document=document)


def get(document: Document, token_id: object) -> EmbedToken | None:
    try:
        return tokens_of(document).get(pk=token_id)
    except (EmbedToken.DoesNotExist, ValueError, TypeError, ValidationError):
        return None


def revoke(token: EmbedToken) -> EmbedToken:
    """Revoke ``token`` for good: pages showing it stop at once and say why. Again: no change."""
    with transaction.atomic():
        if EMBED_TOKENS.revoke(token):
            announce(documents=[token.document_id])  # open embeds look at their access again
    return token
