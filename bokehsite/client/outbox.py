"""The changes a client sends: queued in order, sent in keyed batches, kept until confirmed.

Every change Bokeh reports is queued (``put``) the moment it happens, in the thread that made
it. The link's sender takes what has queued up as one batch (``take``), at most
``MAX_IN_FLIGHT`` batches unacknowledged, and no batch larger than the largest message the
server accepts (``max_message``, from its ``hello``); a single change larger than that is not
sent, and the next ``flush`` raises ``ChangeTooLarge``. Each batch has a key; a batch stays ``unconfirmed``
until its change comes back in the stream of changes (``confirm``), or until it is acknowledged
when the client does not follow the stream. After a reconnect every unconfirmed batch is sent
again (``resend``): the server recognises the key and does not apply it twice.

Thread-safe: the script's threads put and wait; the connection's thread takes and settles.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from typing import Any

from bokeh.core.json_encoder import serialize_json
from bokeh.core.serialization import Buffer

from bokehsite import protocol, wire
from bokehsite.client.exceptions import BokehsiteError, ChangeTooLarge

# Batches sent but not yet acknowledged; more would only queue up in the network.
MAX_IN_FLIGHT = 4
# Bytes of a message besides its events and buffers: the envelope, ids, the buffer index.
ENVELOPE_BYTES = 1024
BUFFER_INDEX_BYTES = 32  # the index entry of one buffer, besides its id


def message_bytes(event: dict[str, Any], buffers: list[Buffer]) -> int:
    """What one serialized change event adds to a ``patch`` message, in bytes."""
    return (len(serialize_json(event).encode()) + 1
            + sum(memoryview(b.data).nbytes + len(b.id.encode()) + BUFFER_INDEX_BYTES for b in buffers))


class Batch:
    """Changes sent together as one ``patch`` message, named by ``key``."""

    def __init__(self, key: str, events: list[dict[str, Any]], buffers: list[Buffer]):
        self.key = key
        self.events = events
        self.buffers = buffers
        self.remote_since = False  # someone else's change was applied while this one travelled

    def frame(self) -> str | bytes:
        return protocol.Patch(id=self.key, patch={"events": self.events}, key=self.key).encode(self.buffers)

    def property_sets(self, skip: set[tuple[str, str]] = frozenset()) -> tuple[dict[str, Any], list[Buffer]] | None:
        """This batch's property sets (``ModelChanged``) but those of ``skip`` ((model id,
        attribute) pairs), as a patch to apply again, if any are left."""
        header, buffers = wire.unpack(wire.pack({"events": self.events}, self.buffers))
        sets = [event for event in header["events"] if event["kind"] == "ModelChanged" and _target(event) not in skip]
        return ({"events": sets}, buffers) if sets else None


def _target(event: dict[str, Any]) -> tuple[str, str] | None:
    """The (model id, attribute) a serialized property set sets; None for other events."""
    if event.get("kind") != "ModelChanged":
        return None
    return event["model"]["id"], event["attr"]


class Outbox:
    def __init__(self, acked: int = 0):
        self.acked = acked  # the newest version the server acknowledged for our changes
        self.max_message = protocol.DEFAULT_MAX_MESSAGE  # what the server accepts; its hello says
        self._cond = threading.Condition()
        self._client = uuid.uuid4().hex[:12]
        self._seq = 0
        self._pending: list[tuple[dict[str, Any], list[Buffer], int]] = []  # queued, not sent; with size
        self._unconfirmed: deque[Batch] = deque()  # sent, not yet seen back in the stream
        self._in_flight = 0  # sent, not yet acknowledged
        self._error: BaseException | None = None

    # --- the script's side ----------------------------------------------------------------------

    def put(self, event: dict[str, Any], buffers: list[Buffer]) -> None:
        """Queue one serialized change event and the buffers it refers to."""
        size = message_bytes(event, buffers)
        with self._cond:
            self._pending.append((event, buffers, size))

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing awaiting an acknowledgement."""
        with self._cond:
            return not self._pending and not self._in_flight

    def wait_until_acknowledged(self, timeout: float) -> int:
        """Wait until every queued change has been acknowledged; returns the newest version."""
        with self._cond:
            done = self._cond.wait_for(lambda: self._error or (not self._pending and not self._in_flight), timeout)
            self.raise_error()
            if not done:
                raise BokehsiteError(f"the server did not acknowledge changes within {timeout} s")
            return self.acked

    def raise_error(self) -> None:
        """Raise, once, the error that refused a change or broke the link, if there was one."""
        with self._cond:
            if self._error is not None:
                error, self._error = self._error, None
                raise error

    # --- the connection's side ------------------------------------------------------------------

    def take(self) -> Batch | None:
        """The next batch to send: what is queued, as much as fits in one message, if fewer than
        MAX_IN_FLIGHT are in flight. A change that alone does not fit is dropped, and the next
        ``flush`` raises ``ChangeTooLarge``."""
        with self._cond:
            if self._error is not None or not self._pending or self._in_flight >= MAX_IN_FLIGHT:
                return None
            room = self.max_message - ENVELOPE_BYTES
            if self._pending[0][2] > room:
                event = self._pending.pop(0)
                self._error = ChangeTooLarge(event[0].get("kind", "change"), event[2], self.max_message)
                self._cond.notify_all()
                return None
            count, size = 0, 0
            while count < len(self._pending) and size + self._pending[count][2] <= room:
                size += self._pending[count][2]
                count += 1
            items, self._pending = self._pending[:count], self._pending[count:]
            self._seq += 1
            batch = Batch(f"{self._client}:{self._seq}", [e for e, _, _ in items], [b for _, bs, _ in items for b in bs])
            self._unconfirmed.append(batch)
            self._in_flight += 1
            return batch

    def resend(self) -> list[Batch]:
        """After a reconnect: every unconfirmed batch, to send again before anything new."""
        with self._cond:
            self._in_flight = len(self._unconfirmed)
            return list(self._unconfirmed)

    def acknowledged(self, request_id: Any, version: int, *, following: bool) -> None:
        """The server stored the batch ``request_id`` as ``version``. A client that does not
        follow the stream will never see it come back, so it is confirmed now."""
        with self._cond:
            self._in_flight = max(0, self._in_flight - 1)
            self.acked = max(self.acked, version)
            if not following:
                self._unconfirmed = deque(b for b in self._unconfirmed if b.key != request_id)
            self._cond.notify_all()

    def refused(self, request_id: Any, error: BaseException) -> None:
        """The server refused a batch (or a message): nothing of it was stored."""
        with self._cond:
            self._in_flight = max(0, self._in_flight - 1)
            self._unconfirmed = deque(b for b in self._unconfirmed if b.key != request_id)
            self._error = error
            self._cond.notify_all()

    def fail(self, error: BaseException) -> None:
        """The link is broken for good: wake everyone waiting with ``error``."""
        with self._cond:
            self._error = error
            self._in_flight = 0
            self._cond.notify_all()

    def confirm(self, item: dict[str, Any]) -> tuple[bool, Batch | None]:
        """Whether a change in the stream is one of ours, and if so the batch it confirms (that
        one and any older are done with)."""
        with self._cond:
            own = item.get("own") is True
            if not (own or any(b.key == item.get("key") for b in self._unconfirmed)):
                return False, None
            while self._unconfirmed:
                batch = self._unconfirmed.popleft()
                if own or batch.key == item.get("key"):
                    return True, batch
            return True, None

    def set_again(self, batch: Batch) -> tuple[dict[str, Any], list[Buffer]] | None:
        """What to set again when ``batch`` comes back after someone else's change: its property
        sets, but those a newer change of ours (unconfirmed or queued) sets too, whose value the
        document holds already and the server orders last."""
        with self._cond:
            newer = {_target(event) for b in self._unconfirmed for event in b.events}
            newer.update(_target(event) for event, _, _ in self._pending)
        return batch.property_sets(newer)

    def someone_else_changed(self) -> None:
        """A change of someone else's was applied while ours travel (see ``Inbox``)."""
        with self._cond:
            for batch in self._unconfirmed:
                batch.remote_since = True

    def forget_unconfirmed(self) -> None:
        """A snapshot replaced the document: what travelled before is in it, or never will be."""
        with self._cond:
            self._unconfirmed.clear()
