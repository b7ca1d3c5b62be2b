"""An app host: the process that runs apps' Python, apart from the server's processes.

``python -m appserver.host SERVER_URL``, with the apps in ``BOKEHSITE_APPS`` and the host key in
``BOKEHSITE_APP_HOST_KEY`` (``appserver.supervisor`` starts it so). It is a client of the server,
as a script is: a control socket (``/ws/apphost/``, ``appserver.consumers`` is the other side)
tells it which sessions to build and end; each session then follows its stored document over an
ordinary document websocket (``appserver.running``). No Django here.

It runs each app's ``on_server_loaded`` hook when it starts, and ``on_server_unloaded`` when it
stops; a host whose server process is gone stops too.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import json
import logging
import os
import signal
import socket
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import websockets

from appserver.loading import AppLoadError, Registry, app_specs
from appserver.running import AppServerContext, BuildFailed, RunningSession, SessionRequest
from bokehsite import protocol, wire

logger = logging.getLogger("appserver")
RECONNECT_PAUSE = 0.5


class Host:
    def __init__(self, server_url: str, key: str, registry: Registry):
        self.server_url = server_url.rstrip("/") + "/"
        self.control_url = "ws" + self.server_url[len("http"):] + "ws/apphost/"
        self.key = key
        self.registry = registry
        self.id = str(uuid.uuid4())
        self.contexts = {spec.name: AppServerContext() for spec in registry.specs}
        self.running: dict[str, RunningSession] = {}
        self.building: set[str] = set()
        # What was built and sent, until the server says it stored it: sent again if the server
        # process that got it died first (the page asks again, through the channel layer).
        self.unstored: dict[str, bytes] = {}
        self.socket: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        # Ending sessions (their hooks, their connections closing) waits in threads of its own:
        # many ending at once never hold up building new ones.
        self._ending = ThreadPoolExecutor(4, thread_name_prefix="ending")
        self._giving_back: asyncio.Task[None] | None = None
        self.parent = os.getppid()

    # --- lifetime ----------------------------------------------------------------------------------

    def load(self) -> None:
        for spec in self.registry.specs:
            try:
                self.registry.application(spec.name).on_server_loaded(self.contexts[spec.name])
            except AppLoadError as e:
                logger.error("app %s cannot be loaded: %s", spec.name, e)
            except Exception:
                logger.exception("app %s: on_server_loaded failed", spec.name)

    def unload(self) -> None:
        for session in list(self.running.values()):
            session.end()
        for spec in self.registry.specs:
            try:
                self.registry.application(spec.name).on_server_unloaded(self.contexts[spec.name])
            except Exception:
                logger.exception("app %s: on_server_unloaded failed", spec.name)

    async def run(self) -> None:
        """Stay connected to the server (again after each drop) while the server process lives."""
        self.loop = asyncio.get_running_loop()
        while os.getppid() == self.parent:
            try:
                async with websockets.connect(self.control_url, additional_headers={protocol.APP_HOST_HEADER: self.key},
                                              max_size=None) as ws:
                    self.socket = ws
                    await self.send({"type": "hello", "host": self.id, "pid": os.getpid(),
                                     "machine": socket.gethostname(), "apps": [s.name for s in self.registry.specs]})
                    async for raw in ws:
                        message = json.loads(raw)
                        asyncio.create_task(self.handle(message))
            except (OSError, websockets.exceptions.WebSocketException) as e:
                logger.info("the app host's connection to the server dropped (%s); connecting again", e)
            self.socket = None
            await asyncio.sleep(RECONNECT_PAUSE)

    async def send(self, message: dict[str, Any] | bytes) -> None:
        if self.socket is not None:
            await self.socket.send(message if isinstance(message, bytes) else json.dumps(message))

    # --- what the server asks ---------------------------------------------------------------------

    async def handle(self, message: dict[str, Any]) -> None:
        try:
            if message["type"] == "create":
                await self.create(message)
            elif message["type"] == "stored":
                session = self.running.get(message["session"])
                if self.unstored.pop(message["session"], None) is not None and session is not None:
                    await asyncio.to_thread(session.attach, self.server_url, message["document"],
                                            int(message["version"]))
            elif message["type"] == "end":
                self.unstored.pop(message["session"], None)
                if (session := self.running.pop(message["session"], None)) is not None:
                    await self.ending(session.end)
                    self.contexts[session.app_name].running.pop(session.id, None)
                    del session
                    self.give_back_soon()
        except Exception:
            logger.exception("the app host failed to handle %s", message.get("type"))

    def give_back_soon(self) -> None:
        """Give back what ended sessions held, once for all that end within a second: a full
        collection holds every thread, and twenty sessions ending together would pay twenty."""
        if self._giving_back is None or self._giving_back.done():
            self._giving_back = asyncio.create_task(self._give_back_after(1.0))

    async def _give_back_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self.ending(give_back_memory)

    async def ending(self, func: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(self._ending, func)

    def gone(self, session: RunningSession) -> None:
        """The server no longer has the session's document (it ended while this process did not
        hear): end it here too. Called from the session's connection thread."""
        assert self.loop is not None
        self.loop.call_soon_threadsafe(lambda: asyncio.create_task(self.handle({"type": "end", "session": session.id})))

    async def create(self, message: dict[str, Any]) -> None:
        session_id = message["session"]
        if session_id in self.building or session_id in self.running:  # asked again
            if (bundle := self.unstored.get(session_id)) is not None:
                await self.send(bundle)
            return
        self.building.add(session_id)
        try:
            await self._create(message)
        finally:
            self.building.discard(session_id)

    async def _create(self, message: dict[str, Any]) -> None:
        name, session_id, reply = message["app"], message["session"], message["reply"]
        try:
            app = await asyncio.to_thread(self.registry.application, name)
        except (AppLoadError, KeyError) as e:
            await self.send({"type": "failed", "session": session_id, "reply": reply, "error": str(e)})
            return
        session = RunningSession(app, name, self.contexts[name], session_id, SessionRequest.from_json(message["request"]),
                                 message["key"], self.key, gone=self.gone)
        await asyncio.to_thread(session.start)
        try:
            bundle = await asyncio.to_thread(session.build)
        except Exception as e:
            detail = e.detail if isinstance(e, BuildFailed) else ""
            logger.error("app %s failed to build a session: %s\n%s", name, e, detail, exc_info=not detail)
            await asyncio.to_thread(session.end)
            await self.send({"type": "failed", "session": session_id, "reply": reply,
                             "error": f"{type(e).__name__}: {e}" if not isinstance(e, BuildFailed) else str(e)})
            return
        self.running[session_id] = session
        self.contexts[name].running[session_id] = session
        built = self.unstored[session_id] = wire.update_payload(bundle, type="built", session=session_id,
                                                                key=message["key"], reply=reply)
        await self.send(built)


