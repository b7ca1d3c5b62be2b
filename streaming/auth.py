"""Who a websocket connection acts as.

Browsers send an ``Origin`` header and carry cookies wherever a page asks them to, so the
identity that rides on cookies (the session, or ``defaultuser`` in single-user mode) is granted
only when the origin is one of this site's hosts. Python sessions send no ``Origin``.
"""

from __future__ import annotations

from urllib.parse import urlparse

from channels.auth import AuthMiddleware
from channels.db import database_sync_to_async
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import split_domain_port, validate_host

from accounts.users import default_user, multi_user


def origin_is_ours(scope) -> bool:
    origin = dict(scope.get("headers", [])).get(b"origin")
    if origin is None:
        return True
    host = urlparse(origin.decode("latin-1")).netloc
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


class WebsocketUserMiddleware(AuthMiddleware):
    """Sets ``scope["user"]``: ``defaultuser`` in single-user mode, else the session's user."""

    async def resolve_scope(self, scope) -> None:
        if not origin_is_ours(scope):
            scope["user"]._wrapped = AnonymousUser()
        elif not multi_user():
            scope["user"]._wrapped = await database_sync_to_async(default_user)()
        else:
            await super().resolve_scope(scope)


def WebsocketAuthStack(inner):
    return CookieMiddleware(SessionMiddleware(WebsocketUserMiddleware(inner)))
