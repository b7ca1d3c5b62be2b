"""Frame tokens: what a sandboxed plot frame shows to prove which document it may load.

A document is code (BokehJS runs its ``CustomJS``), so a plot page renders it in a sandboxed
frame with an opaque origin, which has neither the viewer's cookies nor their authority. The
page hands the frame a frame token instead: signed with ``SECRET_KEY``, naming one document and
one role (``read`` or ``write``), and valid for ``BOKEHSITE_FRAME_TOKEN_MAX_AGE`` seconds. It
also names what the role came from (the viewer's user, or a digest of the secret link's key), so
that every use checks it against the current rights: a token signed before a collaborator was
removed or a link was rotated grants nothing more than its holder may do now.

The frame needs a token only when it loads the document and when it opens its websocket; an
open websocket is not cut when its token expires, but it is when its rights are. A page that stays open for hours and must
reconnect asks its parent page for a fresh token (``postMessage``, see
``static/bokehsite/frame-host.js``): the parent has the viewer's cookies and gets one from
``/documents/<id>/frame-token/``, which applies the same access rules as the page.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from django.conf import settings
from django.core import signing
from django.utils.crypto import salted_hmac

from documents.exceptions import InvalidFrameToken
from documents.models import Document

SALT = "bokehsite.documents.frame"
FrameRole = Literal["read", "write"]


@dataclass(frozen=True)
class FrameGrant:
    """What a valid frame token allows: at most ``role`` on the document ``document_id``, while the
    viewer ``user_id`` (None: anyone) with the secret link whose key has ``key_digest`` (if any)
    may still view it."""

    document_id: uuid.UUID
    role: FrameRole
    user_id: int | None = None
    key_digest: str | None = None
    # A frame shown in another site's page (``documents.embeds``): the embed token's id, or
    # "public" / "open" for embeds that need none, "session" for an app session's (which its key
    # holder changes). None: a frame of this site's own plot page.
    embed: str | None = None


# An app session shown in another site's page: the viewer's own session, which they drive.
SESSION_EMBED = "session"


def key_digest(key: str) -> str:
    """A digest of a secret link's key, to name it in frame tokens without revealing it."""
    return salted_hmac(SALT, key, algorithm="sha256").hexdigest()[:32]


def frame_role(role: str) -> FrameRole:
    """A viewer's role as a frame gets it: owners and writers write, everyone else reads."""
    return "write" if role in ("owner", "write") else "read"


def sign_frame_token(document: Document, role: str, *, user_id: int | None = None, key: str | None = None,
                     embed: str | None = None) -> str:
    """A frame token for ``document`` with ``role`` ("read" or "write"; "owner" counts as write),
    for the viewer ``user_id`` (None: an anonymous viewer), who holds the secret link ``key``, or
    for the embed ``embed`` (which reads only, unless it is an app session's)."""
    data = {"d": str(document.pk), "r": "read" if embed and embed != SESSION_EMBED else frame_role(role), "u": user_id,
            "k": key_digest(key) if key else None}
    if embed:
        data["e"] = embed
    return signing.dumps(data, salt=SALT, compress=False)


def verify_frame_token(token: str, *, max_age: float | None = None) -> FrameGrant:
    """The grant a frame token carries.

    Args:
        max_age: seconds the token stays valid; default ``settings.BOKEHSITE_FRAME_TOKEN_MAX_AGE``.
    Raises:
        InvalidFrameToken: the token is malformed, forged or expired.
    """
    if max_age is None:
        max_age = settings.BOKEHSITE_FRAME_TOKEN_MAX_AGE
    try:
        data = signing.loads(token, salt=SALT, max_age=max_age)
        grant = FrameGrant(uuid.UUID(data["d"]), data["r"], data.get("u"), data.get("k"), data.get("e"))
    except signing.SignatureExpired:
        raise InvalidFrameToken("the frame token has expired; reload the page") from None
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise InvalidFrameToken("the frame token is not valid") from None
    if (grant.role not in ("read", "write") or not isinstance(grant.user_id, (int, type(None)))
            or not isinstance(grant.key_digest, (str, type(None))) or not isinstance(grant.embed, (str, type(None)))
            or (grant.embed not in (None, SESSION_EMBED) and grant.role != "read")):
        raise InvalidFrameToken("the frame token is not valid")
    return grant
