"""The changes a client receives: applied to its local document in version order.

The connection's thread hands each ``patches`` and ``snapshot`` message to ``receive()``, which
notices a gap (the client then asks the server again from what it has) and queues the rest.
Whoever applies changes (the script's thread for a session, the event loop for a follower)
takes them with ``next()`` and ``apply()``: changes that are the client's own echo settle its
``Outbox``; everyone else's are applied through Bokeh's ``apply_json_patch``, which runs the
document's callbacks; a snapshot replaces the document's roots. ``report()`` says when to tell
the server what has been applied (flow control).
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any

from bokeh.core.serialization import Buffer, Serialized
from bokeh.document import Document

from bokehsite import bokeh_fixes, protocol, wire
from bokehsite.client.outbox import Outbox

bokeh_fixes.install()  # others' changes applied here as the browser applies them

Frame = tuple[protocol.Patches | protocol.Snapshot, list[Buffer]]


class Inbox:
    """Changes for ``doc``, which is at ``version``; ``outbox`` holds the changes the client sent."""

    def __init__(self, doc: Document, version: int, outbox: Outbox | None = None,
                 on_error: Callable[[Exception], None] | None = None):
        self.doc = doc
        self.outbox = outbox
        # Given: a callback that raises is reported to it and the rest is applied; else the
        # first error is raised once the whole message is applied.
        self.on_error = on_error
        self.version = version  # what the local document is at
        self.received = version  # the newest version received (applied or waiting)
        self.reported = version  # the newest version the server was told is applied
        self.window = protocol.DEFAULT_WINDOW
        self._frames: queue.Queue[Frame] = queue.Queue()

    # --- the connection's side ------------------------------------------------------------------

    def receive(self, message: protocol.Patches | protocol.Snapshot, buffers: list[Buffer]) -> int | None:
        """Queue a message as it arrives. If it does not follow on from what was received, it is
        dropped, and the answer is the version to ask the server for again (a ``sync``)."""
        if isinstance(message, protocol.Patches) and message.start > self.received:
            return self.received
        self.received = max(self.received, message.version) if isinstance(message, protocol.Patches) else message.version
        self._frames.put((message, buffers))
        return None

    # --- the applying side ----------------------------------------------------------------------

    def next(self, timeout: float | None = None) -> Frame:
        """The next message to apply; raises ``queue.Empty`` after ``timeout`` seconds."""
        return self._frames.get(timeout=timeout) if timeout != 0 else self._frames.get_nowait()

    def apply(self, message: protocol.Patches | protocol.Snapshot, buffers: list[Buffer]) -> None:
        if isinstance(message, protocol.Snapshot):
            self._replace_content(message, buffers)
        else:
            self._apply_items(message.items, buffers)

    def report(self) -> protocol.Applied | None:
        """An ``applied`` message to send, when the server should hear what has been applied."""
        if self.version - self.reported >= self.window // 2:
            self.reported = self.version
            return protocol.Applied(self.version)
        return None

    def _apply_items(self, items: list[dict[str, Any]], buffers: list[Buffer]) -> None:
        errors: list[Exception] = []
        for item in items:
            if item["version"] <= self.version:
                continue
            try:
                self._apply_item(item, buffers)
            except Exception as e:  # a callback's: the document is still at this version
                errors.append(e)
            self.version = item["version"]
        if errors and self.on_error is None:
            raise errors[0]
        for error in errors:
            self.on_error(error)

    def _apply_item(self, item: dict[str, Any], buffers: list[Buffer]) -> None:
        mine, batch = self.outbox.confirm(item) if self.outbox else (item.get("own") is True, None)
        if not mine:
            if any(event.get("kind") == "MessageSent" for event in item["patch"]["events"]):
                self._subscribe_event_callbacks()
            self.doc.apply_json_patch(Serialized(item["patch"], buffers), setter=self)
            if self.outbox:
                self.outbox.someone_else_changed()
        elif batch is not None and batch.remote_since:
            # Someone else's change was ordered before ours while ours travelled: set our
            # properties again, so that the local document ends in the server's order (ours
            # last). Property sets are idempotent; appends and the like are not, and they
            # commute with others' changes to other objects.
            sets = self.outbox.set_again(batch)
            if sets:
                self.doc.apply_json_patch(Serialized(*sets), setter=self)

    def _subscribe_event_callbacks(self) -> None:
        # Bokeh subscribes a model's on_event callbacks when the model joins a document, so one
        # registered later (after show(), say) would never hear of a browser's clicks.
        for model in self.doc.models:
            if model._event_callbacks:
                model._update_event_callbacks()

    def _replace_content(self, message: protocol.Snapshot, buffers: list[Buffer]) -> None:
        """The server's whole document. Its roots replace ours (the models keep their ids, but
        objects the script holds from before are no longer in the document)."""
        fresh = wire.load_document(message.doc, buffers)
        roots = list(fresh.roots)
        fresh.clear()
        for root in list(self.doc.roots):
            self.doc.remove_root(root, setter=self)
        for root in roots:
            self.doc.add_root(root, setter=self)
        self.doc.set_title(fresh.title, setter=self)
        self.doc.models.flush_synced()
        if self.outbox:
            self.outbox.forget_unconfirmed()
        self.version = self.reported = message.version
