"""Views of sources backed by a dataset: what one connection asked to see, sent to it alone.

A viewer's page sends ``view`` (a source, its plot's visible ranges and size in pixels) as the
user pans and zooms. The view is computed off the event loop (``datasets.viewing``) and answered
with ``view_data`` to that connection only: views are never stored and never broadcast, and
read-only viewers may ask for them too. A request for a source replaces any earlier one for it
that is not being computed yet; an answer to a request that was replaced meanwhile is dropped.
Rows appended to a dataset refresh the views of it whose x range reaches them.

What each source is backed by (its mark in the document, and the dataset's row, which says the
document's owner may use it) is looked up once and kept while nothing changes it, so that panning
costs no database work: it is looked up again after any change to the document, rows appended
to the dataset or its deletion (all announced through the channel layer), and at every access
check of the connection, the periodic one included.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from bokeh.core.serialization import Buffer
from channels.db import database_sync_to_async

from bokehsite import metrics, protocol
from bokehsite.errors import ApiError
from datasets.aggregation import warm_up
from datasets.rasters import warm_up as warm_up_images
from datasets.viewing import Backing, backing, check, compute, first_new_x, first_new_y

# Views are computed here, two at once, off every event loop.
_views = ThreadPoolExecutor(max_workers=2, thread_name_prefix="views")
_warming: Future | None = None  # the views' kernels, readied when the first connection opens

Send = Callable[[protocol.Message, list[Buffer]], Awaitable[None]]
Fail = Callable[[BaseException, Any], Awaitable[None]]


class ConnectionViews:
    """One connection's view requests: the newest per source, computed one at a time."""

    def __init__(self, document, send: Send, fail: Fail):
        global _warming
        if _warming is None:
            _warming = _views.submit(warm_up)
            _views.submit(warm_up_images)
        self.document = document
        self.send, self.fail = send, fail
        # The newest request of each source, not started, and when it was asked (time.monotonic()).
        self.wanted: dict[str, tuple[protocol.View, Backing, float]] = {}
        self.running: dict[str, asyncio.Task] = {}
        self.shown: dict[str, tuple[protocol.View, str]] = {}  # the last view sent, and its dataset
        self.backings: dict[str, Backing] = {}  # what each source is backed by, while nothing changed
        self.generation = 0  # counts forget(): a lookup that began before one is not kept

    async def request(self, request: protocol.View) -> str:
        """Take a request (answered later, by ``send``); the id of the dataset it is about."""
        found = await self._backing(request.source)
        check(request, found.kind)
        self._want(request.source, request, found)
        return str(found.dataset.pk)

    def forget(self, dataset_id: str | None = None) -> None:
        """The document changed (or, given its id, a dataset did): look its sources up again."""
        self.generation += 1
        if dataset_id is None:
            self.backings.clear()
        else:
            self.backings = {s: b for s, b in self.backings.items() if str(b.dataset.pk) != dataset_id}

    async def _backing(self, source: str) -> Backing:
        found = self.backings.get(source)
        if found is None:
            generation = self.generation
            found = await database_sync_to_async(backing)(self.document, source)
            if generation == self.generation:
                self.backings[source] = found
        return found

    async def _why(self, source: str, found: Backing, error: Exception) -> Exception:
        """What to answer for a view that failed: the dataset may have gone (its files with it)
        before its deletion was announced here, and that is said as such."""
        self.forget(str(found.dataset.pk))
        try:
            await self._backing(source)
        except ApiError as gone:
            return gone
        except Exception:  # the database, say: the view's own failure is the answer
            pass
        return error

    async def rows_appended(self, dataset_id: str, old_length: int) -> None:
        """Rows were appended to a dataset: views of it whose x range (an image's: y, they go on top)
        reaches them are computed again."""
        self.forget(dataset_id)  # its length and extent changed
        for source, (request, shown_dataset) in list(self.shown.items()):
            if shown_dataset != dataset_id or source in self.wanted:
                continue
            try:
                found = await self._backing(source)
            except ApiError:
                continue  # the source or its dataset went: nothing to refresh
            if found.kind == "image":
                if first_new_y(found, old_length) > request.y1:
                    continue
                self._want(source, request, found)
                continue
            start = await asyncio.get_running_loop().run_in_executor(_views, first_new_x, found, old_length)
            if start is not None and start > request.x1:
                continue
            self._want(source, request, found)

    def _want(self, source: str, request: protocol.View, found: Backing) -> None:
        self.wanted[source] = (request, found, time.monotonic())
        if source not in self.running:
            task = self.running[source] = asyncio.create_task(self._serve(source))
            task.add_done_callback(lambda _: self.running.pop(source, None))

    def stop(self) -> None:
        for task in list(self.running.values()):
            task.cancel()  # a view being computed finishes in its thread; nobody is told

    async def _serve(self, source: str) -> None:
        loop = asyncio.get_running_loop()
        while (wanted := self.wanted.pop(source, None)) is not None:
            request, found, asked = wanted
            try:
                message, buffers = await loop.run_in_executor(_views, compute, found, request)
            except Exception as error:
                await self.fail(await self._why(source, found, error), request.id)
                continue
            if source in self.wanted:
                continue  # replaced while it was computed: the newer one is sent instead
            await self.send(message, buffers)
            metrics.view_served(asked)
            self.shown[source] = (request, str(found.dataset.pk))
