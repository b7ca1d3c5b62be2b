"""How many websockets one account, one anonymous client address and one process may hold open.

- ``BOKEHSITE_MAX_CONNECTIONS_PER_PROCESS``: counted in this process's memory, with no query.
- ``BOKEHSITE_MAX_CONNECTIONS_PER_USER``: counted for a *holder*, across every process. In
  multi-user mode the holder is the account (an API token's or a session's user, or the viewer a
  plot frame was signed for); for everyone else (public pages, embeds, single-user mode) it is the
  client's address, decided as the login throttle decides it (DRF's ``get_ident``, honouring
  ``BOKEHSITE_TRUSTED_PROXIES``).

The per-holder count lives in the database every process already shares (several Daphnes need
one database, but the channel layer and the cache may be per process): each connection takes a
numbered place (``ConnectionPlace``) below the limit, and the unique (holder, number) pair keeps
two connections, in any processes, from taking the same place at once. Places belong to a process
whose lease (``ServerProcess.expires``) it renews every ``BOKEHSITE_GROUP_RENEW`` seconds for
``BOKEHSITE_GROUP_EXPIRY``, as connections renew their channel-layer groups. The places of a
process that died without giving them back count no more once its lease lapses: the holder's next
connection takes them back, and any process's renewal removes them for good.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import math
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone
from rest_framework import status
from rest_framework.throttling import BaseThrottle

from accounts.users import multi_user
from bokehsite import errors, protocol
from bokehsite.process_task import ProcessTask
from documents import access
from documents.models import Kind
from streaming.models import ConnectionPlace, ServerProcess

logger = logging.getLogger(__name__)
db = database_sync_to_async


class TooManyConnections(errors.ApiError):
    """A new connection past a limit; ``limit`` says which: per_user, per_address, per_process."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS  # closes with protocol.Close.TOO_MANY_CONNECTIONS
    code = protocol.TOO_MANY_CONNECTIONS


@dataclass
class Held:
    """A connection this process counts: its holder, and its place once it has one."""

    holder: str | None = None
    number: int | None = None


PROCESS = uuid.uuid4()  # this process, in ServerProcess
_held: dict[str, Held] = {}  # by channel name
_unreleased: list[Held] = []  # places a database that did not answer kept: given back at the next renewal
_renewed = -math.inf  # time.monotonic() of the last renewal of this process's lease


async def acquire(scope: dict[str, Any], channel_name: str) -> None:
    """Count a new connection, or raise ``TooManyConnections`` (it is then not counted).
    Whatever it raises, ``release(channel_name)`` must follow when the connection ends."""
    per_process = settings.BOKEHSITE_MAX_CONNECTIONS_PER_PROCESS
    if per_process and len(_held) >= per_process:
        raise TooManyConnections(
            f"this server process already has {per_process} connections open, the most "
            "BOKEHSITE_MAX_CONNECTIONS_PER_PROCESS allows; try again later", limit="per_process", maximum=per_process)
    held = _held[channel_name] = Held()
    per_holder = settings.BOKEHSITE_MAX_CONNECTIONS_PER_USER
    if not per_holder:
        return
    # One call on the database thread: a release queued behind it sees the place it took.
    if not await db(_take_place)(scope, held, per_holder):
        del _held[channel_name]
        if held.holder.startswith("user:"):
            raise TooManyConnections(
                f"this account already has {per_holder} connections open, the most "
                "BOKEHSITE_MAX_CONNECTIONS_PER_USER allows; close some first", limit="per_user", maximum=per_holder)
        raise TooManyConnections(
            f"{per_holder} connections are already open from this address, the most "
            "BOKEHSITE_MAX_CONNECTIONS_PER_USER allows without an account; close some first",
            limit="per_address", maximum=per_holder)
    _renewing.ensure()


async def release(channel_name: str) -> None:
    """The connection ended: give back its place (at once in this process; in the database as soon
    as it answers). Releasing twice, or what was never counted, does nothing."""
    held = _held.pop(channel_name, None)
    if held is not None and held.holder is not None:
        try:
            await db(_give_back)(held)
        except DatabaseError as error:
            logger.warning("a connection's place could not be given back (%s); it is tried again", error)
            _unreleased.append(held)
    if not _unreleased and not _held:
        _renewing.cancel()  # no places to keep: the lease may lapse, the next connection renews it


def open_connections() -> int:
    """How many connections this process counts."""
    return len(_held)


# --- who holds a connection ------------------------------------------------------------------------


