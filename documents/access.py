"""Who is asking, and what they may do to a document: the one place that decides.

Roles, weakest first: ``read`` (view it), ``write`` (also change its content), ``owner`` (also
rename, delete, publish and share it). ``role_for`` answers ``None`` when the user may not even
know the document exists; callers then answer 404, never 403.

- The owner has ``owner``.
- A collaborator has the role the owner gave them (``read`` or ``write``), and so has every member
  of a group the owner shared it with; whoever has several has the strongest.
- Staff may read every document (to help and to moderate), and change none through the API;
  they change documents, owners and visibility in the Django admin.
- Anyone, even anonymous, may read a public document, and a secret-link document when they
  present its key.
- A sandboxed plot frame presents a frame token (``documents.frames``) for one document and role,
  signed for one viewer: it grants the weaker of that role and what the viewer may do now.
- Another site's page showing a document (``documents.embeds``) presents an embed token, or asks
  for a public document; in single-user mode it may show any. Embeds only read, and never act
  with the visitor's cookies; except an app session's embed, which drives (writes) the session
  whose key it holds, and nothing else.

The REST API, the pages and the websocket consumer all ask ``resolve(caller(...), id, need)``;
what a request or a connection presents (keys, frame and embed tokens) is read by
``accounts.credentials``.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError

from accounts.credentials import Credentials
from accounts.users import acting_user, default_user, multi_user
from documents.exceptions import DocumentNotFound, Forbidden, InvalidEmbedToken, InvalidFrameToken
from documents import embeds, frames
from documents.frames import FrameGrant, verify_frame_token
from documents.models import Collaborator, Document, EmbedToken, GroupShare, Kind, Visibility

RoleName = Literal["read", "write", "owner"]
RANK = {None: 0, "read": 1, "write": 2, "owner": 3}
User = AbstractBaseUser | AnonymousUser


def role_for(user: User, document: Document, *, key: str | None = None, key_digest: str | None = None) -> RoleName | None:
    """The strongest role ``user`` has on ``document`` (``key``: a secret link's key, if given, or
    ``key_digest``: its digest, as a frame token names it)."""
    if user.is_authenticated:
        if document.owner_id == user.pk:
            return "owner"
        if shared := _shared_role(user, document):
            return shared
        if user.is_staff:
            return "read"
    if document.visibility == Visibility.PUBLIC:
        return "read"
    if document.visibility == Visibility.SECRET and document.secret_key:
        # An app session's key is its viewer's: the session runs on what they change.
        by_key = "write" if document.kind == Kind.SESSION else "read"
        if key and hmac.compare_digest(document.secret_key.encode(), key.encode()):
            return by_key
        if key_digest and hmac.compare_digest(frames.key_digest(document.secret_key), key_digest):
            return by_key
    return None


def _shared_role(user: AbstractBaseUser, document: Document) -> RoleName | None:
    """The strongest role shared with ``user`` on ``document``, as a collaborator or as a member
    of a group it is shared with: one query."""
    as_collaborator = Collaborator.objects.filter(document_id=document.pk, user_id=user.pk).order_by().values_list("role")
    as_member = GroupShare.objects.filter(document_id=document.pk, group__user=user.pk).order_by().values_list("role")
    roles = {role for (role,) in as_collaborator.union(as_member)}
    return "write" if "write" in roles else "read" if roles else None


def allows(role: RoleName | None, needed: RoleName) -> bool:
    return RANK[role] >= RANK[needed]


def weaker(a: RoleName | None, b: RoleName | None) -> RoleName | None:
    return a if RANK[a] <= RANK[b] else b


def connection_role(role: RoleName) -> Literal["read", "write"]:
    """What a live connection with ``role`` may do: "write" (send changes) or "read"."""
    return "write" if allows(role, "write") else "read"


@dataclass(frozen=True)
class Caller:
    """Who asks: a user (perhaps anonymous) holding perhaps a secret link's ``key``, or a sandboxed
    frame holding a frame ``grant`` (which then alone decides)."""

    user: User
    key: str | None = None
    grant: FrameGrant | None = None
    # Another site's page showing the document: its embed token, or one of ``embeds.ANYWHERE``.
    embed: EmbedToken | str | None = None


def caller(request: Any, *, frame_token: bool = False) -> Caller:
    """Who a page or API request is.

    ``?public=true`` (the old bokeh-server's public link) asks as anyone would, whoever asks;
    ``?key=`` is a secret link's key. Only where ``frame_token`` is set, for reading, does a
    ``?frame_token=`` count: a frame token opens the frame and its content, and nothing else.

    Raises:
        InvalidFrameToken: the frame token is forged or expired.
    """
    credentials = Credentials.from_request(request)
    if frame_token and request.method in ("GET", "HEAD") and credentials.frame_token:
        return Caller(AnonymousUser(), grant=verify_frame_token(credentials.frame_token))
    user = AnonymousUser() if request.GET.get("public") == "true" else acting_user(request)
    return Caller(user, key=credentials.key)


def embed_caller(request: Any) -> Caller:
    """Who another site's page is when it shows a document (``autoload.js`` and its frame tokens):
    never the visitor's cookies. Its ``?embed_token=``; else anyone (``?public=true``, or any
    request of a multi-user server); else, in single-user mode, the one user, read-only.

    Raises:
        InvalidEmbedToken: the embed token is unknown, revoked or expired.
    """
    if secret := Credentials.from_request(request).embed_token:
        return Caller(AnonymousUser(), embed=embeds.lookup(secret))
    if request.GET.get("public") == "true" or multi_user():
        return Caller(AnonymousUser(), embed="public")
    return Caller(default_user(), embed="open")


def session_embed_caller(request: Any) -> Caller:
    """Who another site's page showing an app session is (``appserver``'s ``autoload.js`` and its
    frame tokens): whoever holds the session's ``?key=``, never the visitor's cookies (in
    single-user mode, the one user)."""
    user = AnonymousUser() if multi_user() else default_user()
    return Caller(user, key=Credentials.from_request(request).key, embed=frames.SESSION_EMBED)


def embed_expires(scope: dict[str, Any]) -> Any:
    """When the embed token behind a websocket's frame token expires, if it has one."""
    token = Credentials.from_scope(scope).frame_token
    try:
        grant = verify_frame_token(token) if token else None
    except InvalidFrameToken:
        return None
    if grant is None or grant.embed in (None, *embeds.ANYWHERE):
        return None
    try:
        return embeds.by_id(grant.embed).expires
    except InvalidEmbedToken:
        return None


