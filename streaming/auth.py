"""Who a websocket connection acts as.

- A Python session sends ``Authorization: Token <secret>`` (or ``Bearer``), checked by the same
  lookup as the REST API. It sends no ``Origin``.
- A sandboxed plot frame has an opaque origin (``Origin: null``) and no cookies; it presents its
  signed frame token as ``?frame_token=``, which grants one document and one role. It gets no
  other identity; ``documents.access.socket_caller`` checks the token.
- Otherwise the identity rides on cookies: the session, or ``defaultuser`` in single-user mode.
  Browsers send cookies wherever a page asks them to, so this identity is granted only when the
  ``Origin`` is one of this site's hosts.

An API token that does not check out leaves ``scope["auth_error"]``; the consumer answers it
with an error message and closes the connection.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from channels.auth import AuthMiddleware
from channels.db import database_sync_to_async
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import split_domain_port, validate_host

from accounts.exceptions import InvalidToken
from accounts.tokens import secret_from_authorization, user_for_token
from accounts.users import default_user, multi_user


def origin_is_ours(scope) -> bool:
    origin = dict(scope.get("headers", [])).get(b"origin")
    if origin is None:
        return True
    host = urlparse(origin.decode("latin-1")).netloc
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


class WebsocketUserMiddleware(AuthMiddleware):
    """Sets ``scope["user"]``."""

    async def resolve_scope(self, scope) -> None:
        scope["user"]._wrapped = AnonymousUser()
        frame_token = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("frame_token", [None])[0]
        authorization = dict(scope.get("headers", [])).get(b"authorization")
        if frame_token:
            pass  # a sandboxed frame: its token alone speaks for it
        elif authorization and multi_user():
            secret = secret_from_authorization(authorization.decode("latin-1"))
            user = await database_sync_to_async(user_for_token)(secret) if secret else None
            if user is None:
                scope["auth_error"] = InvalidToken("the API token is not valid (unknown, revoked or expired)")
            else:
                scope["user"]._wrapped = user
        elif not origin_is_ours(scope):
            pass  # another site's page: no cookie identity
        elif not multi_user():
            scope["user"]._wrapped = await database_sync_to_async(default_user)()
        else:
            await super().resolve_scope(scope)


def WebsocketAuthStack(inner):
    return CookieMiddleware(SessionMiddleware(WebsocketUserMiddleware(inner)))
