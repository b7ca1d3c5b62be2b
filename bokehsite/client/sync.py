"""A session's document, kept in step with the server both ways.

Outgoing: every change Bokeh reports is serialized the moment it happens (in the thread that
made it) and queued in the ``Outbox``; a background thread sends what has queued up as one
batch over the document's ``Connection``. ``flush()`` waits until the server has acknowledged
everything queued so far.

Incoming: changes others make (a browser moving a slider, another script) arrive on the same
connection and wait in the ``Inbox`` until the script applies them, with ``pull()``, in
``loop_until_closed()``, or in a background thread. Applying them runs Bokeh's own callbacks
(``on_change``, ``on_event``), and whatever those change is sent back like any other change.

After a dropped connection the sync reconnects, resumes from the last version it received, and
resends the batches the server had not confirmed; each batch carries a key, so the server never
applies one twice.
"""

from __future__ import annotations

import asyncio
import atexit
import queue
import sys
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import websockets
from bokeh.core.serialization import Buffer, Serializer
from bokeh.document import Document
from bokeh.document.events import ColumnDataChangedEvent, DocumentPatchedEvent, ModelChangedEvent
from bokeh.model import Model
from bokeh.models import ColumnDataSource

from bokehsite import protocol, wire
from bokehsite.client.connection import Connection
from bokehsite.client.exceptions import BokehsiteError, ServerError
from bokehsite.client.inbox import Inbox
from bokehsite.client.outbox import Outbox

if TYPE_CHECKING:
    from bokehsite.client.session import Session

# Syncs still open when the interpreter exits send what they have queued first (also on Ctrl-C).
_open_syncs: weakref.WeakSet[DocumentSync] = weakref.WeakSet()


@atexit.register
def _close_open_syncs() -> None:
    for sync in list(_open_syncs):
        try:
            sync.close(timeout=10)
        except BokehsiteError as e:
            print(f"bokehsite: changes not sent before exit: {e}", file=sys.stderr)