def holder(scope: dict[str, Any]) -> str:
    """``user:<id>`` for an account in multi-user mode, else ``address:<client address>``."""
    if multi_user():
        user = scope["user"]
        if user.is_authenticated:
            return f"user:{user.pk}"
        try:
            grant = access.socket_caller(scope, user).grant
        except errors.ApiError:
            grant = None
        if grant is not None and grant.user_id is not None:
            return f"user:{grant.user_id}"
    return f"address:{client_address(scope)}"


def kind(scope: dict[str, Any], document: Any, *, from_app_host: bool) -> str:
    """What a connection is, for the metrics: ``app_session`` (to an app session's document: its
    app host's, or a page showing it), ``embed`` (another site's page, by an embed's frame token),
    ``script`` (a Python session: no ``Origin``), else ``viewer`` (a page of this site, its frame)."""
    if from_app_host or document.kind == Kind.SESSION:
        return "app_session"
    try:
        grant = access.socket_caller(scope, scope["user"]).grant
    except errors.ApiError:
        grant = None
    if grant is not None and grant.embed is not None:
        return "embed"
    if grant is None and b"origin" not in dict(scope.get("headers", [])):
        return "script"
    return "viewer"


def client_address(scope: dict[str, Any]) -> str:
    """The client's address as the login throttle (``accounts.throttling``) sees it over HTTP."""
    request = ASGIRequest({**scope, "method": "GET"}, io.BytesIO())
    address = BaseThrottle().get_ident(request) or "unknown"
    # What a proxy passes on is text: a long one is kept as its digest, to fit the column.
    return address if len(address) <= 64 else hashlib.sha256(address.encode()).hexdigest()


# --- the database side (on the database thread) -----------------------------------------------


def _take_place(scope: dict[str, Any], held: Held, limit: int) -> bool:
    held.holder = holder(scope)
    if time.monotonic() - _renewed > settings.BOKEHSITE_GROUP_RENEW:
        _renew()  # first, so that other processes count the place as alive
    taken = dict(ConnectionPlace.objects.filter(holder=held.holder).values_list("number", "process"))
    alive = {PROCESS, *ServerProcess.objects.filter(id__in=set(taken.values()) - {PROCESS}, expires__gt=timezone.now())
             .values_list("id", flat=True)}
    lapsed = {number: process for number, process in taken.items() if process not in alive}
    if len(taken) - len(lapsed) >= limit:
        return False
    if lapsed:  # places of processes that died: free again
        ConnectionPlace.objects.filter(holder=held.holder, number__in=lapsed, process__in=set(lapsed.values())).delete()
    for number in range(limit):
        if number in taken and number not in lapsed:
            continue
        try:
            with transaction.atomic():
                ConnectionPlace.objects.create(holder=held.holder, number=number, process=PROCESS)
        except IntegrityError:
            continue  # another connection took it meanwhile
        held.number = number
        return True
    return False  # others took the last places meanwhile


def _give_back(held: Held) -> None:
    if held.number is not None:
        ConnectionPlace.objects.filter(holder=held.holder, number=held.number, process=PROCESS).delete()


def _renew() -> None:
    """Extend this process's lease; give back what could not be; remove the places of dead processes."""
    global _renewed
    now = timezone.now()
    expires = now + timedelta(seconds=settings.BOKEHSITE_GROUP_EXPIRY)
    if not ServerProcess.objects.filter(id=PROCESS).update(expires=expires):
        # New, or its lease lapsed (the process stalled) and others took its places back: take
        # again those still free; a connection whose place is gone goes uncounted until it ends.
        ServerProcess.objects.bulk_create([ServerProcess(id=PROCESS, expires=expires)], ignore_conflicts=True)
        ConnectionPlace.objects.bulk_create(
            [ConnectionPlace(holder=h.holder, number=h.number, process=PROCESS) for h in list(_held.values())
             if h.number is not None], ignore_conflicts=True)
    _renewed = time.monotonic()
    while _unreleased:
        _give_back(_unreleased[0])
        _unreleased.pop(0)
    if dead := list(ServerProcess.objects.filter(expires__lte=now).values_list("id", flat=True)[:100]):
        ConnectionPlace.objects.filter(process__in=dead).delete()
        ServerProcess.objects.filter(id__in=dead, expires__lte=now).delete()


async def _renew_periodically() -> None:
    while True:
        await asyncio.sleep(settings.BOKEHSITE_GROUP_RENEW)
        try:
            await db(_renew)()
        except Exception:  # the database is away, say: the lease lasts BOKEHSITE_GROUP_EXPIRY meanwhile
            logger.warning("renewing this process's connection places failed; it tries again", exc_info=True)


_renewing = ProcessTask(_renew_periodically)