def give_back_memory() -> None:
    """Collect what ended sessions left, and hand the freed heap back to the system (glibc keeps
    it otherwise, and a process that served many sessions would stay as large as at its peak)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m appserver.host SERVER_URL", file=sys.stderr)
        return 2
    # A session's thread is named after its app (app-NAME-ID): whatever its callbacks log, and
    # what tornado logs of them, names the app.
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(levelname)s %(threadName)s %(name)s: %(message)s")
    paths = [p for p in os.environ.get("BOKEHSITE_APPS", "").split(os.pathsep) if p]
    try:
        registry = Registry(app_specs(paths), dev=os.environ.get("BOKEHSITE_APP_DEV") == "1")
    except AppLoadError as e:
        print(f"app host: {e}", file=sys.stderr)
        return 2
    host = Host(args[0], os.environ["BOKEHSITE_APP_HOST_KEY"], registry)
    host.load()
    # What starting made (Bokeh, the apps' modules) lives as long as the process: frozen, the
    # full collections that ending sessions run (Bokeh's Document.destroy runs one) skip it.
    gc.collect()
    gc.freeze()
    loop = asyncio.new_event_loop()
    task = loop.create_task(host.run())
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        loop.run_until_complete(task)
    except asyncio.CancelledError:
        pass
    finally:
        host.unload()
    return 0


if __name__ == "__main__":
    sys.exit(main())
