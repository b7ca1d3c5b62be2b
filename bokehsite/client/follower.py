"""Following a stored document: a local Bokeh document kept in step with the server, read-only.

    async with Follower(session, "animated_line") as follower:
        await follower.wait_for(version=10)
        print(follower.doc.get_model_by_name("ex_line").data_source.data)

It is a thin user of the same ``Connection`` and ``Inbox`` as a session's two-way link, in the
caller's event loop: it applies each change as it arrives, asks again from its own version
after a gap or a reconnect, and takes snapshots when the server sends one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from bokeh.core.serialization import Buffer
from bokeh.document import Document

from bokehsite import protocol
from bokehsite.client.connection import Connection
from bokehsite.client.inbox import Inbox
from bokehsite.client.session import Session


class Follower:
    """Follows the document ``title_or_id``; ``on_frame`` is called with each change message."""

    def __init__(self, session: Session, title_or_id: str, *,
                 on_frame: Callable[[protocol.Message], None] | None = None):
        self.session = session
        self.title_or_id = title_or_id
        self.on_frame = on_frame
        self.inbox: Inbox | None = None
        self.connection: Connection | None = None
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    @property
    def doc(self) -> Document | None:
        return self.inbox.doc if self.inbox else None

    @property
    def version(self) -> int:
        return self.inbox.version if self.inbox else 0

    async def __aenter__(self) -> Follower:
        doc, version = await asyncio.to_thread(self.session.fetch, self.title_or_id)
        info = await asyncio.to_thread(self.session.document_info, self.title_or_id)
        self.inbox = Inbox(doc, version)
        self.connection = Connection(self.session.root_url, info["id"], self.session.auth_headers,
                                     on_open=self._opened, on_message=self._received)
        self._task = asyncio.create_task(self.connection.run())
        self._task.add_done_callback(lambda _: asyncio.ensure_future(self._notify()))
        try:
            await self.connection.wait_open()
        except BaseException:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task  # what stopped it is raised here, from wait_open
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.connection.close()
        self._task.cancel()

    def drop(self) -> None:
        """Close the connection as a network failure would; the follower reconnects."""
        self.connection.drop()

    async def wait_for(self, version: int, timeout: float = 30.0) -> None:
        """Wait until the local document is at ``version`` or later."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.version >= version or self._task.done()), timeout)
        if self.version < version:
            self._task.result()  # raises what stopped the connection
            raise ConnectionError("the follower stopped before it reached the version")

    async def _opened(self, hello: protocol.Hello) -> None:
        self.inbox.window = hello.window
        await self.connection.send(protocol.Sync(self.inbox.received))

    async def _received(self, message: protocol.Message, buffers: list[Buffer]) -> None:
        if not isinstance(message, (protocol.Patches, protocol.Snapshot)):
            return
        gap = self.inbox.receive(message, buffers)
        if gap is not None:
            await self.connection.send(protocol.Sync(gap))
            return
        self.inbox.apply(*self.inbox.next(0))
        if self.on_frame:
            self.on_frame(message)
        if report := self.inbox.report():
            await self.connection.send(report)
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
