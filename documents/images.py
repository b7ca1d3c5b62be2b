"""PNG and SVG pictures of documents, drawn by headless Chromium: Playwright drives the system's
Chromium (``BOKEHSITE_CHROMIUM``), which opens the standalone HTML export and draws it as a
browser would.

The drawing happens in a process of its own (``documents.renderer``), started on first use and
kept while it has work (it stops after ``KEEP_SECONDS`` without any), which keeps one Chromium
running and draws each picture in a fresh browser context. It runs at the lowest CPU priority
(``SCHED_IDLE``), so it draws with the CPU the server leaves over, and the server's threads and
event loop never run Playwright.

A document is code, so the renderer reaches nothing. It is started in a network namespace with
no interface (``unshare --net``; unprivileged, ``unshare --user --map-root-user --net``) where no
socket can connect anywhere; where the system allows neither, Chromium's own flags send every
connection to a proxy that does not exist, resolve no host name and keep WebRTC off UDP. Either
way the page is set as the content of a blank page (which may not open local files), in an
offline browser context whose every request is refused and that may run no service worker.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from importlib.util import find_spec
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from django.conf import settings

from bokehsite.errors import Unavailable
from documents.exceptions import ExportFailed, ExportUnavailable

logger = logging.getLogger(__name__)

# Everything a page could reach goes to a proxy that cannot be resolved (every name maps to
# nothing, and loopback is not exempt), WebRTC may not send UDP outside a proxy nor announce itself
# by mDNS (without that flag it was seen sending STUN; the renderer also takes WebRTC out of every
# page): in case the renderer could not have a network namespace, no packet reaches anything.
# Each browser context opens a window whose omnibox popups Chromium preloads as WebUI pages, a
# renderer process of their own: without the WebUIOmnibox* features off, that doubled the CPU of a
# drawing (1.0 s more of the 2.2 s of a small plot).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
    "--disable-features=DnsOverHttps,WebRtcHideLocalIpsWithMdns,WebUIOmniboxPopup,WebUIOmniboxAimPopup,"
    "WebUIOmniboxFullPopup",
    "--proxy-server=http://renderer-proxy.invalid:9", "--proxy-bypass-list=<-loopback>",
    "--host-resolver-rules=MAP * ~NOTFOUND", "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
]
# How the renderer is started, the first that works: in a network namespace without interfaces
# (as root, then as an unprivileged user), else with the flags alone.
ISOLATIONS: list[list[str]] = [["unshare", "--net", "--"], ["unshare", "--user", "--map-root-user", "--net", "--"], []]
KEEP_SECONDS = 300  # a renderer with nothing to draw for this long stops, and its Chromium with it
START_TIMEOUT = 60  # seconds for the renderer to start Chromium
GRACE = 10  # seconds beyond the export timeout before a renderer that does not answer is stopped


def unavailable() -> str | None:
    """Why this server cannot draw images, or None if it can."""
    if not Path(settings.BOKEHSITE_CHROMIUM).exists():
        return (f"this server cannot draw PNG or SVG: there is no Chromium at {settings.BOKEHSITE_CHROMIUM} "
                "(install it, or set BOKEHSITE_CHROMIUM); HTML and JSON exports work without it")
    if find_spec("playwright") is None:
        return "this server cannot draw PNG or SVG: the playwright package is not installed"
    return None


def draw(html: Iterable[bytes], fmt: str) -> bytes:
    """The document of the standalone page ``html`` drawn as ``fmt`` ("png" or "svg").

    At most ``BOKEHSITE_EXPORT_WORKERS`` drawings of this process are drawn at once; another
    waits its turn for up to ``BOKEHSITE_EXPORT_TIMEOUT`` seconds.

    Raises:
        ExportUnavailable: no Chromium here (501).
        ExportFailed: the document did not draw within ``BOKEHSITE_EXPORT_TIMEOUT`` seconds.
        Unavailable: too many drawings waited already (503).
    """
    reason = unavailable()
    if reason:
        raise ExportUnavailable(reason, field="format")
    timeout = float(settings.BOKEHSITE_EXPORT_TIMEOUT)
    slots = _slots()
    if not slots.acquire(timeout=timeout):
        raise Unavailable("the server is drawing as many pictures as it may; try again in a moment")
    try:
        with tempfile.NamedTemporaryFile(suffix=".html") as page:
            for chunk in html:
                page.write(chunk)
            page.flush()
            return _renderer.draw(page.name, fmt, timeout)
    finally:
        slots.release()


def status() -> dict[str, Any] | None:
    """What the running renderer says of itself (``documents.renderer.Renderer.status``), with how
    it is isolated; None when none runs."""
    return _renderer.status()


def stop() -> None:
    """Stop the renderer and its Chromium, if one runs; the next drawing starts another."""
    _renderer.stop()


_slot_lock = threading.Lock()
_slot: tuple[int, threading.BoundedSemaphore] | None = None


def _slots() -> threading.BoundedSemaphore:
    global _slot
    with _slot_lock:
        if _slot is None or _slot[0] != settings.BOKEHSITE_EXPORT_WORKERS:
            _slot = (settings.BOKEHSITE_EXPORT_WORKERS, threading.BoundedSemaphore(settings.BOKEHSITE_EXPORT_WORKERS))
        return _slot[1]


class _Process:
    """One renderer process: its pipes, and the drawings it was asked for and has not answered."""

    def __init__(self, popen: subprocess.Popen, isolation: str, config: dict[str, Any]) -> None:
        self.popen, self.isolation, self.config = popen, isolation, config
        assert popen.stdin is not None and popen.stdout is not None
        self.requests = Connection(os.dup(popen.stdin.fileno()), readable=False)
        self.answers = Connection(os.dup(popen.stdout.fileno()), writable=False)
        popen.stdin.close()
        popen.stdout.close()
        self.waiting: dict[int, Future] = {}
        self.hello: dict[str, Any] = {}

    def receive(self) -> tuple[dict[str, Any], bytes | None]:
        header = json.loads(self.answers.recv_bytes())
        return header, self.answers.recv_bytes() if header.pop("payload", False) else None

    def kill(self) -> None:
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)  # the renderer, its driver and Chromium
        except ProcessLookupError:
            pass
        self.popen.wait()


class _Renderer:
    """This server process's renderer: started when a drawing needs it, stopped when idle."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: _Process | None = None
        self._ids = itertools.count(1)
        self._isolations: list[list[str]] | None = None  # those that may work here, once tried

    def draw(self, path: str, fmt: str, timeout: float) -> bytes:
        header, payload = self._ask({"path": path, "format": fmt, "timeout": timeout}, timeout + GRACE)
        if not header.get("ok") or payload is None:
            raise ExportFailed(header.get("message") or "the document did not draw", field="format")
        return payload

    def status(self) -> dict[str, Any] | None:
        with self._lock:
            process = self._process
        if process is None:
            return None
        header, _ = self._ask({"status": True}, GRACE, start=False)
        return {**header, "isolation": process.isolation}

    def stop(self) -> None:
        with self._lock:
            process, self._process = self._process, None
        if process is not None:
            process.kill()

    def _ask(self, request: dict[str, Any], wait: float, *, start: bool = True) -> tuple[dict[str, Any], bytes | None]:
        answer: Future = Future()
        with self._lock:
            process = self._running() if start else self._process
            if process is None:
                raise ExportFailed("the renderer is not running", field="format")
            request_id = next(self._ids)
            process.waiting[request_id] = answer
            try:
                process.requests.send_bytes(json.dumps({"id": request_id, **request}).encode())
            except OSError:
                process.waiting.pop(request_id, None)
                self._forget(process)
                raise ExportFailed("the renderer stopped; try again", field="format") from None
        try:
            return answer.result(wait)
        except FutureTimeout:
            logger.warning("the renderer did not answer within %g s: stopping it", wait)
            with self._lock:
                self._forget(process)
            process.kill()
            raise ExportFailed(f"the document did not draw within {wait - GRACE:g} s", field="format") from None

    def _running(self) -> _Process:
        config = {"chromium": settings.BOKEHSITE_CHROMIUM, "args": CHROMIUM_ARGS, "timeout": START_TIMEOUT}
        if self._process is not None and self._process.popen.poll() is None and self._process.config == config:
            return self._process
        if self._process is not None:
            old, self._process = self._process, None
            old.kill()
        self._process = self._start(config)
        threading.Thread(target=self._read, args=(self._process,), name="renderer", daemon=True).start()
        return self._process

    def _start(self, config: dict[str, Any]) -> _Process:
        if self._isolations is None:
            self._isolations = [i for i in ISOLATIONS if not i or shutil.which(i[0])]
        root = Path(__file__).resolve().parent.parent  # where ``documents`` is importable from
        for isolation in list(self._isolations):
            command = [*isolation, sys.executable, "-m", "documents.renderer", json.dumps(config)]
            popen = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=root,
                                     start_new_session=True)
            process = _Process(popen, "", config)
            try:
                if not process.answers.poll(START_TIMEOUT):
                    raise EOFError
                hello, _ = process.receive()
            except (EOFError, OSError):
                process.kill()
                if isolation:  # this system does not allow it (unshare refused): the next way
                    logger.info("the renderer cannot start with %s here", " ".join(isolation[:-1]))
                    self._isolations.remove(isolation)
                    continue
                raise ExportFailed("the renderer did not start", field="format") from None
            if not hello.get("ready"):
                process.kill()
                raise ExportFailed(f"Chromium did not start: {hello.get('message', '')}", field="format")
            process.isolation = ("network namespace" if hello.get("network") == "none"
                                 else "Chromium's proxy and resolver flags")
            process.hello = hello
            log = logger.info if hello.get("network") == "none" else logger.warning
            log("renderer %s started in %.1f s: priority %s, network cut off by %s", hello["pid"], hello["seconds"],
                hello["priority"], process.isolation)
            return process
        raise ExportFailed("the renderer did not start", field="format")

    def _read(self, process: _Process) -> None:
        """Hand each answer to whoever waits for it; stop the renderer when it had nothing to do for
        ``KEEP_SECONDS``."""
        while True:
            try:
                if not process.answers.poll(KEEP_SECONDS):
                    with self._lock:
                        idle = not process.waiting and self._process is process
                        if idle:
                            self._forget(process)
                    if idle:
                        process.requests.close()  # the renderer closes Chromium and exits
                        try:
                            process.popen.wait(GRACE)
                        except subprocess.TimeoutExpired:
                            process.kill()
                        return
                    continue
                header, payload = process.receive()
            except (EOFError, OSError, ValueError):
                break
            with self._lock:
                answer = process.waiting.pop(header.get("id"), None)
            if answer is not None:
                answer.set_result((header, payload))
        with self._lock:
            self._forget(process)
        process.kill()

    def _forget(self, process: _Process) -> None:
        """Called with the lock held: the process is no longer the renderer; whoever waits on it fails."""
        if self._process is process:
            self._process = None
        for answer in process.waiting.values():
            if not answer.done():
                answer.set_exception(ExportFailed("the renderer stopped while drawing; try again", field="format"))
        process.waiting.clear()


_renderer = _Renderer()