class DocumentSync:
    """Keeps ``doc`` in step with the server both ways; it is stored as ``document_id`` at ``version``."""

    def __init__(self, session: Session, doc: Document, document_id: str, version: int, *,
                 on_error: Callable[[Exception], None] | None = None,
                 on_refused: Callable[[ServerError], None] | None = None):
        self.session = session
        self.doc = doc
        self.document_id = document_id
        self.outbox = Outbox(acked=version)
        self.inbox = Inbox(doc, version, self.outbox, on_error=on_error)
        self.on_refused = on_refused  # the server closed the connection for good (the document is gone, say)
        self.lock = threading.RLock()  # held while incoming changes are applied
        self.connection = Connection(session.root_url, document_id, session.auth_headers,
                                     on_open=self._opened, on_message=self._received)
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._background: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._closing = False
        self.role: str | None = None  # what the server lets this sync do: "write" or "read"
        # Only a script that applies incoming changes follows them; a pure producer does not, so
        # nothing piles up for it.
        self._following = False
        self._deliver: Callable[[Callable[[], None]], object] | None = None  # follow_in's
        doc.models.flush_synced()  # the server has every model now; later events refer to them by id
        doc.on_change(self._on_change)
        _open_syncs.add(self)

    @property
    def version(self) -> int:
        """The version the local document is at."""
        return self.inbox.version

    @property
    def acked(self) -> int:
        """The newest version the server acknowledged for this sync's changes."""
        return self.outbox.acked

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
        self._start()
        self._wake_sender()
        return self.outbox.wait_until_acknowledged(timeout)

    def _on_change(self, event: Any) -> None:
        if isinstance(event, DocumentPatchedEvent) and event.setter is not self.inbox:
            self._queue(event)

    def _queue(self, event: DocumentPatchedEvent) -> None:
        serializer = Serializer(references=self.doc.models.synced_references)
        encoded = serializer.encode(event)
        buffers: list[Buffer] = serializer.buffers
        self.doc.models.flush_synced(lambda model: not serializer.has_ref(model))
        self.outbox.put(wire.binary_event(encoded, buffers), buffers)
        self._start()
        self._wake_sender()

    # --- incoming ------------------------------------------------------------------------------

    def pull(self, version: int, timeout: float = 30.0) -> int:
        """Apply incoming changes until the local document is at ``version``; returns it."""
        self._follow()
        while self.inbox.version < version:
            self._apply_next(timeout)
        return self.inbox.version

    def loop_until_closed(self) -> None:
        """Apply incoming changes as they come, running callbacks, until ``close()`` or Ctrl-C."""
        self._follow()
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

    def follow_in(self, run: Callable[[Callable[[], None]], object]) -> None:
        """Apply incoming changes by handing each, as it arrives and in order, to ``run``, which
        calls it on the thread that owns the document (an app session's event loop)."""
        self._deliver = run
        self._follow()

    def _apply_queued(self) -> None:
        self._apply(*self.inbox.next(timeout=0))

    def _follow(self) -> None:
        """Subscribe to incoming changes, from the version the local document is at."""
        if not self._following:
            self._following = True
            self._start()
            self._soon(protocol.Sync(self.inbox.received))

    def _apply_next(self, timeout: float) -> None:
        try:
            message, buffers = self.inbox.next(timeout)
        except queue.Empty:
            self.outbox.raise_error()
            raise TimeoutError(f"no change from the server within {timeout} s") from None
        self._apply(message, buffers)

    def _apply(self, message: protocol.Patches | protocol.Snapshot, buffers: list[Buffer]) -> None:
        with self.lock:
            self.inbox.apply(message, buffers)
        if report := self.inbox.report():
            self._soon(report)

    # --- lifetime ------------------------------------------------------------------------------

    def close(self, timeout: float = 30.0) -> None:
        """Send what is queued, then disconnect."""
        _open_syncs.discard(self)
        self.doc.remove_on_change(self._on_change)
        try:
            if not self.outbox.idle:
                self.flush(timeout)
        finally:
            self._closing = True
            self._wake_sender()
            if self._thread is not None:
                self._thread.join(timeout)

    def drop(self) -> None:
        """Break the connection as a network failure would (the sync reconnects); for tests."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.connection.drop)

    # --- the background thread -----------------------------------------------------------------

    def _start(self) -> None:
        with self._start_lock:  # callers in several threads: one connection thread at a time
            if self._thread is None or not self._thread.is_alive():
                self._closing = False
                self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), name="bokehsite-sync", daemon=True)
                self._thread.start()

    def _soon(self, message: protocol.Message) -> None:
        """Send ``message`` from the connection's thread, if it is connected."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                asyncio.run_coroutine_threadsafe(self.connection.send_if_open(message), loop)
            except RuntimeError:  # the loop has just finished
                pass

    def _wake_sender(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the thread has finished; _start() begins a new one
                pass

    async def _main(self) -> None:
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        sender = asyncio.create_task(self._send_batches())
        try:
            await self.connection.run()
        except ServerError as e:  # refused (no access, bad token): retrying will not help
            self.outbox.fail(e)
            if self.on_refused is not None and not self._closing:
                self.on_refused(e)
        except BaseException as e:
            self.outbox.fail(e)
        finally:
            sender.cancel()

    async def _opened(self, hello: protocol.Hello) -> None:
        """A new connection: resume from what we received, resend what is unconfirmed."""
        self.inbox.window = hello.window
        self.role = hello.role
        self.outbox.max_message = hello.message_limit
        if self._following:
            await self.connection.send(protocol.Sync(self.inbox.received))
        for batch in self.outbox.resend():  # the server drops those it already has, by key
            await self.connection.send_frame(batch.frame())
        self._wake.set()

    async def _received(self, message: protocol.Message, buffers: list[Buffer]) -> None:
        if isinstance(message, (protocol.Patches, protocol.Snapshot)):
            gap = self.inbox.receive(message, buffers)
            if gap is not None:
                await self.connection.send(protocol.Sync(gap))
            elif self._deliver is not None:
                self._deliver(self._apply_queued)
        elif isinstance(message, protocol.Ack):
            self.outbox.acknowledged(message.id, message.version, following=self._following)
        elif isinstance(message, protocol.Error) and message.id is not None:
            if message.code != protocol.UNAVAILABLE:  # that one is sent again after the reconnect that follows
                self.outbox.refused(message.id, ServerError(self.connection.url, 0, message.code, message.detail, message.field))
        elif isinstance(message, protocol.Role):
            self.role = message.role  # access changed: a reader's changes are refused from now on
        self._wake.set()

    async def _send_batches(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._closing and self.outbox.idle:
                await self.connection.close()
                return
            if not self.connection.is_open:
                continue  # _opened wakes us again
            try:
                while (batch := self.outbox.take()) is not None:
                    await self.connection.send_frame(batch.frame())
            except websockets.exceptions.ConnectionClosed:
                continue  # resent after the reconnect
