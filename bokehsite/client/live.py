"""Keeps a pushed document live: every change Bokeh reports goes to the server, in order.

Changes are serialized the moment Bokeh reports them (in the thread that made them), queued,
and sent by a background thread over the document's websocket. Whatever queues up while a
send is under way leaves as one batch, so a fast loop costs few messages. ``flush()`` waits
until the server has acknowledged everything queued so far.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any

import websockets
from bokeh.core.serialization import Buffer, Serializer
from bokeh.document import Document
from bokeh.document.events import ColumnDataChangedEvent, DocumentPatchedEvent, ModelChangedEvent
from bokeh.model import Model
from bokeh.models import ColumnDataSource

from bokehsite.client import wire
from bokehsite.client.exceptions import BokehsiteError, ServerError, ServerUnreachable

if TYPE_CHECKING:
    from bokehsite.client.session import Session

# Batches sent but not yet acknowledged; more would only queue up in the network.
MAX_IN_FLIGHT = 4


# Links still open when the interpreter exits send what they have queued first (also on Ctrl-C).
_open_links: weakref.WeakSet[LiveLink] = weakref.WeakSet()


@atexit.register
def _close_open_links() -> None:
    for link in list(_open_links):
        try:
            link.close(timeout=10)
        except BokehsiteError as e:
            print(f"bokehsite: changes not sent before exit: {e}", file=sys.stderr)


def websocket_url(root_url: str, document_id: str) -> str:
    scheme, rest = root_url.split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}ws/documents/{document_id}/"


class LiveLink:
    """Sends the changes of ``doc`` (stored as ``document_id``) to the server."""

    def __init__(self, session: Session, doc: Document, document_id: str, version: int):
        self.session = session
        self.doc = doc
        self.document_id = document_id
        self.url = websocket_url(session.root_url, document_id)
        self.version = version  # the last version the server acknowledged
        self._cond = threading.Condition()
        self._pending: list[tuple[dict[str, Any], list[Buffer]]] = []
        self._in_flight = 0
        self._error: BaseException | None = None
        self._closing = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        doc.models.flush_synced()  # the server has every model now; later events refer to them by id
        doc.on_change(self._on_change)
        _open_links.add(self)

    # --- what the user's thread calls ----------------------------------------------------------

    def store_objects(self, *objs: Model) -> None:
        """Queue the whole current state of ``objs``, for in-place edits Bokeh cannot see."""
        for obj in objs:
            if obj.document is not self.doc:
                raise ValueError(f"{obj} is not in the pushed document")
            if isinstance(obj, ColumnDataSource):
                self._queue(ColumnDataChangedEvent(self.doc, obj, "data"))
            else:
                for attr, value in obj.properties_with_values(include_defaults=False).items():
                    self._queue(ModelChangedEvent(self.doc, obj, attr, value))

    def flush(self, timeout: float = 60.0) -> int:
        """Wait until the server has acknowledged every queued change; returns the version."""
        with self._cond:
            self._start()
            done = self._cond.wait_for(lambda: self._error or (not self._pending and not self._in_flight), timeout)
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if not done:
                raise BokehsiteError(f"the server did not acknowledge changes within {timeout} s")
            return self.version

    def close(self, timeout: float = 30.0) -> None:
        """Send what is queued, then disconnect."""
        _open_links.discard(self)
        self.doc.remove_on_change(self._on_change)
        try:
            if self._pending or self._in_flight:
                self.flush(timeout)
        finally:
            with self._cond:
                self._closing = True
            self._wake_sender()
            if self._thread is not None:
                self._thread.join(timeout)

    def _on_change(self, event: Any) -> None:
        if isinstance(event, DocumentPatchedEvent) and event.setter is not self:
            self._queue(event)

    def _queue(self, event: DocumentPatchedEvent) -> None:
        serializer = Serializer(references=self.doc.models.synced_references)
        encoded = serializer.encode(event)
        buffers = serializer.buffers
        self.doc.models.flush_synced(lambda model: not serializer.has_ref(model))
        with self._cond:
            self._pending.append((wire.binary_event(encoded, buffers), buffers))
            self._start()
        self._wake_sender()

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():  # first change, or after a failure
            self._thread = threading.Thread(target=asyncio.run, args=(self._run(),), name="bokehsite-live", daemon=True)
            self._thread.start()

    def _wake_sender(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the sender has finished; _start() begins a new one
                pass

    # --- the background thread -----------------------------------------------------------------

    async def _run(self) -> None:
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._wake.set()  # changes may have queued before the loop existed
        try:
            async with websockets.connect(
                self.url, additional_headers=self.session.auth_headers(), max_size=None, open_timeout=30
            ) as ws:
                hello = json.loads(await ws.recv())
                if hello.get("type") == "error":
                    raise ServerError(self.url, 0, hello["code"], hello["detail"], hello.get("field"))
                reader = asyncio.create_task(self._read(ws))
                try:
                    await self._send_batches(ws)
                finally:
                    reader.cancel()
        except (OSError, websockets.exceptions.WebSocketException) as e:
            self._fail(ServerUnreachable(self.session.root_url, f"websocket {self.url}: {e}"))
        except BaseException as e:
            self._fail(e)

    async def _send_batches(self, ws: Any) -> None:
        next_id = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            while True:
                with self._cond:
                    if self._error is not None:
                        return
                    if self._closing and not self._pending and not self._in_flight:
                        return
                    if not self._pending or self._in_flight >= MAX_IN_FLIGHT:
                        break
                    batch, self._pending = self._pending, []
                    self._in_flight += 1
                next_id += 1
                events = [event for event, _ in batch]
                buffers = [buffer for _, buffers in batch for buffer in buffers]
                await ws.send(wire.pack({"type": "patch", "id": next_id, "patch": {"events": events}}, buffers))

    async def _read(self, ws: Any) -> None:
        try:
            async for raw in ws:
                if isinstance(raw, bytes):
                    continue  # patches from others: this link only sends
                message = json.loads(raw)
                with self._cond:
                    if message.get("type") == "ack":
                        self._in_flight -= 1
                        self.version = max(self.version, message["version"])
                    elif message.get("type") == "error":
                        self._in_flight -= 1 if message.get("id") is not None else 0
                        self._error = ServerError(self.url, 0, message["code"], message["detail"], message.get("field"))
                    self._cond.notify_all()
                self._wake.set()
        except websockets.exceptions.ConnectionClosed as e:
            if not self._closing:
                self._fail(ServerUnreachable(self.session.root_url, f"websocket {self.url} closed: {e}"))
            self._wake.set()

    def _fail(self, error: BaseException) -> None:
        with self._cond:
            self._error = error
            self._in_flight = 0  # their fate is unknown; what is still pending goes on the next connection
            self._cond.notify_all()
