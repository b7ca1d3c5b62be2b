"""One app session inside an app host: Bokeh builds its document, and Bokeh's own
``ServerSession`` runs its callbacks, exactly as under ``bokeh serve``; a ``DocumentSync`` keeps
the document in step with the server, where the viewer's browser changes it.

Each session has a thread of its own with its own event loop (a tornado ``IOLoop``): a callback
that blocks holds up only its session. Everything that touches the document runs there: the
build, periodic and timeout callbacks, and the browser's changes, which arrive from the sync
and are applied under the session's document lock, as Bokeh's server applies a ``PATCH-DOC``.

``curdoc()`` is a module-global stack in Bokeh; it becomes one stack per thread here, so that a
callback of one session never sees another's document. Building a document still happens one at
a time in a process (Bokeh's handlers swap module globals while a script runs).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import bokeh.io.doc
from bokeh.application import Application
from bokeh.application.application import ServerContext
from bokeh.document import Document
from bokeh.server.contexts import BokehSessionContext
from bokeh.server.session import ServerSession
from tornado.ioloop import IOLoop

from appserver.limits import CallbackClock
from appserver.templates import template_page
from bokehsite import bokeh_speed, protocol, wire
from bokehsite.client.exceptions import BokehsiteError, ServerError
from bokehsite.client.sync import DocumentSync

logger = logging.getLogger("appserver")


class _ThreadDocs(threading.local):
    def __init__(self) -> None:
        self.stack: list[Any] = []


class _CurdocStack:
    """``bokeh.io.doc._PATCHED_CURDOCS``, one per thread (``patch_curdoc`` and ``curdoc`` use
    only these four operations)."""

    _docs = _ThreadDocs()

    def __len__(self) -> int:
        return len(self._docs.stack)

    def __getitem__(self, index: int) -> Any:
        return self._docs.stack[index]

    def append(self, doc: Any) -> None:
        self._docs.stack.append(doc)

    def pop(self) -> Any:
        return self._docs.stack.pop()


bokeh.io.doc._PATCHED_CURDOCS = _CurdocStack()  # type: ignore[assignment]
bokeh_speed.install()
_building = threading.Lock()


@dataclass
class SessionRequest:
    """What ``session_context.request`` shows an app: the page request's query ``arguments``
    (each a list of bytes, as tornado gives them), ``cookies`` and ``headers``, and ``user``, the
    logged-in viewer's name (None: anonymous)."""

    arguments: dict[str, list[bytes]] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    path: str = "/"
    uri: str = "/"
    remote_ip: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionRequest:
        arguments = {name: [value.encode() for value in values] for name, values in data.get("arguments", {}).items()}
        return cls(arguments, dict(data.get("cookies", {})), dict(data.get("headers", {})), data.get("user"),
                   data.get("path", "/"), data.get("uri", "/"), data.get("remote_ip"))


class AppServerContext(ServerContext):
    """An app's ``server_context`` in one host process: its live sessions there."""

    def __init__(self) -> None:
        self.running: dict[str, RunningSession] = {}

    @property
    def sessions(self) -> list[ServerSession]:
        return [s.session for s in list(self.running.values()) if s.session is not None]


class SessionLink:
    """How a session's ``DocumentSync`` reaches the server: the server's address, the session's
    key in the Authorization header (what lets it change the session's document), and the host
    key (its connection is the host's, not a viewer's)."""

    def __init__(self, root_url: str, key: str, host_key: str):
        self.root_url = root_url
        self._headers = {"Authorization": f"Key {key}", protocol.APP_HOST_HEADER: host_key}

    def auth_headers(self) -> dict[str, str]:
        return self._headers


class BuildFailed(Exception):
    """The app raised while its document was built; the message is the error, ``detail`` the traceback."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.detail = detail


class SessionStopped(Exception):
    """The session's thread is gone: nothing more runs on it."""


