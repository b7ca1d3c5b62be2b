"""Who a websocket connection acts as.

- A Python session sends ``Authorization: Token <secret>`` (or ``Bearer``), checked by the same
  lookup as the REST API. It sends no ``Origin``.
- A sandboxed plot frame has an opaque origin (``Origin: null``) and no cookies; it presents its
  signed frame token as ``?frame_token=``, which grants one document and one role. It gets no
  other identity; ``documents.access.socket_caller`` checks the token.
- Otherwise the identity rides on cookies: the session, or ``defaultuser`` in single-user mode.
  Browsers send cookies wherever a page asks them to, so this identity is granted only when the
  ``Origin`` is this site's own (``origin_is_ours``).

``identify`` decides, from the connection's scope, when it opens and again whenever its access
may have changed (a token revoked, a user deactivated or logged out): an open connection is
never more than what its credentials are now. An API token that does not check out leaves
``scope["auth_error"]``; the consumer answers it with an error message and closes the connection.
"""

from __future__ import annotations

import io
from datetime import datetime
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from channels.auth import AuthMiddleware
from channels.db import database_sync_to_async
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.handlers.asgi import ASGIRequest
from django.middleware.csrf import CsrfViewMiddleware

from accounts.credentials import Credentials
from accounts.exceptions import InvalidToken
from accounts.tokens import authenticate_token, user_for_token
from accounts.users import default_user, multi_user
from documents import access


def origin_is_ours(scope) -> bool:
    """Whether a browser's socket comes from this site's own pages, decided as Django's CSRF check
    decides for a form: its ``Origin`` is the connection's own (scheme, host and port; ``ws`` is
    http, ``wss`` https, or the trusted proxy's ``SECURE_PROXY_SSL_HEADER``) or one of
    ``CSRF_TRUSTED_ORIGINS``. Python sessions send no ``Origin``."""
    if b"origin" not in dict(scope.get("headers", [])):
        return True
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    request = ASGIRequest({**scope, "method": "GET", "scheme": scheme}, io.BytesIO())
    # Django's own origin check (private, but the same code its CSRF middleware runs on forms).
    return CsrfViewMiddleware(lambda request: None)._origin_verified(request)


def identify(scope: dict[str, Any], *, session_ended: bool = False) -> AbstractBaseUser | AnonymousUser:
    """Who the connection is now (it queries the database).

    Args:
        session_ended: the browser session it rides on was logged out (it may still be in the store).
    Raises:
        InvalidToken: its API token is unknown, revoked or expired, or its user is inactive.
    """
    credentials = Credentials.from_scope(scope)
    if credentials.frame_token:
        return AnonymousUser()  # a sandboxed frame: its token alone speaks for it
    if credentials.authorization and not credentials.names_key and multi_user():
        user = user_for_token(credentials.api_token)
        if user is None:
            raise InvalidToken("the API token is not valid (unknown, revoked or expired)")
        return user
    if not origin_is_ours(scope):
        return AnonymousUser()  # another site's page: no cookie identity
    if not multi_user():
        return default_user()
    session_key = getattr(scope.get("session"), "session_key", None)
    if session_ended or not session_key:
        return AnonymousUser()
    # Read the session afresh: a logout deletes it, and Django checks it against the user's
    # password and whether they are active.
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return auth.get_user(SimpleNamespace(session=store))


def credentials_expire(scope: dict[str, Any]) -> datetime | None:
    """When what identifies the connection lapses on its own, if it does: its API token's expiry,
    or its browser session's, or the embed token's behind its frame token (it queries the database)."""
    if (expires := access.embed_expires(scope)) is not None:
        return expires
    credentials = Credentials.from_scope(scope)
    if credentials.authorization and not credentials.names_key and multi_user():
        token = authenticate_token(credentials.api_token)
        return token.expires if token else None
    session = scope.get("session")
    if multi_user() and getattr(session, "session_key", None):
        return session.get_expiry_date()
    return None


class WebsocketUserMiddleware(AuthMiddleware):
    """Sets ``scope["user"]`` (and ``scope["auth_error"]`` for an API token that does not check out)."""

    async def resolve_scope(self, scope) -> None:
        try:
            scope["user"]._wrapped = await database_sync_to_async(identify)(scope)
        except InvalidToken as error:
            scope["user"]._wrapped = AnonymousUser()
            scope["auth_error"] = error


def WebsocketAuthStack(inner):
    return CookieMiddleware(SessionMiddleware(WebsocketUserMiddleware(inner)))
