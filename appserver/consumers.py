"""The control socket of an app host (``/ws/apphost/``), in whichever server process it
reached. It relays: new sessions to build (from any process's app page, through the channel
layer) and sessions to end, to the host; what the host built, to storage and back to the page
that waits for it. Every few seconds it renews the host's lease and ends the host's sessions that
have had no viewer for the unused-session lifetime.

A host whose control socket closes is not taken for dead: it connects again, through any server
process, and its sessions go on. Its sessions end only if its lease lapses (it died), and the
consumer answers nothing of its own: what a page waits for travels in the messages (``reply``).

Messages, JSON text unless said (``appserver.host`` is the other side):
    host -> server  hello {host, pid, machine, apps}; built (a bundle: {session, key, reply, doc,
                    page} and its buffers); failed {session, reply, error}; ended {session,
                    reason} (the host ended it: a callback ran too long); load {memory, accepting}
                    (its resident bytes, and whether it takes new sessions)
    server -> host  limits {memory, callback_timeout} (the reply to hello: bytes, CPU seconds;
                    0 for none); create {session, app, key, request, reply};
                    stored {session, document, version}; end {session}
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from appserver import dispatch, hosts, sessions
from appserver.exceptions import NoSuchSession
from bokehsite import protocol, wire
from streaming import broadcast

logger = logging.getLogger("appserver")
db = database_sync_to_async


def db_now(func):
    """``func`` on a database thread of its own, not behind the queue of stored changes on the
    shared one: a host's lease must not lapse because the server is busy."""
    return database_sync_to_async(func, thread_sensitive=False)


TICK = 1.0  # seconds between looks for unused sessions


class AppHostConsumer(AsyncWebsocketConsumer):
    host_id: uuid.UUID | None = None
    ticker: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        if not hosts.is_host(self.scope):
            await self.close(code=int(protocol.Close.UNAUTHORIZED))
            return
        await self.accept()

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except broadcast.LAYER_ERRORS as error:
            # The channel layer went away (Redis restarting): nothing reaches this socket any
            # more. Closing it makes the host connect again, and be found where it is then.
            logger.warning("the channel layer failed (%s); closing an app host's control socket", error)
            if self.ticker is not None:
                self.ticker.cancel()
            await send({"type": "websocket.close", "code": int(protocol.Close.UNAVAILABLE)})

    async def disconnect(self, code: int) -> None:
        if self.ticker is not None:
            self.ticker.cancel()
        if self.host_id is not None:
            await db(hosts.disconnected)(self.host_id, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if bytes_data is not None:
            payload, buffers = wire.unpack(bytes_data)
            await self.built(payload, buffers)
            return
        message = json.loads(text_data)
        if message["type"] == "hello":
            host = await db_now(hosts.register)(message["host"], self.channel_name, pid=int(message["pid"]),
                                                machine=str(message["machine"]), apps=list(message["apps"]))
            self.host, self.host_id = host, host.id
            # The host has no settings of its own: it hears its limits here, before any session.
            await self.send_json({"type": "limits", "memory": settings.BOKEHSITE_APP_MEMORY_LIMIT * 2**20,
                                  "callback_timeout": settings.BOKEHSITE_APP_CALLBACK_TIMEOUT})
            if self.ticker is None:
                self.ticker = asyncio.create_task(self.tick())
        elif message["type"] == "load":
            await db(hosts.load)(self.host_id, self.channel_name, memory=int(message["memory"]),
                                 accepting=bool(message["accepting"]))
        elif message["type"] == "ended":
            if (session := await db(sessions.running_on)(self.host_id, str(message["session"]))) is not None:
                await db(sessions.end)(session, reason=str(message["reason"]))
        elif message["type"] == "failed":
            await db(sessions.discard)(str(message["session"]))
            if message.get("reply"):
                await dispatch.answer(message["reply"], failed=str(message["error"]))

    async def built(self, payload, buffers) -> None:
        session_id, reply = str(payload["session"]), payload.get("reply")
        try:
            document = await db(sessions.store_built)(session_id, self.host, str(payload["key"]), payload["doc"],
                                                      buffers, payload.get("page"))
        except Exception as e:
            if not isinstance(e, NoSuchSession):
                logger.exception("storing the document of a session of %s failed", self.host)
            await self.send_json({"type": "end", "session": session_id})
            if reply:
                await dispatch.answer(reply, failed=f"the session's document could not be stored: {e}")
            return
        await self.send_json({"type": "stored", "session": session_id, "document": str(document.id),
                              "version": document.version})
        if reply:
            await dispatch.answer(reply, document=str(document.id))

    # --- from the channel layer ----------------------------------------------------------------

    async def app_create(self, event) -> None:
        """A page asks for a new session of an app this host runs."""
        await self.send_json({"type": "create", **{k: event[k] for k in ("session", "app", "key", "request", "reply")}})

    async def app_end(self, event) -> None:
        await self.send_json({"type": "end", "session": event["session"]})

    # --- helpers -------------------------------------------------------------------------------

    async def send_json(self, message) -> None:
        await self.send(text_data=json.dumps(message))

    async def tick(self) -> None:
        """Renew the host's lease each second, and end the sessions nobody uses any more, or whose
        host died. Renewing never waits for the looking after, which queues behind stored
        changes on a busy server: a lease that lapsed would end every session of a live host."""
        looking_after: asyncio.Task[None] | None = None
        try:
            while True:
                await asyncio.sleep(TICK)
                try:
                    await db_now(hosts.renew)(self.host_id, self.channel_name)
                except Exception:
                    logger.exception("renewing the lease of app host %s failed; trying again", self.host_id)
                if looking_after is None or looking_after.done():
                    looking_after = asyncio.create_task(self.look_after_sessions())
        finally:
            if looking_after is not None:
                looking_after.cancel()

    async def look_after_sessions(self) -> None:
        try:
            for session in await db(sessions.unused)(self.host_id):
                await self.send_json({"type": "end", "session": str(session.id)})
                await db(sessions.end)(session, reason=sessions.UNUSED)
            await db(sessions.end_orphans)()
        except Exception:
            logger.exception("looking after the sessions of app host %s failed; trying again", self.host_id)