class RunningSession:
    """A session of ``app`` (named ``app_name``): ``build()`` makes its document, ``attach()``
    follows the stored document, ``end()`` runs the hooks and gives everything back."""

    def __init__(self, app: Application, app_name: str, server_context: AppServerContext, session_id: str,
                 request: SessionRequest, key: str, host_key: str, gone: Callable[[RunningSession], None]):
        self.app = app
        self.key = key  # what lets it change its document
        self.host_key = host_key
        self.gone = gone  # called when the server no longer has the session's document
        self.app_name = app_name
        self.server_context = server_context
        self.id = session_id
        self.request = request
        self.doc: Document | None = None
        self.context: BokehSessionContext | None = None
        self.session: ServerSession | None = None
        self.sync: DocumentSync | None = None
        self._loop: IOLoop | None = None
        self.clock = CallbackClock()  # how long its callback runs now (appserver.limits.Watchdog)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"app-{app_name}-{session_id[:8]}", daemon=True)

    # --- called from the host's thread ------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()

    def build(self) -> bytes:
        """Run the app for a new document; returns it as a bundle for the server to store.

        Raises:
            BuildFailed: the app raised (its traceback is logged).
        """
        return self._call(self._build)

    def attach(self, root_url: str, document_id: str, version: int) -> None:
        """Follow the document the server at ``root_url`` stored as ``document_id`` at
        ``version``, and start the session's callbacks."""
        self._call(lambda: self._attach(root_url, document_id, version))

    def end(self) -> None:
        """Stop the callbacks, run the destroy hooks, disconnect, and end the thread."""
        if self._loop is not None and self._thread.is_alive():
            try:
                self._call(self._end)
            except SessionStopped:
                pass  # its loop is gone: no hook can run any more
            finally:
                self._loop.add_callback(self._loop.stop)
                self._thread.join(10)

    # --- on the session's own thread ----------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(asyncio.SelectorEventLoop(self.clock.selector()))
        self._loop = IOLoop.current()
        self._ready.set()
        try:
            self._loop.start()
        finally:
            self._loop.close(all_fds=True)

    def _call(self, func: Callable[[], Any]) -> Any:
        """Run ``func`` (plain or async) on the session's loop, and wait for its result."""
        assert self._loop is not None
        done = threading.Event()
        result: dict[str, Any] = {}

        async def call() -> None:
            try:
                value = func()
                result["value"] = await value if asyncio.iscoroutine(value) else value
            except BaseException as e:
                result["error"] = e
            finally:
                done.set()

        self._loop.add_callback(call)
        while not done.wait(1.0):
            if not self._thread.is_alive():  # its loop stopped for good (a stopped callback unwound it)
                raise SessionStopped("the session's thread has stopped")
        if "error" in result:
            raise result["error"]
        return result["value"]

    async def _build(self) -> bytes:
        doc = self.doc = Document()
        context = self.context = BokehSessionContext(self.id, self.server_context, doc)  # type: ignore[arg-type]
        context._request = self.request  # type: ignore[assignment]
        doc._session_context = weakref.ref(context)
        try:
            await self.app.on_session_created(context)
        except Exception:
            logger.exception("app %s: on_session_created failed", self.app_name)
        with _building:  # the handlers say whether this build failed, until the next one
            self.app.initialize_document(doc)
            failed = [h for h in self.app.handlers if h.failed]
        if failed:
            raise BuildFailed(failed[0].error or "the app failed", failed[0].error_detail or "")
        serialized = wire.document_json(doc)
        if wire.nesting_exceeds(serialized.content, wire.MAX_NESTING):
            raise BuildFailed(f"the app's document nests more than {wire.MAX_NESTING} levels deep (models linked in a chain)")
        return wire.pack({"doc": serialized.content, "page": template_page(doc)}, serialized.buffers)

    def _attach(self, root_url: str, document_id: str, version: int) -> None:
        assert self.doc is not None and self.context is not None and self._loop is not None
        self.sync = DocumentSync(SessionLink(root_url, self.key, self.host_key), self.doc, document_id, version,  # type: ignore[arg-type]
                                 on_error=self._callback_failed, on_refused=lambda error: self.gone(self))
        self.session = ServerSession(self.id, self.doc, io_loop=self._loop)  # type: ignore[arg-type]
        self.context._set_session(self.session)
        loop, session = self._loop, self.session
        self.sync.follow_in(lambda apply: loop.add_callback(session.with_document_locked, apply))

    def _callback_failed(self, error: Exception) -> None:
        logger.error("app %s: a callback of session %s failed", self.app_name, self.id, exc_info=error)

    async def _end(self) -> None:
        if self.sync is not None:
            try:
                self.sync.close(timeout=1)  # what it has not sent by now goes to a document that is ending
            except BokehsiteError as e:
                if isinstance(e, ServerError) and e.code == "not_found":
                    # The server ended the session and deleted its document first: the changes
                    # still on their way had nowhere to go. That is how such a session ends.
                    logger.debug("app %s: session %s's document was already gone: %s", self.app_name, self.id, e)
                else:  # the hooks still run
                    logger.exception("app %s: session %s's last changes were not sent", self.app_name, self.id)
        if self.session is not None:
            await self.session.with_document_locked(self.session.destroy)
        if self.context is not None:
            try:
                await self.app.on_session_destroyed(self.context)
            except Exception:
                logger.exception("app %s: on_session_destroyed failed", self.app_name)
        self.doc = self.context = self.session = self.sync = None
