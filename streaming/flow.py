"""Flow control for one follower of a document: what it was sent, what it has applied, what next.

A follower (a viewer's websocket, a client session) is sent the document's changes in version
order. It keeps no queue of its own: the log is the queue. A follower that is ``window`` versions
ahead of what it has confirmed (``applied``) is sent nothing more until it catches up; then it
gets everything it missed in one frame, read from the log, or a snapshot when the log no longer
holds it all (more than ``limit`` changes, a replace among them, or nothing to start from). So a
slow follower never holds up the producer or other followers, and its memory stays bounded
whatever the rate.

Plain Python: it reads the log through the ``Log`` it is given and returns the frames to send;
sending them is the follower's part.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from bokeh.core.serialization import Buffer

from bokehsite import protocol

# The kind of a logged change that replaces the whole document: only a snapshot carries it.
REPLACE = "replace"


class Entry(Protocol):
    """One logged change, as ``documents.models.Event`` holds it."""

    version: int
    kind: str
    patch: Any
    key: str
    origin: str

    def buffer_list(self) -> list[Buffer]: ...


class Log(Protocol):
    """A document's log, as a follower reads it."""

    async def after(self, version: int, limit: int) -> Sequence[Entry] | None:
        """Up to ``limit`` changes after ``version``, in order; None when the log no longer holds them."""

    async def whole(self) -> tuple[int, bytes | memoryview]:
        """The current version, and the document at it as a bundle."""

    async def current(self) -> int:
        """The current version."""


class Flow:
    """What one follower was sent and has applied. ``origin`` names the follower as the changes
    it sent name it: those are never echoed back to it, only counted (``protocol.own_item``)."""

    def __init__(self, origin: str, *, window: int, limit: int):
        self.origin = origin
        self.window = window  # versions sent past ``applied``, at most
        self.limit = limit  # changes in one catch-up frame, at most; more take a snapshot
        self.synced = False  # the follower said what it has: changes may be sent
        self.sent = 0  # the version the follower has been sent up to (-1: nothing yet)
        self.applied = 0  # the version it says it has applied
        self.behind = False  # changes happened that it has not been sent yet

    def has_room(self) -> bool:
        return self.sent - self.applied < self.window

    async def sync(self, version: int | None, log: Log) -> None:
        """The follower has ``version`` (None: nothing); a catch-up sends it what it misses."""
        if version is not None and version > await log.current():
            version = None  # from the future (another server's data?): start over
        self.synced = True
        self.sent = self.applied = -1 if version is None else version

    def confirmed(self, version: int) -> bool:
        """The follower has applied ``version``: whether a catch-up is due now."""
        self.applied = max(self.applied, min(version, self.sent))
        return self.behind and self.has_room()

    def changed(self, start: int, version: int, origins: list[str], frame: bytes | None) -> bytes | None:
        """Versions ``start + 1`` to ``version`` were committed (``origins``: who sent each), and
        ``frame`` carries them (None for a replace): the frame to send this follower now, if any.
        When the log must fill in instead, ``behind`` is set; ``due()`` says whether to catch up now."""
        if not self.synced or version <= self.sent:
            return None
        mine = [origin == self.origin for origin in origins]
        if (self.behind or start != self.sent or frame is None or not self.has_room()
                or (any(mine) and not all(mine))):
            # A gap, a replace, a slow follower, or others' changes among its own: the log fills it in.
            self.behind = True
            return None
        self.sent = version
        return protocol.own_frame(start, version) if all(mine) else frame

    def due(self) -> bool:
        """Whether a catch-up is due now: there is something to send and room for it."""
        return self.behind and self.has_room()

    def unsure(self) -> bool:
        """Synced and not known to be behind: only the stored version can tell whether a change
        announced through the channel layer was lost on the way (``stored``)."""
        return self.synced and not self.behind

    def stored(self, version: int) -> bool:
        """The log holds changes up to ``version``: whether a catch-up is due now."""
        if version > self.sent:
            self.behind = True
        return self.due()

    async def catch_up(self, log: Log) -> bytes | None:
        """Everything after what was sent, in one frame, or a snapshot; None when there is nothing
        new. What the log raises passes; then ``behind`` is for the caller to set."""
        self.behind = False
        entries = await log.after(self.sent, self.limit + 1) if self.sent >= 0 else None
        if entries is None or len(entries) > self.limit or any(e.kind == REPLACE for e in entries):
            version, bundle = await log.whole()
            self.sent = self.applied = version
            return protocol.Snapshot.frame(version, bundle)
        if not entries:
            return None
        frame = protocol.Patches.frame(self.sent, entries[-1].version, (
            (protocol.own_item(e.version), ()) if e.origin == self.origin
            else (protocol.item(e.version, e.patch, e.key), e.buffer_list())
            for e in entries))
        self.sent = entries[-1].version
        return frame