def socket_caller(scope: dict[str, Any], user: User) -> Caller:
    """Who a websocket connection is: ``user`` (as ``streaming.auth`` identified it), holding the
    secret link's ``?key=``, or the frame token in ``?frame_token=``.

    Raises:
        InvalidFrameToken: its frame token is forged or expired.
    """
    credentials = Credentials.from_scope(scope)
    if credentials.frame_token:
        return Caller(AnonymousUser(), grant=verify_frame_token(credentials.frame_token))
    return Caller(user, key=credentials.key)


def mint_frame_token(who: Caller, document: Document) -> str:
    """A frame token for ``document`` (resolved for ``who``, so with ``document.role``), signed for
    ``who``: every use checks it against what they may do then."""
    user_id = who.user.pk if who.user.is_authenticated else None
    key = who.key if document.visibility == Visibility.SECRET else None
    embed = str(who.embed.pk) if isinstance(who.embed, EmbedToken) else who.embed
    return frames.sign_frame_token(document, document.role, user_id=user_id, key=key, embed=embed)


def _granted_role(grant: FrameGrant, document: Document) -> RoleName | None:
    """What a frame grant allows now: its role, if its viewer still has at least that.

    Raises:
        InvalidEmbedToken: the embed token it came from was revoked or has expired.
    """
    if grant.embed not in (None, *embeds.ANYWHERE):
        return "read" if embeds.by_id(grant.embed).document_id == document.pk else None
    if grant.embed == "open" and multi_user():
        return None  # single-user mode's open embeds end with it
    if grant.embed == frames.SESSION_EMBED and document.kind != Kind.SESSION:
        return None
    user: User = AnonymousUser()
    if grant.user_id is not None:
        user = get_user_model().objects.filter(pk=grant.user_id, is_active=True).first() or AnonymousUser()
    now = role_for(user, document, key_digest=grant.key_digest)
    return weaker(grant.role, frames.frame_role(now)) if now else None


def resolve(who: Caller, document_id: uuid.UUID | str, need: RoleName = "read") -> Document:
    """The document, if ``who`` has at least the role ``need`` on it; ``document.role`` is their role.

    Raises:
        InvalidFrameToken: the caller's frame token is for another document.
        InvalidEmbedToken: the caller's embed token is for another document, or the one its
            frame token came from was revoked or has expired.
        DocumentNotFound: no such document, or ``who`` may not know it exists.
        Forbidden: ``who`` may view it but not do what ``need`` requires.
    """
    if who.grant is not None and str(who.grant.document_id) != str(document_id):
        raise InvalidFrameToken("the frame token is for another document")
    if isinstance(who.embed, EmbedToken) and str(who.embed.document_id) != str(document_id):
        raise InvalidEmbedToken("the embed token is for another document")
    try:
        document = Document.objects.select_related("owner").get(pk=document_id)
    except (Document.DoesNotExist, ValueError, ValidationError):
        raise DocumentNotFound("no such document") from None
    if isinstance(who.embed, EmbedToken):
        role: RoleName | None = "read"
    elif who.grant is not None:
        role = _granted_role(who.grant, document)
    else:
        role = role_for(who.user, document, key=who.key)
    if who.embed == frames.SESSION_EMBED:
        role = role if document.kind == Kind.SESSION else None
    elif who.embed is not None:
        role = weaker(role, "read")
    if role is None:
        raise DocumentNotFound("no such document")
    if not allows(role, need):
        what = "change" if need == "write" else "manage"
        raise Forbidden(f"you may view this document but not {what} it")
    document.role = role
    return document
