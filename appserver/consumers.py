"""The control socket of an app host (``/ws/apphost/``), in whichever server process it
reached. It relays: new sessions to build (from any process's app page, through the channel
layer) and sessions to end, to the host; what the host built, to storage and back to the page
that waits for it. Every few seconds it renews the host's lease and ends the host's sessions that
have had no viewer for the unused-session lifetime.

Messages, JSON text unless said (``appserver.host`` is the other side):
    host -> server  hello {host, pid, machine, apps}; built (a bundle: {session, doc, page} and
                    its buffers); failed {session, error}; ended {session, reason} (the host
                    ended it: a callback ran too long); load {memory, accepting} (its resident
                    bytes, and whether it takes new sessions)
    server -> host  limits {memory, callback_timeout} (the reply to hello: bytes, CPU seconds;
                    0 for none); create {session, app, key, request};
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

logger = logging.getLogger("appserver")
db = database_sync_to_async
TICK = 1.0  # seconds between looks for unused sessions


class AppHostConsumer(AsyncWebsocketConsumer):
    host_id: uuid.UUID | None = None

    async def connect(self) -> None:
        if not hosts.is_host(self.scope):
            await self.close(code=int(protocol.Close.UNAUTHORIZED))
            return
        self.waiting: dict[str, str] = {}  # session id -> the reply channel of the page that waits
        self.keys: dict[str, str] = {}
        self.ticker: asyncio.Task[None] | None = None
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.ticker is not None:
            self.ticker.cancel()
        if self.host_id is None:
            return
        await db(hosts.disconnected)(self.host_id, self.channel_name)
        for session_id, reply in self.waiting.items():
            await dispatch.answer(reply, failed="the app host stopped while it built the session")
        # Its Python is gone with the socket: end its sessions, so that their pages say so.
        for session in await db(sessions.of_host)(self.host_id):
            await db(sessions.end)(session, reason=sessions.HOST_STOPPED)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if bytes_data is not None:
            payload, buffers = wire.unpack(bytes_data)
            await self.built(str(payload["session"]), payload["doc"], buffers, payload.get("page"))
            return
        message = json.loads(text_data)
        if message["type"] == "hello":
            host = await db(hosts.register)(message["host"], self.channel_name, pid=int(message["pid"]),
                                            machine=str(message["machine"]), apps=list(message["apps"]))
            self.host, self.host_id = host, host.id
            # The host has no settings of its own: it hears its limits here, before any session.
            await self.send_json({"type": "limits", "memory": settings.BOKEHSITE_APP_MEMORY_LIMIT * 2**20,
                                  "callback_timeout": settings.BOKEHSITE_APP_CALLBACK_TIMEOUT})
            self.ticker = asyncio.create_task(self.tick())
        elif message["type"] == "load":
            await db(hosts.load)(self.host_id, self.channel_name, memory=int(message["memory"]),
                                 accepting=bool(message["accepting"]))
        elif message["type"] == "ended":
            if (session := await db(sessions.running_on)(self.host_id, str(message["session"]))) is not None:
                await db(sessions.end)(session, reason=str(message["reason"]))
        elif message["type"] == "failed":
            session_id = str(message["session"])
            await db(sessions.discard)(session_id)
            self.keys.pop(session_id, None)
            if reply := self.waiting.pop(session_id, None):
                await dispatch.answer(reply, failed=str(message["error"]))

    async def built(self, session_id: str, doc_json, buffers, page: str | None) -> None:
        reply = self.waiting.pop(session_id, None)
        key = self.keys.pop(session_id, "")
        try:
            document = await db(sessions.store_built)(session_id, self.host, key, doc_json, buffers, page)
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
        self.waiting[event["session"]] = event["reply"]
        self.keys[event["session"]] = event["key"]
        await self.send_json({"type": "create", **{k: event[k] for k in ("session", "app", "key", "request")}})

    async def app_end(self, event) -> None:
        await self.send_json({"type": "end", "session": event["session"]})

    # --- helpers -------------------------------------------------------------------------------

    async def send_json(self, message) -> None:
        await self.send(text_data=json.dumps(message))

    async def tick(self) -> None:
        """Renew the host's lease, and end the sessions nobody uses any more, or whose host died."""
        while True:
            await asyncio.sleep(TICK)
            try:
                await db(hosts.renew)(self.host_id, self.channel_name)
                for session in await db(sessions.unused)(self.host_id):
                    await self.send_json({"type": "end", "session": str(session.id)})
                    await db(sessions.end)(session, reason=sessions.UNUSED)
                await db(sessions.end_orphans)()
            except Exception:
                logger.exception("looking after the sessions of app host %s failed; trying again", self.host_id)
