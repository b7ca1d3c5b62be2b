"""Following a stored document: a local Bokeh document kept in step with the server.

    async with Follower(session, "animated_line") as follower:
        await follower.wait_for(version=10)
        print(follower.doc.get_model_by_name("ex_line").data_source.data)

It speaks the same websocket protocol as the plot page: it applies each change in version order,
asks again from its own version after a gap or a reconnect, and takes snapshots when the server
sends one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import websockets
from bokeh.core.serialization import Serialized
from bokeh.document import Document

from bokehsite.client import wire
from bokehsite.client.exceptions import ServerError
from bokehsite.client.live import websocket_url
from bokehsite.client.session import Session


class Follower:
    def __init__(self, session: Session, title_or_id: str, *, on_frame: Callable[[dict[str, Any]], None] | None = None):
        self.session = session
        self.title_or_id = title_or_id
        self.on_frame = on_frame
        self.doc: Document | None = None
        self.version = 0
        self.window = 64
        self._reported = 0
        self._ws: Any = None
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Follower:
        self.doc, self.version = await asyncio.to_thread(self.session.fetch, self.title_or_id)
        self._reported = self.version
        info = await asyncio.to_thread(self.session.document_info, self.title_or_id)
        self.url = websocket_url(self.session.root_url, info["id"])
        await self.connect()
        self._task = asyncio.create_task(self._receive_forever())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
        if self._ws:
            await self._ws.close()

    async def connect(self) -> None:
        self._ws = await websockets.connect(self.url, additional_headers=self.session.auth_headers(), max_size=None)
        hello = json.loads(await self._ws.recv())
        if hello["type"] == "error":
            raise ServerError(self.url, 0, hello["code"], hello["detail"], hello.get("field"))
        self.window = hello["window"]
        await self._ws.send(json.dumps({"type": "sync", "version": self.version}))

    def drop(self) -> None:
        """Close the connection as a network failure would; the follower reconnects."""
        self._ws.transport.abort()

    async def wait_for(self, version: int, timeout: float = 30.0) -> None:
        """Wait until the local document is at ``version`` or later."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.version >= version), timeout)

    async def _receive_forever(self) -> None:
        while True:
            try:
                async for raw in self._ws:
                    await self._handle(raw)
            except websockets.exceptions.ConnectionClosed:
                pass
            await asyncio.sleep(0.2)  # then resume from our version
            try:
                await self.connect()
            except (OSError, websockets.exceptions.WebSocketException):
                await asyncio.sleep(1)

    async def _handle(self, raw: str | bytes) -> None:
        header, buffers = wire.unpack(raw) if isinstance(raw, bytes) else (json.loads(raw), [])
        kind = header.get("type")
        if kind == "snapshot":
            self.doc = Document.from_json(Serialized(header["doc"], buffers))
            self.version = header["version"]
        elif kind == "patches":
            for item in header["items"]:
                if item["version"] <= self.version:
                    continue
                if item["version"] != self.version + 1:
                    await self._ws.send(json.dumps({"type": "sync", "version": self.version}))
                    return
                if not item.get("own"):
                    self.doc.apply_json_patch(Serialized(item["patch"], buffers), setter=self)
                self.version = item["version"]
        else:
            return
        if self.on_frame:
            self.on_frame(header)
        if self.version - self._reported >= self.window // 2 or kind == "snapshot":
            self._reported = self.version
            await self._ws.send(json.dumps({"type": "applied", "version": self.version}))
        async with self._changed:
            self._changed.notify_all()
