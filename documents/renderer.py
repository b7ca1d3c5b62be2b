"""The process that draws documents as PNG and SVG for ``documents.images``, kept running.

``documents.images`` starts it as ``python -m documents.renderer CONFIG`` (CONFIG: JSON with the
Chromium to run and its flags), in a network namespace of its own when the system allows. It
first lowers its CPU priority to the lowest there is (``SCHED_IDLE``, else nice 19), which the
Playwright driver and Chromium it starts inherit, then launches ONE headless Chromium and keeps
it: each drawing gets a fresh browser context (no cookies, storage or cache of another), closed
after. Requests come on stdin and answers go out on stdout, each a message of
``multiprocessing.connection``; Django is not loaded here.

- request ``{"id", "path", "format", "timeout"}``: draw the standalone HTML page at ``path``;
  answered ``{"id", "ok": true}`` followed by the picture's bytes, or ``{"id", "ok": false,
  "message"}``.
- request ``{"id", "status": true}``: answered with what ``status()`` says.

It exits when stdin closes (the server stopped, or had nothing to draw for a while).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import re
import socket
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

VIEWPORT = {"width": 1600, "height": 1200}
CLOSE_TIMEOUT = 10  # seconds to close a drawing's context before the browser is started again

# Run in every frame before the page's own code: without a network namespace only Chromium's flags
# keep WebRTC from sending over UDP, and no document needs it to draw.
NO_WEBRTC = """for (const name of ["RTCPeerConnection", "webkitRTCPeerConnection", "RTCDataChannel",
                   "RTCRtpSender", "RTCRtpReceiver", "RTCIceTransport", "RTCSctpTransport"]) {
  delete globalThis[name];
}"""

# Each root drawn as SVG (what bokeh.io.export_svg asks BokehJS for).
SVG_SCRIPT = """() => {
  const doc = Bokeh.documents[Bokeh.documents.length - 1];
  const ids = new Set(doc.roots().map((root) => root.id));
  const svgs = [];
  for (const view of Bokeh.index) {
    if (ids.has(view.model.id)) svgs.push(view.export("svg").ctx.get_serialized_svg(true));
  }
  return svgs;
}"""


class DidNotDraw(Exception):
    """The document did not draw; the message says why, for whoever asked."""


def lower_priority() -> str:
    """Run this process, and everything it starts, only on CPU time nothing else wants."""
    os.nice(19)  # in case the scheduler refuses SCHED_IDLE; SCHED_IDLE ignores it
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return "idle"
    except (AttributeError, OSError):
        return "nice 19"


def network() -> str:
    """"none" when this process is in a network namespace without a working interface (a socket
    to anything fails), else "host"."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.settimeout(1)
    try:
        probe.connect(("127.0.0.1", 9))
    except OSError as e:
        return "none" if e.errno in (errno.ENETUNREACH, errno.EADDRNOTAVAIL) else "host"
    finally:
        probe.close()
    return "host"


