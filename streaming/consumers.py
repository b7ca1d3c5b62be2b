"""The websocket of one document: every viewer and client session of it connects here.

The consumer learns who the connection is (``streaming.auth``, ``documents.access``), relays
accepted changes in version order, and dispatches what the client sends (``bokehsite.protocol``)
through a table of handlers, as Bokeh's ``ProtocolHandler`` does. Changes go to
``streaming.batching``. It keeps no queue of its own: the event log is the queue. A client that
is more than ``BOKEHSITE_VIEWER_WINDOW`` versions ahead of what it has confirmed (``applied``)
receives nothing more until it catches up; then it gets everything it missed in one frame, read
from the log, or a snapshot when the log no longer holds it all. So a slow viewer never holds up
the producer or other viewers, and a connection's memory stays bounded whatever the rate.

Access is checked again whenever it may have changed (``access.changed``, from any process: a
token revoked, a user deactivated or logged out, the document's sharing changed), when what
identifies it expires, and at least every ``BOKEHSITE_ACCESS_RECHECK`` seconds in case an
announcement was lost: a connection that may now do less is told its new role, and one that may
do nothing is told why and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable

from bokeh.core.serialization import Buffer
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from bokehsite import errors, protocol
from bokehsite.errors import ApiError
from documents import access, services
from documents.changes import PatchRequest
from documents.exceptions import DocumentNotFound, HistoryTruncated
from documents.models import EventKind
from streaming import auth, batching, broadcast, limits, views

logger = logging.getLogger(__name__)
db = database_sync_to_async


class ReadOnly(errors.Forbidden):
    pass


# The stored version of each document, as this process last read it for its connections' ticks:
# one query a document each BOKEHSITE_GROUP_RENEW / 2 seconds, however many connections it has.
_stored_versions: dict = {}


async def stored_version(document) -> int:
    now = time.monotonic()
    read = _stored_versions.get(document.id)
    if read is None or now - read[0] >= settings.BOKEHSITE_GROUP_RENEW / 2:
        if len(_stored_versions) > 10_000:
            _stored_versions.clear()
        read = _stored_versions[document.id] = (now, await db(services.current_version)(document))
    return read[1]


class DocumentConsumer(AsyncWebsocketConsumer):
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
        self.session_ended = False  # its browser session was logged out
        try:
            self.document = await db(self.resolve_access)(again=False)
            await limits.acquire(self.scope, self.channel_name)  # past a connection limit: refused, 4429
        except Exception as e:
            if (error := errors.from_exception(e)) is None:
                raise
            await self.refuse(error)  # 4503 when the database is down: the client tries again
            return
        self.role = access.connection_role(self.document.role)
        self.groups_joined = [broadcast.group_name(self.document.id), *self.identity_groups()]
        self.synced = False
        self.sent = 0  # the version the client has been sent up to
        self.applied = 0  # the version the client says it has applied
        self.behind = False  # changes happened that the client has not been sent yet
        self.answering: set[asyncio.Task] = set()  # changes it sent, awaiting storage
        self.checking = self.recheck_wanted = False
        self.stalled = False  # a change could not be stored for now: closing, to be sent again
        self.tick_sent = self.tick_heard = False  # the layer's delivery to this connection, checked
        self.views = views.ConnectionViews(self.document, self.send_message, self.send_failure)
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        self.rechecking = asyncio.create_task(self.recheck_periodically())
        self.renewing = asyncio.create_task(self.renew_membership())
        version = await db(services.current_version)(self.document)
        await self.send_message(protocol.Hello(version, self.role, settings.BOKEHSITE_VIEWER_WINDOW,
                                               settings.BOKEHSITE_MAX_BODY_BYTES))

    def resolve_access(self, *, again: bool):
        """The document this connection follows, with ``.role`` as it is now; raises ApiError when
        refused. ``again``: identify the connection afresh, not from what it opened with."""
        if again:
            try:
                self.scope["user"]._wrapped = auth.identify(self.scope, session_ended=self.session_ended)
            except ApiError as e:
                self.scope["auth_error"] = e
        if error := self.scope.get("auth_error"):
            raise error
        caller = access.socket_caller(self.scope, self.scope["user"])
        return access.resolve(caller, self.scope["url_route"]["kwargs"]["pk"])

    def identity_groups(self) -> list[str]:
        """The groups told when this connection's identity changes (its user, or its frame's viewer)."""
        user = self.scope["user"]
        if user.is_authenticated:
            return [broadcast.user_group_name(user.pk)]
        grant = access.socket_caller(self.scope, user).grant
        return [broadcast.user_group_name(grant.user_id)] if grant and grant.user_id is not None else []

    async def refuse(self, error: ApiError) -> None:
        """Tell the client why it may not (or no longer) follow the document, and close."""
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

    async def dispatch(self, message) -> None:
        # Channels closes stale database connections before every handler, on the one thread all
        # database work shares, so each message would wait behind every connection's queued
        # transactions. This consumer does its database work through database_sync_to_async,
        # which closes them itself; relaying a change or reading the next one needs no database.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    async def disconnect(self, code: int) -> None:
        self.stop_tasks()
        with contextlib.suppress(*broadcast.LAYER_ERRORS):  # a layer that is down forgets them anyway
            for group in getattr(self, "groups_joined", ()):
                await self.channel_layer.group_discard(group, self.channel_name)

    def stop_tasks(self) -> None:
        """The connection is over: stop what runs beside its handlers."""
        batching.forget(self.channel_name)
        for task in getattr(self, "answering", ()):
            task.cancel()  # its change is still stored; there is no one left to tell
        for task in (getattr(self, "rechecking", None), getattr(self, "renewing", None)):
            if task is not None:
                task.cancel()
        if hasattr(self, "views"):
            self.views.stop()

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
        version = message.version
        if version is not None and version > await db(services.current_version)(self.document):
            version = None  # from the future (another server's data?): start over
        self.synced = True
        self.sent = self.applied = -1 if version is None else version
        await self.catch_up()

    async def on_applied(self, message: protocol.Applied, buffers: list[Buffer]) -> None:
        self.applied = max(self.applied, min(message.version, self.sent))
        if self.behind and self.has_room():
            await self.catch_up()

    async def on_patch(self, message: protocol.Patch, buffers: list[Buffer]) -> None:
        if self.role != "write":
            raise ReadOnly("this connection may view the document but not change it")
        request = PatchRequest(
            message.patch, buffers,
            author=self.scope["user"] if self.scope["user"].is_authenticated else None,
            origin=self.channel_name,
            key=message.key or "",
            base_version=message.base_version,
        )
        # Queued now, so that this connection's changes are stored in the order they came; the
        # answer is sent once it is stored, while the next messages are read.
        task = asyncio.create_task(self.answer(message.id, batching.submit(self.document, request)))
        self.answering.add(task)
        task.add_done_callback(self.answering.discard)

    async def answer(self, request_id, stored: asyncio.Future) -> None:
        async with self.answering_errors(request_id):
            try:
                change = await stored
            except Exception as e:
                if isinstance(error := errors.from_exception(e), errors.Unavailable):
                    # Not stored, and none of this connection's later changes will be until it
                    # reconnects and sends them again in order: say so once, and close (4503).
                    if not self.stalled:
                        self.stalled = True
                        await self.send_error(error, request_id)
                        await self.refuse(error)
                    return
                raise
            await self.send_message(protocol.Ack(request_id, change.version))

    async def on_ping(self, message: protocol.Ping, buffers: list[Buffer]) -> None:
        await self.send_message(protocol.Pong(message.id))

    async def on_view(self, message: protocol.View, buffers: list[Buffer]) -> None:
        """A view of a dataset-backed source for this connection alone (``streaming.views``)."""
        dataset_id = await self.views.request(message)
        group = broadcast.dataset_group_name(dataset_id)
        if group not in self.groups_joined:  # to hear of rows appended to it, or its deletion
            self.groups_joined.append(group)
            await self.channel_layer.group_add(group, self.channel_name)

    # --- what the channel layer sends --------------------------------------------------------

    async def document_changed(self, event) -> None:
        self.views.forget()  # a source's mark may have changed
        start, version = event["start"], event["version"]
        if not self.synced or version <= self.sent:
            return
        mine = [origin == self.channel_name for origin in event["origins"]]
        if (self.behind or start != self.sent or event["frame"] is None or not self.has_room()
                or (any(mine) and not all(mine))):
            # A gap, a replace, a slow client, or others' changes among its own: the log fills it in.
            self.behind = True
            if self.has_room():
                async with self.keeping_up():
                    await self.catch_up()
            return
        await self.send(bytes_data=protocol.own_frame(start, version) if all(mine) else event["frame"])
        self.sent = version

    async def access_changed(self, event) -> None:
        """Something that grants access changed: check this connection's again."""
        if self.scope.get("session") is not None and self.scope["session"].session_key in event.get("sessions", ()):
            self.session_ended = True
        await self.recheck()

    async def dataset_appended(self, event) -> None:
        await self.views.rows_appended(event["dataset"], event["old_length"])

    async def dataset_removed(self, event) -> None:
        self.views.forget(event["dataset"])

    # --- access --------------------------------------------------------------------------------

    async def recheck(self) -> None:
        """Check access as it is now: a new role is announced, no access closes the connection."""
        self.recheck_wanted = True
        if self.checking:
            return  # the check under way looks again once it is done
        self.checking = True
        try:
            while self.recheck_wanted:
                self.recheck_wanted = False
                try:
                    document = await db(self.resolve_access)(again=True)
                except ApiError as e:
                    await self.refuse(e)
                    return
                except (OperationalError, InterfaceError):
                    logger.warning("the database did not answer an access check; it is tried again")
                    return
                self.views.forget()  # and what the sources it views are backed by
                role = access.connection_role(document.role)
                if role != self.role:
                    self.role = role
                    await self.send_message(protocol.Role(role))
        finally:
            self.checking = False

    async def recheck_periodically(self) -> None:
        """What expires on its own (an API token, a session) sends no message: look again when it
        does, and, in case an announcement was lost, at least every BOKEHSITE_ACCESS_RECHECK
        seconds (spread out, so that connections opened together do not all look at once)."""
        while True:
            expires = await db(auth.credentials_expire)(self.scope)
            delay = settings.BOKEHSITE_ACCESS_RECHECK * random.uniform(0.5, 1.0)
            if expires is not None:
                delay = min(delay, max((expires - timezone.now()).total_seconds(), 0.0) + 0.05)
            await asyncio.sleep(delay)
            try:
                await self.recheck()
            except Exception:
                logger.exception("checking a connection's access failed")

    async def renew_membership(self) -> None:
        """Keep this connection's place in the channel layer, and check that the layer still
        delivers to it.

        Membership of a group lapses after BOKEHSITE_GROUP_EXPIRY seconds, so that the channels of
        a process that died leave it; a live connection renews its own every
        BOKEHSITE_GROUP_RENEW seconds, which also restores them soon after a Redis that keeps
        nothing restarts. Each time it also sends itself a tick through the layer. A tick that
        has not come back by the next one but one means the layer no longer delivers to this
        connection (it happens after a Redis restart): it is closed (4503), and its client
        reconnects and resumes from the log."""
        unanswered = 0
        await asyncio.sleep(settings.BOKEHSITE_GROUP_RENEW * random.random())  # connections opened together spread out
        while True:
            await asyncio.sleep(settings.BOKEHSITE_GROUP_RENEW)
            if self.tick_sent and not self.tick_heard:
                unanswered += 1
                if unanswered >= 2:
                    logger.warning("the channel layer stopped delivering to a connection; closing it so that it reconnects")
                    self.stop_tasks()
                    await self.close(code=int(protocol.Close.UNAVAILABLE))
                    return
            else:
                unanswered = 0
            try:
                for group in self.groups_joined:
                    await self.channel_layer.group_add(group, self.channel_name)
                self.tick_sent, self.tick_heard = True, False
                await self.channel_layer.send(self.channel_name, {"type": "connection.tick"})
            except ChannelFull:
                self.tick_heard = True  # messages are queued for it: it is hearing from the layer
            except broadcast.LAYER_ERRORS as error:
                logger.warning("renewing a connection's groups failed (%s); it tries again", error)

    async def connection_tick(self, event) -> None:
        """A tick came back: catch up if the stored version is past what this connection was
        sent. A layer drops messages (over capacity, or while it restarts), and a dropped last
        change would otherwise wait for the next one."""
        self.tick_heard = True
        async with self.keeping_up():
            if self.synced and not self.behind and await stored_version(self.document) > self.sent:
                self.behind = True
                if self.has_room():
                    await self.catch_up()

    @contextlib.asynccontextmanager
    async def keeping_up(self):
        """Reading the log for what the channel layer announced: a document deleted meanwhile
        closes the connection (as the deletion's own announcement will); a database that does
        not answer is tried again at the next change or tick."""
        try:
            yield
        except DocumentNotFound as e:
            await self.refuse(e)
        except Exception as e:
            if not isinstance(errors.from_exception(e), errors.Unavailable):
                raise
            self.behind = True
            logger.warning("a connection could not read the log (%s); it tries again at the next change", e)

    # --- helpers -------------------------------------------------------------------------------

    def has_room(self) -> bool:
        return self.sent - self.applied < settings.BOKEHSITE_VIEWER_WINDOW

    async def catch_up(self) -> None:
        """Send everything after ``self.sent`` in one frame, or a snapshot."""
        self.behind = False
        limit = settings.BOKEHSITE_CATCHUP_LIMIT
        try:
            events = await db(services.events_after)(self.document, self.sent, limit + 1) if self.sent >= 0 else None
        except HistoryTruncated:
            events = None
        if events is None or len(events) > limit or any(e.kind == EventKind.REPLACE for e in events):
            version, bundle = await db(services.document_bundle)(self.document)
            await self.send(bytes_data=protocol.Snapshot.frame(version, bundle))
            self.sent = self.applied = version
            return
        if not events:
            return
        items, buffers = [], []
        for event in events:
            if event.origin == self.channel_name:
                items.append(protocol.own_item(event.version))
            else:
                items.append(protocol.item(event.version, event.patch, event.key))
                buffers.extend(event.buffer_list())
        await self.send(bytes_data=protocol.Patches(self.sent, events[-1].version, items).encode(buffers))
        self.sent = events[-1].version

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
