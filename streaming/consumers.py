"""The websocket of one document: every viewer and client session of it connects here.

The consumer wires one connection's parts together and relays: it dispatches what the client
sends (``bokehsite.protocol``) through a table of handlers, as Bokeh's ``ProtocolHandler`` does,
and what the channel layer sends to a handler named after its type. The parts:

- ``streaming.access_checks``: who the connection is and what it may do, checked again whenever
  that may have changed; a connection that may now do less is told its new role, and one that
  may do nothing is told why and closed;
- ``streaming.broadcast``: its groups in the channel layer, renewed, and the liveness ticks;
- ``streaming.flow``: what it was sent and has applied, and what to send next (read from the log
  through ``streaming.log_reader``);
- ``streaming.writes``: its changes, queued for storage and answered;
- ``streaming.view_requests``: its views of dataset-backed sources.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

from bokeh.core.serialization import Buffer
from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from appserver import hosts, presence
from bokehsite import errors, metrics, protocol
from bokehsite.errors import ApiError
from documents.exceptions import DocumentNotFound
from streaming import broadcast, flow, limits, view_requests, writes
from streaming.access_checks import ConnectionAccess
from streaming.log_reader import StoredLog

logger = logging.getLogger(__name__)


class ReadOnly(errors.Forbidden):
    pass


class DocumentConsumer(AsyncWebsocketConsumer):
    app_viewer = False  # a browser's connection to an app session (``appserver.presence``)
    refused = False  # told why it may not follow the document, and closing: nothing more is sent

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.handlers: dict[type[protocol.Message], Callable[..., Awaitable[None]]] = {
            protocol.Sync: self.on_sync,
            protocol.Applied: self.on_applied,
            protocol.Patch: self.on_patch,
            protocol.Ping: self.on_ping,
            protocol.View: self.on_view,
        }

    async def connect(self) -> None:
        await self.accept()  # first, so that a refusal reaches the client as a message
        self.access = ConnectionAccess(self.scope)
        try:
            self.document = await self.access.open()
            self.from_app_host = hosts.is_host(self.scope)
            if not self.from_app_host:  # an app host's sessions are bounded by BOKEHSITE_MAX_SESSIONS
                await limits.acquire(self.scope, self.channel_name)  # past a connection limit: refused, 4429
        except Exception as e:
            if (error := errors.from_exception(e)) is None:
                raise
            await self.refuse(error)  # 4503 when the database is down: the client tries again
            return
        self.counted_as = metrics.connection_opened(limits.kind(self.scope, self.document,
                                                                from_app_host=self.from_app_host))
        self.log = StoredLog(self.document)
        self.flow = flow.Flow(self.channel_name, window=settings.BOKEHSITE_VIEWER_WINDOW,
                              limit=settings.BOKEHSITE_CATCHUP_LIMIT)
        self.writes = writes.ConnectionWrites(self.document, self.channel_name, send=self.send_message,
                                              fail=self.send_failure, stall=self.stall)
        self.views = view_requests.ConnectionViews(self.document, self.send_message, self.send_failure)
        self.membership = broadcast.Membership(self.channel_layer, self.channel_name, lost=self.layer_lost)
        await self.membership.join(broadcast.group_name(self.document.id), *self.access.identity_groups())
        self.access.start(self.recheck)
        self.membership.start()
        if presence.counts(self.document, from_app_host=self.from_app_host):
            self.app_viewer = True
            await presence.joined(self.document, self.channel_name)
        await self.send_message(protocol.Hello(await self.log.current(), self.access.role, self.flow.window,
                                               settings.BOKEHSITE_MAX_BODY_BYTES))

    async def refuse(self, error: ApiError) -> None:
        """Tell the client why it may not (or no longer) follow the document, and close. Once:
        what was queued behind the first reason (a deletion's announcement after the reason an
        app session ended) must not replace it."""
        if self.refused:
            return
        self.refused = True
        await self.send_error(error)
        await self.close(code=4000 + error.status_code)  # protocol.Close: 4401, 4404, 4429, 4503

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except broadcast.LAYER_ERRORS as error:
            # The channel layer went away (Redis restarting): this connection can hear nothing
            # more. Close it as unavailable for now (4503), so that its client reconnects and
            # resumes from the log once the layer is back.
            logger.warning("the channel layer failed (%s); closing a connection so that it reconnects", error)
            self.stop_tasks()
            await send({"type": "websocket.close", "code": int(protocol.Close.UNAVAILABLE)})
        finally:
            await limits.release(getattr(self, "channel_name", ""))  # however the connection ended
            metrics.connection_closed(getattr(self, "counted_as", None))
            if self.app_viewer:
                await presence.left(self.document, self.channel_name)

    async def dispatch(self, message) -> None:
        # Channels closes stale database connections before every handler, on the one thread all
        # database work shares, so each message would wait behind every connection's queued
        # transactions. This consumer's parts do their database work through
        # database_sync_to_async, which closes them itself; relaying a change needs no database.
        if self.refused and message["type"] != "websocket.disconnect":
            return  # closing: the client was told why
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    async def disconnect(self, code: int) -> None:
        self.stop_tasks()
        if hasattr(self, "membership"):
            await self.membership.leave()

    def stop_tasks(self) -> None:
        """The connection is over: stop what runs beside its handlers."""
        for part in ("access", "writes", "views", "membership"):
            if hasattr(self, part):
                getattr(self, part).stop()

    async def layer_lost(self) -> None:
        """The channel layer no longer delivers to this connection: close it so that it reconnects."""
        self.stop_tasks()
        await self.close(code=int(protocol.Close.UNAVAILABLE))

    async def receive(self, text_data=None, bytes_data=None) -> None:
        try:
            message, buffers = protocol.decode(bytes_data if bytes_data is not None else text_data or "",
                                               sender=protocol.CLIENT, max_size=settings.BOKEHSITE_MAX_BODY_BYTES)
        except protocol.ProtocolError as e:
            await self.send_error(ApiError(e.detail, code=e.code, field=e.field), e.id)
            return
        async with self.answering_errors(getattr(message, "id", None)):
            await self.handlers[type(message)](message, buffers)

    @contextlib.asynccontextmanager
    async def answering_errors(self, request_id):
        """Answer a request that fails with an error message; the connection stays open."""
        try:
            yield
        except Exception as e:
            if (error := errors.from_exception(e)) is not None:
                await self.send_error(error, request_id)
                return
            logger.exception("websocket message failed")
            await self.send_error(errors.ServerFault("the server failed to handle the message; the error is logged"),
                                  request_id)

    # --- what clients send -----------------------------------------------------------------

    async def on_sync(self, message: protocol.Sync, buffers: list[Buffer]) -> None:
        """The client has ``version`` (or nothing: null); send it what it misses."""
        await self.flow.sync(message.version, self.log)
        await self.catch_up()

    async def on_applied(self, message: protocol.Applied, buffers: list[Buffer]) -> None:
        if self.flow.confirmed(message.version):
            await self.catch_up()

    async def on_patch(self, message: protocol.Patch, buffers: list[Buffer]) -> None:
        if self.access.role != "write":
            raise ReadOnly("this connection may view the document but not change it")
        self.writes.submit(message.id, writes.patch_request(message, buffers, user=self.scope["user"],
                                                            origin=self.channel_name))

    async def on_ping(self, message: protocol.Ping, buffers: list[Buffer]) -> None:
        await self.send_message(protocol.Pong(message.id))

    async def on_view(self, message: protocol.View, buffers: list[Buffer]) -> None:
        """A view of a dataset-backed source for this connection alone (``streaming.view_requests``)."""
        dataset_id = await self.views.request(message)
        # To hear of rows appended to its dataset, or of its deletion.
        await self.membership.join(broadcast.dataset_group_name(dataset_id))

    # --- what the channel layer sends --------------------------------------------------------

    async def document_changed(self, event) -> None:
        self.views.forget()  # a source's mark may have changed
        frame = self.flow.changed(event["start"], event["version"], event["origins"], event["frame"])
        if frame is not None:
            await self.send(bytes_data=frame)
        elif self.flow.due():
            async with self.keeping_up():
                await self.catch_up()
        else:
            return
        metrics.relayed(event.get("committed"))

    async def access_changed(self, event) -> None:
        """Something that grants access changed: check this connection's again."""
        self.access.sessions_ended(event.get("sessions", ()))
        await self.recheck()

    async def document_ended(self, event) -> None:
        """The document is ending on purpose (its app session ended): say why, and close."""
        await self.refuse(DocumentNotFound(str(event["reason"])))

    async def dataset_appended(self, event) -> None:
        await self.views.rows_appended(event["dataset"], event["old_length"])

    async def dataset_removed(self, event) -> None:
        self.views.forget(event["dataset"])

    async def connection_tick(self, event) -> None:
        """A tick came back (``broadcast.Membership``): catch up if the stored version is past
        what this connection was sent. A layer drops messages (over capacity, or while it
        restarts), and a dropped last change would otherwise wait for the next one."""
        self.membership.heard_tick()
        async with self.keeping_up():
            if self.flow.unsure() and self.flow.stored(await self.log.stored_version()):
                await self.catch_up()

    # --- helpers -------------------------------------------------------------------------------

    async def recheck(self) -> None:
        """Check access as it is now: a new role is announced, no access closes the connection."""
        try:
            await self.access.recheck(self.checked)
        except ApiError as e:
            await self.refuse(e)

    async def checked(self, role_changed: bool) -> None:
        self.views.forget()  # what the sources it views are backed by is looked up again too
        if role_changed:
            await self.send_message(protocol.Role(self.access.role))

    async def catch_up(self) -> None:
        """Send everything after what the client was sent, in one frame, or a snapshot."""
        if (frame := await self.flow.catch_up(self.log)) is not None:
            await self.send(bytes_data=frame)

    @contextlib.asynccontextmanager
    async def keeping_up(self):
        """Reading the log for what the channel layer announced: a document deleted meanwhile
        closes the connection (as the deletion's own announcement will); a database that does
        not answer is tried again at the next change."""
        try:
            yield
        except DocumentNotFound as e:
            await self.refuse(e)
        except Exception as e:
            if not isinstance(errors.from_exception(e), errors.Unavailable):
                raise
            self.flow.behind = True
            logger.warning("a connection could not read the log (%s); it tries again at the next change", e)

    async def send_message(self, message: protocol.Message, buffers: list[Buffer] = ()) -> None:
        frame = message.encode(buffers)
        if isinstance(frame, bytes):
            await self.send(bytes_data=frame)
        else:
            await self.send(text_data=frame)

    async def send_failure(self, error: BaseException, request_id) -> None:
        """Answer request ``request_id`` with what went wrong (the connection stays open)."""
        async with self.answering_errors(request_id):
            raise error

    async def send_error(self, error: ApiError, request_id=None) -> None:
        await self.send_message(protocol.Error.from_envelope(errors.envelope(error), request_id))

    async def stall(self, error: ApiError, request_id) -> None:
        """A change could not be stored for now: say so, and close (``streaming.writes``)."""
        await self.send_error(error, request_id)
        await self.refuse(error)
