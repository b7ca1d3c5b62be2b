"""Group commit: the changes sent to a document over websockets, stored a batch at a time.

All database work of a Daphne process runs on one thread, and a change costs a transaction
whose commit waits for the disk. So the changes that arrive for a document while a batch is
being stored wait together and are stored by the next batch, in one transaction, in the order
they arrived; then they are broadcast from the event loop, as one message. Under load a batch
holds every change in flight; an isolated change is stored at once, alone.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from channels.db import database_sync_to_async

from documents import services
from documents.live import Change, PatchRequest
from documents.models import Document
from streaming import broadcast

logger = logging.getLogger(__name__)

# A batch larger than this would hold back the viewers' first frames for little gain.
MAX_BATCH = 64


class DocumentWriter:
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
                await self._store([request for request, _ in batch], [future for _, future in batch])
        finally:
            self.task = None
            key = (asyncio.get_running_loop(), self.document.id)
            if _writers.get(key) is self and not self.pending:
                del _writers[key]

    async def _store(self, requests: list[PatchRequest], futures: list[asyncio.Future[Change]]) -> None:
        try:
            outcomes = await database_sync_to_async(services.apply_patches)(self.document, requests)
        except Exception as error:
            outcomes = [error] * len(requests)
        # Changes that a resent key matched were broadcast when first stored.
        stored = [o for o in outcomes if isinstance(o, Change) and o.patch is not None]
        try:
            await broadcast.send_changes(stored)
        except Exception:  # they are stored: viewers find the gap at the next change and read the log
            logger.exception("broadcasting stored changes failed")
        for future, outcome in zip(futures, outcomes):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        if stored:
            try:
                await database_sync_to_async(services.fold_if_due)(self.document)
            except Exception:
                logger.exception("folding the log into a snapshot failed; the log is kept")


# One writer per event loop and document, while it has work.
_writers: dict[tuple[asyncio.AbstractEventLoop, uuid.UUID], DocumentWriter] = {}


def submit(document: Document, request: PatchRequest) -> asyncio.Future[Change]:
    """Queue a change to ``document`` for the next batch (see ``DocumentWriter.submit``)."""
    key = (asyncio.get_running_loop(), document.id)
    writer = _writers.get(key)
    if writer is None:
        writer = _writers[key] = DocumentWriter(document)
    return writer.submit(request)
