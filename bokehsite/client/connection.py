"""One document's websocket, as the client keeps it: connect, greet, reconnect with backoff.

A ``Connection`` runs in an event loop (``run()``) until it is closed. Each time it connects it
waits for the server's ``hello``, calls ``on_open(hello)``, then ``on_message(message, buffers)``
for every message that follows, each parsed and checked by ``bokehsite.protocol``. When the
network drops it, it connects again after a pause that grows with each failure in a row, and
that starts short again once a connection has stayed up for a while. When the server closes it
for good (the document is gone, or access to it was taken away: close codes 4401 and 4404; or it
is past a connection limit: 4429, ``TooManyConnections``), it raises the server's reason instead
of reconnecting. A server that answers but cannot serve the
document for now (its database is down: ``unavailable``, 4503) is tried again for as long as it
takes.

It knows nothing of documents: ``bokehsite.client.sync`` (two-way, for a session's document)
and ``bokehsite.client.follower`` (read-only) give it their handlers.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable
from typing import Any

import websockets
from bokeh.core.serialization import Buffer

from bokehsite import protocol
from bokehsite.client.exceptions import BokehsiteError, ServerError, ServerUnreachable, TooManyConnections

# Pauses before each reconnect of a run of failures; after the last, the server is unreachable.
RECONNECT_DELAYS = (0.2, 0.5, 1, 2, 5)
# A connection that stayed up this long was healthy: the next failure starts the pauses again.
HEALTHY_AFTER = 10.0


class State(enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"  # the server said hello
    WAITING = "waiting"  # to reconnect
    CLOSED = "closed"


class Connection:
    """The websocket of the document ``document_id`` on the server at ``root_url``.

    Args:
        headers: called for each connect; the headers that authenticate it.
        on_open: awaited with the server's ``Hello`` on every (re)connect.
        on_message: awaited with each later message and its buffers.
    """

    def __init__(self, root_url: str, document_id: str, headers: Callable[[], dict[str, str]], *,
                 on_open: Callable[[protocol.Hello], Awaitable[None]],
                 on_message: Callable[[protocol.Message, list[Buffer]], Awaitable[None]]):
        self.url = protocol.url(root_url, document_id)
        self.headers = headers
        self.on_open = on_open
        self.on_message = on_message
        self.state = State.CONNECTING
        self.ws: Any = None
        self._closing: asyncio.Event | None = None
        self._opened: asyncio.Future[None] | None = None
        self._refusal: protocol.Error | None = None  # why the server is about to close, if it said

    @property
    def is_open(self) -> bool:
        return self.state is State.OPEN

    async def run(self) -> None:
        """Stay connected until ``close()``.

        Raises:
            ServerError: the server refused the connection (no access, a bad token).
            ServerUnreachable: every reconnect of a run of failures failed.
            BokehsiteError: the server sent something that is not a message of the protocol.
        """
        self._closing = asyncio.Event()
        self._opened = asyncio.get_running_loop().create_future()
        failures = 0
        try:
            while not self._closing.is_set():
                self.state = State.CONNECTING
                opened_at = None
                answering = False  # the server answered, but cannot serve the document now
                try:
                    async with websockets.connect(self.url, additional_headers=self.headers(), max_size=None,
                                                  open_timeout=30) as ws:
                        hello = await self._greeting(ws)
                        self.ws, self.state, opened_at = ws, State.OPEN, time.monotonic()
                        await self.on_open(hello)
                        if not self._opened.done():
                            self._opened.set_result(None)
                        async for raw in ws:
                            message, buffers = self._decode(raw)
                            if isinstance(message, protocol.Error) and message.id is None:
                                self._refusal = message
                            await self.on_message(message, buffers)
                    reason: str = "the server closed the connection"
                except ServerError as e:
                    if e.code != protocol.UNAVAILABLE:
                        raise
                    reason, answering = e.detail, True
                except websockets.exceptions.ConnectionClosed as e:
                    if e.rcvd is not None and e.rcvd.code in protocol.FINAL_CLOSES:
                        raise self._refused(e.rcvd.code) from None
                    reason = str(e) or type(e).__name__
                    answering = e.rcvd is not None and e.rcvd.code == protocol.Close.UNAVAILABLE
                except (OSError, websockets.exceptions.WebSocketException) as e:
                    reason = str(e) or type(e).__name__
                finally:
                    self.ws = None
                if self._closing.is_set():
                    break
                if opened_at is not None and time.monotonic() - opened_at >= HEALTHY_AFTER:
                    failures = 0
                if failures >= len(RECONNECT_DELAYS):
                    if not answering:
                        raise ServerUnreachable(self.url, f"websocket: {reason}")
                    failures = len(RECONNECT_DELAYS) - 1  # it answers: keep trying, at the longest pause
                self.state = State.WAITING
                try:  # a close() meanwhile ends the wait
                    await asyncio.wait_for(self._closing.wait(), RECONNECT_DELAYS[failures])
                except TimeoutError:
                    pass
                failures += 1
        except BaseException as error:
            if not self._opened.done():
                self._opened.set_exception(error)
                self._opened.exception()  # seen here; wait_open() raises it again
            raise
        finally:
            self.state = State.CLOSED
            if not self._opened.done():
                self._opened.set_exception(BokehsiteError("the connection was closed before it opened"))
                self._opened.exception()

    def _refused(self, close_code: int) -> ServerError:
        """The error for a close that says retrying will not help, with the server's reason."""
        refusal = self._refusal or protocol.Error("closed", f"the server closed the connection with {close_code}", None)
        return ServerError(self.url, close_code - 4000, refusal.code, refusal.detail, refusal.field)

    async def wait_open(self) -> None:
        """Wait until the first connection has opened; raises what stopped it instead."""
        while self._opened is None:
            await asyncio.sleep(0)
        await asyncio.shield(self._opened)

    async def _greeting(self, ws: Any) -> protocol.Hello:
        message, _ = self._decode(await ws.recv())
        if isinstance(message, protocol.Error):
            if message.code == protocol.TOO_MANY_CONNECTIONS:
                raise TooManyConnections(self.url, message.detail, message.extra.get("limit"), message.extra.get("maximum"))
            raise ServerError(self.url, 0, message.code, message.detail, message.field)
        if not isinstance(message, protocol.Hello):
            raise BokehsiteError(f"{self.url}: the server began with {message.TYPE!r}, not 'hello'")
        return message

    def _decode(self, raw: str | bytes) -> tuple[protocol.Message, list[Buffer]]:
        try:
            return protocol.decode(raw, sender=protocol.SERVER)
        except protocol.ProtocolError as e:
            raise BokehsiteError(f"{self.url}: the server sent what this client cannot read: {e.detail}") from None

    async def send(self, message: protocol.Message, buffers: list[Buffer] = ()) -> None:
        """Send a message now; raises ``websockets.ConnectionClosed`` if the connection is not open."""
        await self.send_frame(message.encode(buffers))

    async def send_frame(self, frame: str | bytes) -> None:
        ws = self.ws
        if ws is None or not self.is_open:
            raise websockets.exceptions.ConnectionClosedError(None, None)
        await ws.send(frame)

    async def send_if_open(self, message: protocol.Message) -> None:
        """Send a message if the connection is open; a reconnect sends what matters again anyway."""
        try:
            await self.send(message)
        except websockets.exceptions.ConnectionClosed:
            pass

    async def close(self) -> None:
        """Stop: close the socket and do not reconnect."""
        if self._closing is not None:
            self._closing.set()
        if self.ws is not None:
            await self.ws.close()

    def drop(self) -> None:
        """Break the connection as a network failure would (it reconnects); for tests. Call it
        in the connection's event loop."""
        if self.ws is not None:
            self.ws.transport.abort()
