"""PNG and SVG pictures of documents, drawn by headless Chromium: Playwright drives the system's
Chromium (``BOKEHSITE_CHROMIUM``), which opens the standalone HTML export and draws it as a
browser would.

A document is code, so the page it runs in reaches nothing: it is set as the content of a blank
page (which may not open local files), in an offline browser context whose every request is
refused. Drawing runs in a small pool of threads of its own (``BOKEHSITE_EXPORT_WORKERS``), each
drawing with a Chromium started for it and closed after, so the server's own threads and event
loop never run Playwright.
"""

from __future__ import annotations

import re
import tempfile
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.conf import settings

from documents.exceptions import ExportFailed, ExportUnavailable

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1600, "height": 1200}

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

_pool: ThreadPoolExecutor | None = None
_pool_made = threading.Lock()  # exports and thumbnails may ask for the pool at once


def unavailable() -> str | None:
    """Why this server cannot draw images, or None if it can."""
    if not Path(settings.BOKEHSITE_CHROMIUM).exists():
        return (f"this server cannot draw PNG or SVG: there is no Chromium at {settings.BOKEHSITE_CHROMIUM} "
                "(install it, or set BOKEHSITE_CHROMIUM); HTML and JSON exports work without it")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "this server cannot draw PNG or SVG: the playwright package is not installed"
    return None


def draw(html: Iterable[bytes], fmt: str) -> bytes:
    """The document of the standalone page ``html`` drawn as ``fmt`` ("png" or "svg").

    Raises:
        ExportUnavailable: no Chromium here (501).
        ExportFailed: the document did not draw within ``BOKEHSITE_EXPORT_TIMEOUT`` seconds.
    """
    reason = unavailable()
    if reason:
        raise ExportUnavailable(reason, field="format")
    global _pool
    with _pool_made:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=settings.BOKEHSITE_EXPORT_WORKERS, thread_name_prefix="chromium")
    with tempfile.NamedTemporaryFile(suffix=".html") as page:
        for chunk in html:
            page.write(chunk)
        page.flush()
        return _pool.submit(_draw, Path(page.name), fmt, settings.BOKEHSITE_EXPORT_TIMEOUT).result()


def _draw(path: Path, fmt: str, timeout: float) -> bytes:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    wait = timeout * 1000
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=settings.BOKEHSITE_CHROMIUM, args=CHROMIUM_ARGS, timeout=wait)
        try:
            context = browser.new_context(viewport=VIEWPORT, offline=True, accept_downloads=False)
            context.route("**/*", lambda route: route.abort())
            page = context.new_page()
            try:
                page.set_content(path.read_text(encoding="utf-8"), wait_until="load", timeout=wait)
                plot = page.locator("#plot")
                page.wait_for_selector("#plot[data-state=rendered], #plot[data-state=error]", timeout=wait)
                if plot.get_attribute("data-state") == "error":
                    raise ExportFailed(f"the document did not draw: {plot.inner_text()[:300]}", field="format")
                if fmt == "png":
                    return plot.screenshot(timeout=wait)
                return _stacked(page.evaluate(SVG_SCRIPT)).encode()
            except PlaywrightError as e:
                first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
                raise ExportFailed(f"the document did not draw within {timeout:g} s: {first}", field="format") from None
        finally:
            browser.close()


def _stacked(svgs: list[str]) -> str:
    """One SVG: the only root's, or the roots' one below the other."""
    if not svgs:
        raise ExportFailed("the document has nothing to draw", field="format")
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
