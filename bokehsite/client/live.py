"""Keeps a pushed document live, both ways.

Outgoing: every change Bokeh reports is serialized the moment it happens (in the thread that
made it), queued, and sent in order by a background thread over the document's websocket;
whatever queues up while a send is under way leaves as one batch. ``flush()`` waits until the
server has acknowledged everything queued so far.

Incoming: changes others make (a browser moving a slider, another script) arrive on the same
websocket and wait in a queue until the script applies them, with ``pull()``, in
``loop_until_closed()``, or in a background thread. Applying them runs Bokeh's own callbacks
(``on_change``, ``on_event``), and whatever those change is sent back like any other change.

After a dropped connection the link reconnects, resumes from the last version it received, and
resends the batches the server had not confirmed; each batch carries a key, so the server never
applies one twice.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import queue
import sys
import threading
import uuid
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any

import websockets
from bokeh.core.serialization import Buffer, Serialized, Serializer
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
RECONNECT_DELAYS = (0.2, 0.5, 1, 2, 5)

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


class _Batch:
    def __init__(self, key: str, events: list[dict[str, Any]], buffers: list[Buffer]):
        self.key = key
        self.events = events
        self.buffers = buffers
        self.remote_since = False  # someone else's change was applied while this one travelled

    def frame(self) -> bytes:
        return wire.pack({"type": "patch", "id": self.key, "key": self.key, "patch": {"events": self.events}}, self.buffers)


class LiveLink:
    """The live connection of ``doc``, stored as ``document_id`` at ``version``."""

    def __init__(self, session: Session, doc: Document, document_id: str, version: int):
        self.session = session
        self.doc = doc
        self.document_id = document_id
        self.url = websocket_url(session.root_url, document_id)
        self.version = version  # the version the local document is at
        self.acked = version  # the newest version the server acknowledged for our changes
        self.lock = threading.RLock()  # held while incoming changes are applied
        self._client = uuid.uuid4().hex[:12]
        self._seq = 0
        self._cond = threading.Condition()
        self._pending: list[tuple[dict[str, Any], list[Buffer]]] = []  # queued, not sent
        self._unconfirmed: deque[_Batch] = deque()  # sent, not yet seen back in the stream
        self._in_flight = 0  # sent, not yet acknowledged
        self._error: BaseException | None = None
        self._closing = False
        self._incoming: queue.Queue[tuple[dict[str, Any], list[Buffer]]] = queue.Queue()
        self._received = version  # the newest version received (applied or waiting)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._ws: Any = None
        self._background: threading.Thread | None = None
        # Only a script that applies incoming changes subscribes to them; a pure producer does not,
        # so nothing piles up for it.
        self._consuming = False
        doc.models.flush_synced()  # the server has every model now; later events refer to them by id
        doc.on_change(self._on_change)
        _open_links.add(self)

    # --- outgoing ------------------------------------------------------------------------------

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
        """Wait until the server has acknowledged every queued change; returns its version."""
        with self._cond:
            self._start()
            done = self._cond.wait_for(lambda: self._error or (not self._pending and not self._in_flight), timeout)
            self._raise_error()
            if not done:
                raise BokehsiteError(f"the server did not acknowledge changes within {timeout} s")
            return self.acked

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

    # --- incoming ------------------------------------------------------------------------------

    def pull(self, version: int, timeout: float = 30.0) -> int:
        """Apply incoming changes until the local document is at ``version``; returns it."""
        self._consume()
        while self.version < version:
            self._apply_next(timeout)
        return self.version

    def loop_until_closed(self) -> None:
        """Apply incoming changes as they come, running callbacks, until ``close()`` or Ctrl-C."""
        self._consume()
        while not self._closing:
            try:
                self._apply_next(timeout=0.5)
            except TimeoutError:
                continue

    def start_background(self) -> threading.Thread:
        """Apply incoming changes in a background thread (callbacks run there; hold ``lock``
        to change the document from another thread meanwhile)."""
        if self._background is None or not self._background.is_alive():
            self._background = threading.Thread(target=self.loop_until_closed, name="bokehsite-callbacks", daemon=True)
            self._background.start()
        return self._background

    def _consume(self) -> None:
        """Subscribe to incoming changes, from the version the local document is at."""
        if not self._consuming:
            self._consuming = True
            self._start()
            loop, ws = self._loop, self._ws
            if loop is not None and ws is not None:
                message = json.dumps({"type": "sync", "version": self._received})
                asyncio.run_coroutine_threadsafe(ws.send(message), loop)

    def _apply_next(self, timeout: float) -> None:
        try:
            header, buffers = self._incoming.get(timeout=timeout)
        except queue.Empty:
            with self._cond:
                self._raise_error()
            raise TimeoutError(f"no change from the server within {timeout} s") from None
        with self.lock:
            if header["type"] == "snapshot":
                self._replace_content(header, buffers)
            else:
                self._apply_items(header, buffers)

    def _apply_items(self, header: dict[str, Any], buffers: list[Buffer]) -> None:
        for item in header["items"]:
            if item["version"] <= self.version:
                continue
            mine = self._settle(item)
            if not mine:
                if any(event.get("kind") == "MessageSent" for event in item["patch"]["events"]):
                    self._subscribe_event_callbacks()
                self.doc.apply_json_patch(Serialized(item["patch"], buffers), setter=self)
                with self._cond:
                    for batch in self._unconfirmed:
                        batch.remote_since = True
            self.version = item["version"]

    def _subscribe_event_callbacks(self) -> None:
        # Bokeh subscribes a model's on_event callbacks when the model joins a document, so one
        # registered later (after show(), say) would never hear of a browser's clicks.
        for model in self.doc.models:
            if model._event_callbacks:
                model._update_event_callbacks()

    def _settle(self, item: dict[str, Any]) -> bool:
        """Whether ``item`` is one of our own changes; if someone else's was ordered before it
        while it travelled, set our properties again, so the local document ends in the server's
        order."""
        with self._cond:
            if not (item.get("own") or any(b.key == item.get("key") for b in self._unconfirmed)):
                return False
            while self._unconfirmed:
                batch = self._unconfirmed.popleft()
                if item.get("own") or batch.key == item.get("key"):
                    break
            else:
                return True
        if batch.remote_since:
            # Property sets are idempotent: setting ours again leaves the server's order (ours last).
            # Appends and the like are not, and they commute with others' changes to other objects.
            header, buffers = wire.unpack(batch.frame())
            sets = [event for event in header["patch"]["events"] if event["kind"] == "ModelChanged"]
            if sets:
                self.doc.apply_json_patch(Serialized({"events": sets}, buffers), setter=self)
        return True

    def _replace_content(self, header: dict[str, Any], buffers: list[Buffer]) -> None:
        """A snapshot: the server's whole document. Its roots replace ours (the models keep their
        ids, but objects the script holds from before are no longer in the document)."""
        fresh = Document.from_json(Serialized(header["doc"], buffers))
        roots = list(fresh.roots)
        fresh.clear()
        self.doc.remove_on_change(self._on_change)
        try:
            self.doc.clear()
            for root in roots:
                self.doc.add_root(root)
            self.doc.title = fresh.title
            self.doc.models.flush_synced()
        finally:
            self.doc.on_change(self._on_change)
        with self._cond:
            self._unconfirmed.clear()
        self.version = header["version"]

    # --- lifetime ------------------------------------------------------------------------------

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

    def drop(self) -> None:
        """Break the connection as a network failure would (the link reconnects); for tests."""
        if self._loop is not None and self._ws is not None:
            self._loop.call_soon_threadsafe(self._ws.transport.abort)

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _start(self) -> None:
        with self._cond:  # callers in several threads: one sender thread at a time
            if self._thread is None or not self._thread.is_alive():
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
        attempt = 0
        while not self._closing:
            try:
                await self._session()
                return
            except ServerError as e:  # refused (no access, bad token): retrying will not help
                self._fail(e)
                return
            except (OSError, websockets.exceptions.WebSocketException) as e:
                if attempt >= len(RECONNECT_DELAYS):
                    self._fail(ServerUnreachable(self.session.root_url, f"websocket {self.url}: {e}"))
                    return
                await asyncio.sleep(RECONNECT_DELAYS[attempt])
                attempt += 1
            except BaseException as e:
                self._fail(e)
                return

    async def _session(self) -> None:
        """One connection: resume from what we received, resend what is unconfirmed, go on."""
        async with websockets.connect(
            self.url, additional_headers=self.session.auth_headers(), max_size=None, open_timeout=30
        ) as ws:
            hello = json.loads(await ws.recv())
            if hello.get("type") == "error":
                raise ServerError(self.url, 0, hello["code"], hello["detail"], hello.get("field"))
            self._ws, self._window = ws, hello["window"]
            if self._consuming:
                await ws.send(json.dumps({"type": "sync", "version": self._received}))
            with self._cond:
                resend = list(self._unconfirmed)
                self._in_flight = len(resend)
            for batch in resend:  # the server drops those it already has, by key
                await ws.send(batch.frame())
            self._wake.set()
            reader = asyncio.create_task(self._read(ws))
            try:
                await self._send_batches(ws)
            finally:
                reader.cancel()
            if not self._closing:
                raise websockets.exceptions.ConnectionClosedError(None, None)

    async def _send_batches(self, ws: Any) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if ws.state is not websockets.protocol.State.OPEN:
                return
            while True:
                with self._cond:
                    if self._error is not None or (self._closing and not self._pending and not self._in_flight):
                        return
                    if not self._pending or self._in_flight >= MAX_IN_FLIGHT:
                        break
                    items, self._pending = self._pending, []
                    self._seq += 1
                    batch = _Batch(f"{self._client}:{self._seq}", [e for e, _ in items], [b for _, bs in items for b in bs])
                    self._unconfirmed.append(batch)
                    self._in_flight += 1
                await ws.send(batch.frame())

    async def _read(self, ws: Any) -> None:
        reported = self._received
        try:
            async for raw in ws:
                if isinstance(raw, bytes):
                    header, buffers = wire.unpack(raw)
                    if header["type"] == "patches" and header["from"] > self._received:
                        await ws.send(json.dumps({"type": "sync", "version": self._received}))  # a gap
                        continue
                    self._received = max(self._received, header["version"])
                    self._incoming.put((header, buffers))
                    if self._received - reported >= self._window // 2:
                        reported = self._received
                        await ws.send(json.dumps({"type": "applied", "version": reported}))
                    continue
                message = json.loads(raw)
                with self._cond:
                    if message.get("type") == "ack":
                        self._in_flight = max(0, self._in_flight - 1)
                        self.acked = max(self.acked, message["version"])
                        if not self._consuming:  # it will not come back in a stream we do not follow
                            self._unconfirmed = deque(b for b in self._unconfirmed if b.key != message.get("id"))
                    elif message.get("type") == "error":
                        self._in_flight = max(0, self._in_flight - 1)
                        self._unconfirmed = deque(b for b in self._unconfirmed if b.key != message.get("id"))
                        self._error = ServerError(self.url, 0, message["code"], message["detail"], message.get("field"))
                    self._cond.notify_all()
                self._wake.set()
        finally:
            self._wake.set()  # let the sender see the connection is gone

    def _fail(self, error: BaseException) -> None:
        with self._cond:
            self._error = error
            self._in_flight = 0
            self._cond.notify_all()
