"""An app host: the process that runs apps' Python, apart from the server's processes.

``python -m appserver.host SERVER_URL``, with the apps in ``BOKEHSITE_APPS`` and the host key in
``BOKEHSITE_APP_HOST_KEY`` (``appserver.supervisor`` starts it so). It is a client of the server,
as a script is: a control socket (``/ws/apphost/``, ``appserver.consumers`` is the other side)
tells it which sessions to build and end; each session then follows its stored document over an
ordinary document websocket (``appserver.running``). No Django here.

It runs each app's ``on_server_loaded`` hook when it starts, and ``on_server_unloaded`` when it
stops; a host whose server process is gone stops too.

Its limits come from the server, in the reply to its hello (so that the server's settings are
read in one place, however the host was started): past its memory limit, or with a callback that
could not be stopped, it takes no new sessions and, once its last session has ended, exits with
status 0 so that a fresh process takes its place ("recycled"). A callback that runs past the CPU
time limit ends its session (``appserver.limits``).
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

from appserver.limits import CallbackClock, CallbackTimedOut, Watchdog, resident_memory, timed_out_reason
from appserver.loading import AppLoadError, Registry, app_specs
from appserver.running import AppServerContext, BuildFailed, RunningSession, SessionRequest
from bokehsite import protocol, wire

logger = logging.getLogger("appserver")
RECONNECT_PAUSE = 0.5
MEMORY_EVERY = 1.0  # seconds between looks at the process's memory
MEMORY_STEP = 8 * 2**20  # bytes the memory moves before the server hears of it again
STUCK = ("a callback of this app ran for more than {limit:g} s of CPU time and could not be stopped; "
         "the session was ended")


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
        self.replies: dict[str, str] = {}  # where the answer of each session being built goes
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
        # The limits (the server's reply to hello): bytes of resident memory and CPU seconds per
        # callback, 0 for none.
        self.memory_limit = 0
        self.callback_timeout = 0.0
        self.clocks: dict[str, CallbackClock] = {}  # sessions being built or running
        self.watchdog: Watchdog | None = None
        self.accepting = True  # False once full: recycled when its last session has ended
        self.served = 0  # sessions it started to build
        self.building: set[str] = set()
        self.replies: dict[str, str] = {}  # where the answer of each session being built goes
        self.recycling = False
        self._reported: tuple[int, bool] | None = None
        self.main_task: asyncio.Task[None] | None = None  # run(): recycling cancels it, as a signal does

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
        if self.watchdog is not None:
            self.watchdog.stop()
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
            if message["type"] == "limits":
                self.set_limits(int(message["memory"]), float(message["callback_timeout"]))
                self._reported = None  # the server knows this host now: it hears its load afresh
            elif message["type"] == "create":
                await self.create(message)
            elif message["type"] == "stored":
                session = self.running.get(message["session"])
                if self.unstored.pop(message["session"], None) is not None and session is not None:
                    await asyncio.to_thread(session.attach, self.server_url, message["document"],
                                            int(message["version"]))
            elif message["type"] == "end":
                self.unstored.pop(message["session"], None)
                await self.end(message["session"])
        except Exception:
            logger.exception("the app host failed to handle %s", message.get("type"))

    async def end(self, session_id: str, reason: str | None = None) -> None:
        """End a session here; with a ``reason``, the host ended it, and tells the server why."""
        self.clocks.pop(session_id, None)
        if (session := self.running.pop(session_id, None)) is None:
            return
        if reason is not None:
            await self.send({"type": "ended", "session": session_id, "reason": reason})
        await self.ending(session.end)
        self.contexts[session.app_name].running.pop(session.id, None)
        del session
        self.give_back_soon()
        self.recycle_when_idle()

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
        self.replies[session_id] = message["reply"]
        try:
            await self._create(message)
        finally:
            self.building.discard(session_id)
            self.replies.pop(session_id, None)

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
        self.clocks[session_id] = session.clock
        self.building.add(session_id)
        self.served += 1
        try:
            bundle = await asyncio.to_thread(session.build)
        except (Exception, CallbackTimedOut) as e:
            self.clocks.pop(session_id, None)
            if isinstance(e, CallbackTimedOut):
                error = timed_out_reason(self.callback_timeout)
                logger.warning("app %s: building a session took more than %g s of CPU time; it was stopped",
                               name, self.callback_timeout)
            else:
                detail = e.detail if isinstance(e, BuildFailed) else ""
                logger.error("app %s failed to build a session: %s\n%s", name, e, detail, exc_info=not detail)
                error = str(e) if isinstance(e, BuildFailed) else f"{type(e).__name__}: {e}"
            await asyncio.to_thread(session.end)
            await self.send({"type": "failed", "session": session_id, "reply": reply, "error": error})
            return
        finally:
            self.building.discard(session_id)
        self.running[session_id] = session
        self.contexts[name].running[session_id] = session
        built = self.unstored[session_id] = wire.update_payload(bundle, type="built", session=session_id,
                                                                key=message["key"], reply=reply)
        await self.send(built)
        self.recycle_when_idle()  # full meanwhile, and a session that failed was the last

    # --- limits ----------------------------------------------------------------------------------

    def set_limits(self, memory: int, callback_timeout: float) -> None:
        self.memory_limit, self.callback_timeout = memory, callback_timeout
        if self.watchdog is not None:
            self.watchdog.limit = callback_timeout or float("inf")
        elif callback_timeout:
            self.watchdog = Watchdog(callback_timeout, lambda: dict(self.clocks),
                                     timed_out=lambda key: self._from_watchdog(self.timed_out, key),
                                     stuck=lambda key: self._from_watchdog(self.stuck, key))
            self.watchdog.start()

    def _from_watchdog(self, handler: Any, session_id: str) -> None:
        self.clocks.pop(session_id, None)  # watched no more
        assert self.loop is not None
        self.loop.call_soon_threadsafe(lambda: asyncio.create_task(handler(session_id)))

    async def timed_out(self, session_id: str) -> None:
        """A callback ran past the CPU time limit and was stopped: its session ends, with the reason
        on its page (a session still being built fails instead, in ``create``)."""
        if (session := self.running.get(session_id)) is not None:
            logger.warning("app %s: a callback of session %s ran for more than %g s of CPU time; the session is ended",
                           session.app_name, session_id, self.callback_timeout)
            await self.end(session_id, timed_out_reason(self.callback_timeout))

    async def stuck(self, session_id: str) -> None:
        """A callback past the CPU time limit did not stop (it runs code that never returns to
        Python, or swallows every exception): its thread cannot be ended. The server ends its
        session; this process takes no more and is recycled once its other sessions end."""
        session = self.running.pop(session_id, None)
        logger.error("a callback of session %s ran for more than %g s of CPU time and could not be stopped",
                     session_id, self.callback_timeout)
        reason = STUCK.format(limit=self.callback_timeout)
        if session is not None:
            self.contexts[session.app_name].running.pop(session_id, None)
            await self.send({"type": "ended", "session": session_id, "reason": reason})
        elif session_id in self.building:  # its build never returns
            self.building.discard(session_id)
            await self.send({"type": "failed", "session": session_id, "reply": self.replies.get(session_id), "error": reason})
        await self.stop_taking("a callback could not be stopped")

    async def watch_memory(self) -> None:
        """Report the process's resident memory to the server when it moves; past the limit,
        take no more sessions."""
        while True:
            memory = resident_memory()
            if self.memory_limit and memory > self.memory_limit and self.accepting:
                await self.stop_taking(f"it uses {memory / 2**20:.0f} MiB, over its limit of "
                                       f"{self.memory_limit / 2**20:.0f} MiB (BOKEHSITE_APP_MEMORY_LIMIT)",
                                       memory=memory)
            reported = self._reported
            if self.socket is not None and (reported is None or reported[1] != self.accepting
                                            or abs(reported[0] - memory) >= MEMORY_STEP):
                await self.report_load(memory)
            await asyncio.sleep(MEMORY_EVERY)

    async def report_load(self, memory: int | None = None) -> None:
        memory = resident_memory() if memory is None else memory
        self._reported = (memory, self.accepting)
        await self.send({"type": "load", "memory": memory, "accepting": self.accepting})

    async def stop_taking(self, why: str, memory: int | None = None) -> None:
        """Take no new sessions from now on; recycle once the last running one has ended."""
        if not self.accepting:
            return
        self.accepting = False
        if self.served:
            logger.warning("this app process (pid %s) takes no new sessions: %s; it is recycled once its %d "
                           "running session(s) end", os.getpid(), why, len(self.running))
        else:
            logger.error("this app process (pid %s) takes no sessions: %s before running any; raise the limit",
                         os.getpid(), why)
        if self.socket is not None:
            await self.report_load(memory)
        self.recycle_when_idle()

    def recycle_when_idle(self) -> None:
        """Full, with no session left (and having run some: one full from the start would only
        start again as full): exit, so that a fresh process takes this one's place."""
        if self.accepting or self.running or self.building or not self.served or self.recycling:
            return
        self.recycling = True
        logger.warning("this app process (pid %s) is recycled: it was full and its last session has ended; "
                       "a fresh one starts in its place", os.getpid())
        if self.main_task is not None:
            self.main_task.cancel()


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
    task = host.main_task = loop.create_task(host.run())
    memory = loop.create_task(host.watch_memory())
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        loop.run_until_complete(task)
    except asyncio.CancelledError:
        pass
    finally:
        memory.cancel()
        loop.run_until_complete(asyncio.wait([memory]))
        host.unload()
    if host.recycling:
        # A thread stuck in a callback would hold up the interpreter's exit (waiting for
        # threads); nothing is left to run or save.
        logging.shutdown()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