class Renderer:
    """One Playwright, one Chromium (started again if it goes), a context per drawing."""

    def __init__(self, playwright: Playwright, chromium: str, args: list[str], answers: Connection) -> None:
        self.playwright, self.chromium, self.args, self.answers = playwright, chromium, args, answers
        self.browser: Browser | None = None
        self.launches = self.drawings = 0
        self.priority = ""
        self.network = ""

    async def launched(self, timeout: float) -> Browser:
        if self.browser is None or not self.browser.is_connected():
            self.browser = await self.playwright.chromium.launch(
                executable_path=self.chromium, args=self.args, timeout=timeout * 1000)
            self.launches += 1
        return self.browser

    def status(self) -> dict[str, Any]:
        """This process, its CPU priority, its network, and how many browsers served how many drawings."""
        return {"pid": os.getpid(), "priority": self.priority, "network": self.network,
                "launches": self.launches, "drawings": self.drawings,
                "browser_connected": self.browser is not None and self.browser.is_connected()}

    async def answer(self, request: dict[str, Any]) -> None:
        if request.get("status"):
            self.send({"id": request["id"], **self.status()})
            return
        timeout = float(request["timeout"])
        try:
            picture = await asyncio.wait_for(self.draw(request["path"], request["format"], timeout), timeout)
        except DidNotDraw as e:
            self.send({"id": request["id"], "ok": False, "message": str(e)})
        except TimeoutError:
            self.send({"id": request["id"], "ok": False, "message": f"the document did not draw within {timeout:g} s"})
        except PlaywrightError as e:
            first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
            self.send({"id": request["id"], "ok": False,
                       "message": f"the document did not draw within {timeout:g} s: {first}"})
        else:
            self.send({"id": request["id"], "ok": True}, picture)

    def send(self, header: dict[str, Any], payload: bytes | None = None) -> None:
        # Only the event loop's thread writes, and header and payload go out together.
        self.answers.send_bytes(json.dumps({**header, "payload": payload is not None}).encode())
        if payload is not None:
            self.answers.send_bytes(payload)

    async def draw(self, path: str, fmt: str, timeout: float) -> bytes:
        wait = timeout * 1000
        browser = await self.launched(timeout)
        # Offline with every request refused: the page fails fast instead of waiting on a network
        # it could not reach anyway (the namespace and the flags see to that).
        context = await browser.new_context(viewport=VIEWPORT, offline=True, accept_downloads=False,
                                            service_workers="block")
        self.drawings += 1
        try:
            await context.add_init_script(NO_WEBRTC)
            await context.route("**/*", lambda route: route.abort())
            page = await context.new_page()
            html = await asyncio.to_thread(Path(path).read_text, encoding="utf-8")
            await page.set_content(html, wait_until="load", timeout=wait)
            plot = page.locator("#plot")
            await page.wait_for_selector("#plot[data-state=rendered], #plot[data-state=error]", timeout=wait)
            if await plot.get_attribute("data-state") == "error":
                raise DidNotDraw(f"the document did not draw: {(await plot.inner_text())[:300]}")
            if fmt == "png":
                return await plot.screenshot(timeout=wait)
            return stacked(await page.evaluate(SVG_SCRIPT)).encode()
        finally:
            await self.close(context)

    async def close(self, context: Any) -> None:
        try:
            await asyncio.wait_for(context.close(), CLOSE_TIMEOUT)
        except (PlaywrightError, TimeoutError):  # a page that will not let go: a new browser for the next
            browser, self.browser = self.browser, None
            if browser is not None:
                with contextlib.suppress(PlaywrightError, TimeoutError):  # gone already, or stuck: left to exit
                    await asyncio.wait_for(browser.close(), CLOSE_TIMEOUT)


def stacked(svgs: list[str]) -> str:
    """One SVG: the only root's, or the roots' one below the other."""
    if not svgs:
        raise DidNotDraw("the document has nothing to draw")
    if len(svgs) == 1:
        return svgs[0]
    width, height, parts = 0.0, 0.0, []
    for svg in svgs:
        w = float((re.search(r'<svg[^>]*\bwidth="([\d.]+)', svg) or [0, 0])[1])
        h = float((re.search(r'<svg[^>]*\bheight="([\d.]+)', svg) or [0, 0])[1])
        parts.append(svg.replace("<svg", f'<svg y="{height:g}"', 1))
        width, height = max(width, w), height + h
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:g}" height="{height:g}">'
            + "".join(parts) + "</svg>")


async def serve(config: dict[str, Any], requests: Connection, answers: Connection) -> None:
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task] = set()
    async with async_playwright() as playwright:
        renderer = Renderer(playwright, config["chromium"], config["args"], answers)
        renderer.priority, renderer.network = config["priority"], network()
        started = time.monotonic()
        try:
            await renderer.launched(float(config["timeout"]))
        except PlaywrightError as e:
            renderer.send({"ready": False, "message": str(e).strip().splitlines()[0][:300]})
            return
        renderer.send({"ready": True, "seconds": round(time.monotonic() - started, 3), **renderer.status()})
        while True:
            try:
                message = await loop.run_in_executor(None, requests.recv_bytes)
            except (EOFError, OSError):
                break
            task = asyncio.create_task(renderer.answer(json.loads(message)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        for task in list(tasks):
            task.cancel()
        if renderer.browser is not None:
            await renderer.browser.close()


def main() -> None:
    priority = lower_priority()
    requests = Connection(os.dup(0), writable=False)
    answers = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # what Chromium or a library prints goes to the log, never among the answers
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    config = {**json.loads(sys.argv[1]), "priority": priority}
    asyncio.run(serve(config, requests, answers))


if __name__ == "__main__":
    main()
