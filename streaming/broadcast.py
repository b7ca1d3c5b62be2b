"""The one module that knows the channel layer: group names, what goes through it, and when.

What ``documents`` commits reaches every connection of the document from here: the domain
sends ``documents.signals.changes_committed`` once a transaction commits, and ``changes_committed``
below relays it to the document's group as one message, whose frame (``bokehsite.protocol``'s
``patches``) is built once for every viewer. A replace carries no frame: each connection sends
its client a snapshot instead.

Either way the message is sent before the thread that committed goes on (to fold the log, say).
Where an event loop waits on that thread (``streaming.batching`` says which with
``sending_from``), that loop sends it, at once; elsewhere ``async_to_sync`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from bokehsite import protocol
from documents.changes import Change

logger = logging.getLogger(__name__)

CHANGED = "document.changed"
# Longest a commit waits for its broadcast to leave (a channel layer that does not answer).
SEND_TIMEOUT = 5.0
# The event loop that sends what commits in this context (see ``sending_from``).
_sender_loop: ContextVar[asyncio.AbstractEventLoop | None] = ContextVar("broadcast_loop", default=None)


def group_name(document_id: uuid.UUID | str) -> str:
    return f"document.{uuid.UUID(str(document_id)).hex}"


def message(changes: list[Change]) -> dict[str, Any]:
    """The channel layer message for consecutive committed changes."""
    frame = None
    if all(change.patch is not None for change in changes):
        items = [protocol.item(change.version, change.patch, change.key) for change in changes]
        buffers = [buffer for change in changes for buffer in change.buffers]
        frame = protocol.Patches(changes[0].version - 1, changes[-1].version, items).encode(buffers)
    return {"type": CHANGED, "start": changes[0].version - 1, "version": changes[-1].version,
            "origins": [change.origin for change in changes], "frame": frame}


async def send_changes(changes: list[Change]) -> None:
    """Tell every connection to the document about consecutive committed changes."""
    if changes:
        await get_channel_layer().group_send(group_name(changes[0].document_id), message(changes))


def changes_committed(sender: Any, changes: list[Change], **kwargs: Any) -> None:
    """Receiver of ``documents.signals.changes_committed``: runs in the thread that committed, and
    returns once the message is sent (or has failed: the changes are stored all the same, and
    viewers find the gap at the next change and read the log)."""
    loop = _sender_loop.get()
    try:
        if loop is not None and loop.is_running():  # it waits on this thread, so it sends at once
            asyncio.run_coroutine_threadsafe(send_changes(changes), loop).result(SEND_TIMEOUT)
        else:
            async_to_sync(send_changes)(changes)
    except Exception:
        logger.exception("broadcasting stored changes failed")


@contextlib.contextmanager
def sending_from(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """Within this block (and the database work it awaits), ``loop`` sends what commits."""
    token = _sender_loop.set(loop)
    try:
        yield
    finally:
        _sender_loop.reset(token)
