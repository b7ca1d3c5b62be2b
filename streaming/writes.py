"""One connection's changes: queued for storage in the order it sent them, each answered once stored.

A change is queued (``streaming.batching``) as soon as it arrives, so that the connection's
changes are stored in order, and answered (``ack``, or an error) once stored, while the next
messages are read. A change the database cannot store for now stalls the connection: none of its
later changes will be stored until it reconnects and sends them again in order, so it is told
once, and closed (4503).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from bokeh.core.serialization import Buffer

from bokehsite import errors, protocol
from bokehsite.errors import ApiError
from documents.changes import Change, PatchRequest
from documents.models import Document
from streaming import batching

Send = Callable[[protocol.Message], Awaitable[None]]
Fail = Callable[[BaseException, Any], Awaitable[None]]
Stall = Callable[[ApiError, Any], Awaitable[None]]


class ConnectionWrites:
    def __init__(self, document: Document, origin: str, *, send: Send, fail: Fail, stall: Stall):
        self.document, self.origin = document, origin
        self.send, self.fail, self.stall = send, fail, stall  # answer, refuse one, refuse them all
        self.answering: set[asyncio.Task[None]] = set()
        self.stalled = False

    def submit(self, request_id: Any, request: PatchRequest) -> None:
        """Queue a change (``request.origin`` is this connection); it is answered once stored."""
        task = asyncio.create_task(self._answer(request_id, batching.submit(self.document, request)))
        self.answering.add(task)
        task.add_done_callback(self.answering.discard)

    async def _answer(self, request_id: Any, stored: asyncio.Future[Change]) -> None:
        try:
            change = await stored
            await self.send(protocol.Ack(request_id, change.version))
        except Exception as e:
            if not isinstance(error := errors.from_exception(e), errors.Unavailable):
                await self.fail(e, request_id)
            elif not self.stalled:
                self.stalled = True
                await self.stall(error, request_id)

    def stop(self) -> None:
        """The connection is over: its queued changes are still stored, and nobody is told."""
        batching.forget(self.origin)
        for task in self.answering:
            task.cancel()


def patch_request(message: protocol.Patch, buffers: list[Buffer], *, user: Any, origin: str) -> PatchRequest:
    """The change a ``patch`` message asks for, by ``user`` (anonymous: no author)."""
    return PatchRequest(message.patch, buffers, author=user if user.is_authenticated else None, origin=origin,
                        key=message.key or "", base_version=message.base_version)
