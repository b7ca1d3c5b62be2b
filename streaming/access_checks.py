"""One connection's access: resolved when it opens, and checked again whenever it may have changed.

It is checked again when access is announced as changed (``access.changed``, from any process: a
token revoked, a user deactivated or logged out, the document's sharing changed), when what
identifies the connection expires, and at least every ``BOKEHSITE_ACCESS_RECHECK`` seconds in
case an announcement was lost. A check that finds no access raises the refusal, for the
connection to say why and close.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from bokehsite.errors import ApiError
from documents import access
from documents.models import Document
from streaming import auth, broadcast

logger = logging.getLogger(__name__)
db = database_sync_to_async


class ConnectionAccess:
    """Who a connection is (from its ``scope``) and what it may do: ``role``, "read" or "write"."""

    def __init__(self, scope: dict):
        self.scope = scope
        self.role = "read"
        self.session_ended = False  # its browser session was logged out
        self.checking = self.wanted = False
        self.periodic: asyncio.Task[None] | None = None
        self.owner_id: int | None = None  # the document's owner, once open

    async def open(self) -> Document:
        """The document the connection follows, with ``.role``; raises ApiError when refused."""
        document = await db(self.resolve)(again=False)
        self.role = access.connection_role(document.role)
        self.owner_id = document.owner_id
        return document

    def resolve(self, *, again: bool) -> Document:
        """The document as access is now (on the database thread). ``again``: identify the
        connection afresh, not from what it opened with."""
        if again:
            try:
                self.scope["user"]._wrapped = auth.identify(self.scope, session_ended=self.session_ended)
            except ApiError as e:
                self.scope["auth_error"] = e
        if error := self.scope.get("auth_error"):
            raise error
        caller = access.socket_caller(self.scope, self.scope["user"])
        return access.resolve(caller, self.scope["url_route"]["kwargs"]["pk"])

    def identity_groups(self) -> list[str]:
        """The groups told when this connection's identity changes (its user, or its frame's viewer,
        and an embed's document owner)."""
        user = self.scope["user"]
        if user.is_authenticated:
            return [broadcast.user_group_name(user.pk)]
        grant = access.socket_caller(self.scope, user).grant
        groups = [broadcast.user_group_name(grant.user_id)] if grant and grant.user_id is not None else []
        if grant and grant.embed is not None:  # an embed ends with its owner's account
            groups.append(broadcast.user_group_name(self.owner_id))
        return list(dict.fromkeys(groups))

    def sessions_ended(self, sessions: Iterable[str]) -> None:
        """These browser sessions were logged out: the next check identifies this one afresh."""
        session = self.scope.get("session")
        if session is not None and session.session_key in sessions:
            self.session_ended = True

    async def recheck(self, checked: Callable[[bool], Awaitable[None]]) -> None:
        """Check access as it is now; after each check that grants some, ``checked(role_changed)``.

        Raises:
            ApiError: the connection may no longer follow the document.
        """
        self.wanted = True
        if self.checking:
            return  # the check under way looks again once it is done
        self.checking = True
        try:
            while self.wanted:
                self.wanted = False
                try:
                    document = await db(self.resolve)(again=True)
                except (OperationalError, InterfaceError):
                    logger.warning("the database did not answer an access check; it is tried again")
                    return
                role = access.connection_role(document.role)
                changed, self.role = role != self.role, role
                await checked(changed)
        finally:
            self.checking = False

    def start(self, recheck: Callable[[], Awaitable[None]]) -> None:
        """Call ``recheck`` when what identifies the connection expires (an API token, a session:
        nothing announces it), and in case an announcement was lost, at least every
        BOKEHSITE_ACCESS_RECHECK seconds (spread out, so that connections opened together do not
        all look at once); until ``stop``."""
        self.periodic = asyncio.create_task(self._periodically(recheck))

    def stop(self) -> None:
        if self.periodic is not None:
            self.periodic.cancel()

    async def _periodically(self, recheck: Callable[[], Awaitable[None]]) -> None:
        while True:
            expires = await db(auth.credentials_expire)(self.scope)
            delay = settings.BOKEHSITE_ACCESS_RECHECK * random.uniform(0.5, 1.0)
            if expires is not None:
                delay = min(delay, max((expires - timezone.now()).total_seconds(), 0.0) + 0.05)
            await asyncio.sleep(delay)
            try:
                await recheck()
            except Exception:
                logger.exception("checking a connection's access failed")
