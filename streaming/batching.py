"""Group commit: a queue in front of ``documents.services.apply_changes`` for websocket changes.

All database work of a Daphne process runs on one thread, and a change costs a transaction
whose commit waits for the disk. So the changes that arrive for a document while a batch is
being stored wait together and are stored by the next batch, in one transaction, in the order
they arrived. The action broadcasts them as one message once committed, sent from this event
loop as soon as the batch returns; then the answers go out; then, when it is due, the log is
folded. Under load a batch holds every change in flight; an isolated change is stored at once,
alone.

A connection's changes are stored in the order it sent them, also when the database fails: once
one of its changes could not be stored for now (``unavailable``), its later ones are refused the
same way until it reconnects and sends them again, in order.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from channels.db import database_sync_to_async

from bokehsite import errors
from documents import services
from documents.changes import Change, PatchRequest
from documents.models import Document
from streaming import broadcast

logger = logging.getLogger(__name__)

# A batch larger than this would hold back the viewers' first frames for little gain.
MAX_BATCH = 64


class DocumentQueue:
    """The changes sent to one document over this event loop's websockets, waiting to be stored."""

    def __init__(self, document: Document):
        self.document = document
        self.pending: list[tuple[PatchRequest, asyncio.Future[Change]]] = []
        self.task: asyncio.Task[None] | None = None

    def submit(self, request: PatchRequest) -> asyncio.Future[Change]:
        """Queue a change; the future gives its ``Change`` or raises the error that refused it."""
        future = asyncio.get_running_loop().create_future()
        self.pending.append((request, future))
        if self.task is None:
            self.task = asyncio.create_task(self._run())
        return future

    async def _run(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
                requests = [request for request, _ in batch]
                try:
                    async with broadcast.sent_on_exit():
                        outcomes = await database_sync_to_async(services.apply_changes)(
                            self.document, requests, fold=False)
                except Exception as error:  # the batch as a whole failed (the document is gone, say)
                    outcomes = [error] * len(batch)
                    if isinstance(errors.from_exception(error), errors.Unavailable):
                        self._stall({request.origin for request in requests if request.origin}, error)
                for (_, future), outcome in zip(batch, outcomes):
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
                # Folding writes the whole document: only once the batch is out and answered.
                if services.fold_due(self.document):
                    try:
                        await database_sync_to_async(services.fold_if_due)(self.document)
                    except Exception:
                        logger.exception("folding the log into a snapshot failed; the log is kept")
        finally:
            self.task = None
            key = (asyncio.get_running_loop(), self.document.id)
            if _queues.get(key) is self and not self.pending:
                del _queues[key]

    def _stall(self, origins: set[str], error: Exception) -> None:
        """Refuse what these connections have queued behind the changes that failed, too."""
        _stalled.update(origins)
        waiting = []
        for request, future in self.pending:
            if request.origin in origins:
                future.set_exception(error)
            else:
                waiting.append((request, future))
        self.pending = waiting


# One queue per event loop and document, while it has work.
_queues: dict[tuple[asyncio.AbstractEventLoop, uuid.UUID], DocumentQueue] = {}
# Connections (origins) one of whose changes the database could not store: they must reconnect.
_stalled: set[str] = set()


def submit(document: Document, request: PatchRequest) -> asyncio.Future[Change]:
    """Queue a change to ``document`` for the next batch (see ``DocumentQueue.submit``)."""
    if request.origin in _stalled:
        future = asyncio.get_running_loop().create_future()
        future.set_exception(errors.Unavailable("an earlier change of this connection could not be stored; "
                                                "reconnect and send them again, in order"))
        return future
    key = (asyncio.get_running_loop(), document.id)
    queue = _queues.get(key)
    if queue is None:
        queue = _queues[key] = DocumentQueue(document)
    return queue.submit(request)


def forget(origin: str) -> None:
    """The connection ``origin`` is closed: a new one starts afresh."""
    _stalled.discard(origin)
