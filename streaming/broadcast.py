"""The one module that knows the channel layer: group names, what goes through it, and when.

What ``documents`` commits reaches every connection of the document from here: the domain
sends ``documents.signals.changes_committed`` once a transaction commits, and ``changes_committed``
below relays it to the document's group as one message, whose frame (``bokehsite.protocol``'s
``patches``) is built once for every viewer. A replace carries no frame: each connection sends
its client a snapshot instead.

Changes of access (``accounts.signals.access_changed``) go the same way to the connections of each
document whose sharing changed and of each user whose identity changed (``user_group_name``).

Each connection's groups are kept by its ``Membership``: joined, renewed before they lapse, left,
and checked with a tick through the layer that the layer still delivers to it.

Where an event loop awaits the database work that committed (``streaming.batching``, inside
``sent_on_exit``), the messages are sent from that loop once the work returns, in commit order,
so that the database thread never waits for the channel layer; elsewhere (a REST request) the
message is sent before the committing thread goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from asgiref.sync import async_to_sync
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer, get_channel_layer
from django.conf import settings

from bokehsite import protocol
from documents.changes import Change

logger = logging.getLogger(__name__)

CHANGED = "document.changed"
ACCESS_CHANGED = "access.changed"
ENDED = "document.ended"
APPENDED = "dataset.appended"
REMOVED = "dataset.removed"
TICK = "connection.tick"


def _layer_errors() -> tuple[type[BaseException], ...]:
    try:
        from redis.exceptions import RedisError
    except ImportError:
        return (OSError,)
    return (OSError, RedisError)


# What the channel layer raises when it cannot be reached (Redis restarting, say).
LAYER_ERRORS = _layer_errors()


def group_name(document_id: uuid.UUID | str) -> str:
    return f"document.{uuid.UUID(str(document_id)).hex}"


def user_group_name(user_id: int) -> str:
    """The group of every connection that acts as the user ``user_id``."""
    return f"user.{int(user_id)}"


def dataset_group_name(dataset_id: uuid.UUID | str) -> str:
    """The group of every connection showing a view of the dataset."""
    return f"dataset.{uuid.UUID(str(dataset_id)).hex}"


def message(changes: list[Change], committed: float | None = None) -> dict[str, Any]:
    """The channel layer message for consecutive committed changes (``committed``: when, by
    ``time.time()``, for the metrics' broadcast lag)."""
    frame = None
    if all(change.patch is not None for change in changes):
        frame = protocol.Patches.frame(changes[0].version - 1, changes[-1].version,
                                       ((protocol.item(c.version, c.patch, c.key), c.buffers) for c in changes))
    return {"type": CHANGED, "start": changes[0].version - 1, "version": changes[-1].version,
            "origins": [change.origin for change in changes], "frame": frame, "committed": committed}


async def send_changes(changes: list[Change], committed: float | None = None) -> None:
    """Tell every connection to the document about consecutive committed changes."""
    if changes:
        await get_channel_layer().group_send(group_name(changes[0].document_id), message(changes, committed))


def changes_committed(sender: Any, changes: list[Change], **kwargs: Any) -> None:
    """Receiver of ``documents.signals.changes_committed``: runs in the thread that committed. A
    failed send is logged: the changes are stored all the same, and viewers find the gap at the
    next change and read the log."""
    committed = time.time()
    collected = _collected.get()
    if collected is not None:
        collected.append((changes, committed))
        return
    try:
        async_to_sync(send_changes)(changes, committed)
    except Exception as error:
        _log_failure("broadcasting stored changes", error)


# Where this context sends what commits later: the commits so far (see ``sent_on_exit``).
_collected: ContextVar[list[tuple[list[Change], float]] | None] = ContextVar("broadcast_collected", default=None)


@contextlib.asynccontextmanager
async def sent_on_exit() -> AsyncIterator[None]:
    """What commits within this block (and in the database work it awaits, which runs in a copy
    of this context) is sent from this event loop when the block ends, in commit order."""
    collected: list[tuple[list[Change], float]] = []
    token = _collected.set(collected)
    try:
        yield
    finally:
        _collected.reset(token)
        for changes, committed in collected:
            try:
                await send_changes(changes, committed)
            except Exception as error:
                _log_failure("broadcasting stored changes", error)


async def send_access_changed(documents: list[str], users: list[int], sessions: list[str]) -> None:
    """Ask every connection of these documents and users to check its access again."""
    layer = get_channel_layer()
    message = {"type": ACCESS_CHANGED, "sessions": sessions}
    for group in [*map(group_name, documents), *map(user_group_name, users)]:
        await layer.group_send(group, message)


def access_changed(sender: Any, documents: list[str], users: list[int], sessions: list[str], **kwargs: Any) -> None:
    """Receiver of ``accounts.signals.access_changed``, in the thread that committed. A failed send
    is logged; the connections' periodic check (``BOKEHSITE_ACCESS_RECHECK``) still catches it."""
    try:
        async_to_sync(send_access_changed)(documents, users, sessions)
    except Exception as error:
        _log_failure("announcing a change of access", error)


def document_ended(document_id: uuid.UUID | str, reason: str) -> None:
    """Close every connection of a document that is about to be deleted on purpose (an app
    session that ended), telling each client ``reason``; sent before the deletion, whose own
    announcement would only say that the document is gone."""
    try:
        async_to_sync(get_channel_layer().group_send)(group_name(document_id), {"type": ENDED, "reason": reason})
    except Exception as error:
        _log_failure("announcing why a document ended", error)


def rows_appended(sender: Any, dataset: Any, old_length: int, new_length: int, **kwargs: Any) -> None:
    """Receiver of ``datasets.signals.rows_appended``, once committed: the connections with views
    of the dataset look whether theirs reach the new rows."""
    message = {"type": APPENDED, "dataset": str(dataset.pk), "old_length": old_length, "new_length": new_length}
    try:
        async_to_sync(get_channel_layer().group_send)(dataset_group_name(dataset.pk), message)
    except Exception as error:
        _log_failure("announcing rows appended to a dataset", error)


def dataset_removed(sender: Any, dataset_id: Any, **kwargs: Any) -> None:
    """Receiver of ``datasets.signals.dataset_removed``, once committed: views of it stop."""
    try:
        async_to_sync(get_channel_layer().group_send)(dataset_group_name(dataset_id),
                                                      {"type": REMOVED, "dataset": str(dataset_id)})
    except Exception as error:
        _log_failure("announcing a dataset's deletion", error)


def _log_failure(what: str, error: Exception) -> None:
    """A layer that is down is said in one line (what was stored stays stored; connections catch
    up from the log); anything else with its traceback."""
    if isinstance(error, LAYER_ERRORS):
        logger.warning("%s failed: the channel layer is unreachable (%s)", what, error)
    else:
        logger.error("%s failed", what, exc_info=error)


class Membership:
    """One connection's groups in the channel layer, kept while it lives.

    Membership of a group lapses after BOKEHSITE_GROUP_EXPIRY seconds, so that the channels of a
    process that died leave it; a live connection renews its own every BOKEHSITE_GROUP_RENEW
    seconds, which also restores them soon after a Redis that keeps nothing restarts. Each time
    it also sends itself a tick (``TICK``) through the layer. A tick that has not come back by
    the next one but one means the layer no longer delivers to this connection (it happens after
    a Redis restart): ``lost`` is called, to close it so that its client reconnects and resumes
    from the log.
    """

    def __init__(self, layer: BaseChannelLayer, channel: str, *, lost: Callable[[], Awaitable[None]]):
        self.layer, self.channel, self.lost = layer, channel, lost
        self.groups: list[str] = []
        self.tick_sent = self.tick_heard = False
        self.renewing: asyncio.Task[None] | None = None

    async def join(self, *groups: str) -> None:
        """Join the groups not joined yet; they are renewed from now on."""
        for group in groups:
            if group not in self.groups:
                self.groups.append(group)
                await self.layer.group_add(group, self.channel)

    def start(self) -> None:
        """Renew the groups and send ticks from now on, until ``stop``."""
        self.renewing = asyncio.create_task(self._renew())

    def heard_tick(self) -> None:
        """The connection received its tick: the layer delivers to it."""
        self.tick_heard = True

    def stop(self) -> None:
        if self.renewing is not None:
            self.renewing.cancel()

    async def leave(self) -> None:
        """Stop renewing, and leave every group."""
        self.stop()
        with contextlib.suppress(*LAYER_ERRORS):  # a layer that is down forgets them anyway
            for group in self.groups:
                await self.layer.group_discard(group, self.channel)

    async def _renew(self) -> None:
        unanswered = 0
        await asyncio.sleep(settings.BOKEHSITE_GROUP_RENEW * random.random())  # connections opened together spread out
        while True:
            await asyncio.sleep(settings.BOKEHSITE_GROUP_RENEW)
            if self.tick_sent and not self.tick_heard:
                unanswered += 1
                if unanswered >= 2:
                    logger.warning("the channel layer stopped delivering to a connection; closing it so that it reconnects")
                    await self.lost()
                    return
            else:
                unanswered = 0
            try:
                for group in self.groups:
                    await self.layer.group_add(group, self.channel)
                self.tick_sent, self.tick_heard = True, False
                await self.layer.send(self.channel, {"type": TICK})
            except ChannelFull:
                self.tick_heard = True  # messages are queued for it: it is hearing from the layer
            except LAYER_ERRORS as error:
                logger.warning("renewing a connection's groups failed (%s); it tries again", error)


async def round_trip() -> None:
    """Publish a message to a group of one fresh channel and receive it back, as every change
    goes to a document's viewers (``/healthz``): a layer that accepts messages but delivers
    nothing fails this."""
    layer = get_channel_layer()
    channel = await layer.new_channel("healthz.")
    group = f"healthz.{channel.rsplit('!', 1)[-1].replace('.', '')}"
    sent = {"type": "healthz.ping", "nonce": secrets.token_hex(8)}
    await layer.group_add(group, channel)
    try:
        await layer.group_send(group, sent)
        if await layer.receive(channel) != sent:
            raise RuntimeError("the channel layer delivered another message")
    finally:
        await layer.group_discard(group, channel)
