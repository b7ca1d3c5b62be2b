"""Images and many series against HoloViews + Datashader in Panel, on the same data, in one run.

Both servers hold the same data: a Panel server (``holoviews_panel.py``: ``rasterize(hv.Image)``,
or Datashader's line aggregation of every series) in its own memory, and a bokehsite server
(Daphne) that was sent it through the client and keeps it on disk, mapped. Headless Chromium
opens each one's page and sets the plot's ranges to the same windows (full, 10%, 1% and 0.1% of
the extent; on both axes for the image, on x for the series; the window's centre moves between
rounds), and times how long until the new window is in the plot's data:

- Panel: from the range change (and the ``RangesUpdate`` event HoloViews listens to) to the
  image of the new window in the image's source (``holoviews_panel.time_zooms``);
- bokehsite: from the range change to the view of the new window applied to the document
  (``#plot[data-views-applied]``; the page asks at once, as for any change after a quiet spell).
  Beside it, from the ``view`` request sent to the view applied: the websocket both ways, the
  server's view, decoding and patching.

The first round warms up (Numba compiles, caches fill) and is dropped; medians of the others.
Memory: the Panel process's resident memory (the data, its own copy in each process), and the
bokehsite server's own memory against the pages of mapped data files it has touched (shared
through the page cache with every other server process on the host).

    .venv/bin/python bench/large_data.py --images     # a 20,000² uint8 image, then against Panel
    .venv/bin/python bench/large_data.py --series     # 1,000 series x 1e5 rows, then against Panel
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import holoviews_panel
import numpy as np
from common import CHROMIUM, CHROMIUM_ARGS, rss_mib, server_env  # noqa: I001

from tests.servers import DaphneServer

ZOOMS = holoviews_panel.ZOOMS

# In the plot's frame: find the plot's view and note every websocket send (the last one before a
# view is applied is its request).
FIND_PLOT = """() => {
  function* walk(view) { yield view; for (const child of view.children()) yield* walk(child); }
  if (typeof Bokeh === "undefined" || !Bokeh.index) return false;
  const views = [...Bokeh.index.roots].flatMap((root) => [...walk(root)]);
  const plot = views.find((view) => typeof view.trigger_ranges_update_event === "function");
  const element = document.getElementById("plot");
  if (plot == null || !(Number(element.dataset.viewsApplied) > 0)) return false;
  if (!window.__bench) {
    window.__bench = {plot, element, lastSend: 0};
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) { window.__bench.lastSend = performance.now(); return send.call(this, data); };
  }
  return true;
}"""

# Set the ranges as a zoom does and resolve with [ms to the view applied, ms from its request].
ZOOM_TO = """([x0, x1, y0, y1, timeout]) => new Promise((resolve) => {
  const {plot, element} = window.__bench;
  const before = Number(element.dataset.viewsApplied);
  const started = performance.now();
  const observer = new MutationObserver(() => {
    if (Number(element.dataset.viewsApplied) <= before) return;
    const now = performance.now();
    observer.disconnect();
    resolve([now - started, now - window.__bench.lastSend]);
  });
  observer.observe(element, {attributes: true, attributeFilter: ["data-views-applied"]});
  setTimeout(() => { observer.disconnect(); resolve(null); }, timeout);
  plot.model.x_range.setv({start: x0, end: x1});
  plot.model.y_range.setv({start: y0, end: y1});
})"""


def time_ours(url: str, extent, zoom_y: bool, *, repeat: int, timeout_ms: float = 120_000) -> dict[float, tuple[float, float]]:
    """For each zoom, the median ms from the range change to the view applied, and from its request."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.frame_locator("#plot-frame").locator("#plot[data-views-applied]").wait_for(timeout=120_000)
            frame = next(f for f in page.frames if "/frame/" in f.url)
            frame.wait_for_function(FIND_PLOT, timeout=60_000, polling=100)
            # The same windows as Panel's.
            times = holoviews_panel.zoom_rounds(frame, SimpleNamespace(extent=extent, zoom_y=zoom_y), ZOOM_TO,
                                                repeat=repeat, timeout_ms=timeout_ms)
        finally:
            browser.close()
    return {zoom: (statistics.median(t for t, _ in values), statistics.median(r for _, r in values))
            for zoom, values in times.items()}


def push(session, plot, title: str) -> dict:
    from bokeh.document import Document

    doc = Document()
    doc.add_root(plot)
    session.use_doc(title)
    return session.push(doc)


def image_plot(session, path: Path):
    from bokeh.models import LinearColorMapper, Range1d

    from bokehsite.client import figure, server_source

    array = np.load(path, mmap_mode="r")
    rows, columns = array.shape
    image = session.upload_image("image", array, x=(0, columns), y=(0, rows))
    width, height = holoviews_panel.IMAGE_SIZE
    # Opens on the middle half, so the first zoom (to the whole image) is a change too.
    plot = figure(width=width, height=height, x_range=Range1d(columns / 4, columns * 3 / 4),
                  y_range=Range1d(rows / 4, rows * 3 / 4))
    plot.image(image="image", x="x", y="y", dw="dw", dh="dh", source=server_source(image, "image"),
               color_mapper=LinearColorMapper(palette="Greys256", low=0, high=255))
    return plot, (0.0, 0.0, float(columns), float(rows)), True


def series_plot(session, path: Path):
    from bokeh.models import Range1d

    from bokehsite.client import figure, server_source

    ys = np.load(path, mmap_mode="r")
    count, rows = ys.shape
    columns = {"x": np.arange(rows, dtype=np.float64)} | {f"s{i}": ys[i] for i in range(count)}
    dataset = session.upload_dataset("series", columns, require_sorted_x=True)
    extent = (0.0, float(ys.min()), float(rows - 1), float(ys.max()))
    width, height = holoviews_panel.SERIES_SIZE
    plot = figure(width=width, height=height, x_range=Range1d(rows / 4, rows * 3 / 4),  # (see image_plot)
                  y_range=Range1d(extent[1], extent[3]))
    plot.multi_line(xs="xs", ys="ys", source=server_source(dataset, "lines", x="x", y=list(columns)[1:]))
    return plot, extent, False


def compare(kind: str, path: Path, repeat: int) -> None:
    """Serve the data in ``path`` (an image, or (series, rows)) from both servers, time the same
    zooms in Chromium, and print the table."""
    from bokehsite.client import Session

    started = time.perf_counter()
    served = holoviews_panel.serve_image(path) if kind == "image" else holoviews_panel.serve_series(path)
    with served:
        print(f"  Panel server up (data loaded, first page) in {time.perf_counter() - started:.0f} s")
        theirs = holoviews_panel.time_zooms(served, ZOOMS, repeat=repeat)
        their_rss, their_peak = holoviews_panel.rss_mib(served), holoviews_panel.rss_mib(served, "VmHWM")
    with tempfile.TemporaryDirectory(prefix="bench-against-panel-") as data, \
            DaphneServer(env=server_env(data, BOKEHSITE_MAX_BODY_BYTES=str(1 << 30))) as server, \
            Session(server.url, timeout=600) as session:
        started = time.perf_counter()
        plot, extent, zoom_y = (image_plot if kind == "image" else series_plot)(session, path)
        info = push(session, plot, kind)
        print(f"  bokehsite: uploaded through the client and pushed in {time.perf_counter() - started:.0f} s")
        ours = time_ours(info["url"], extent, zoom_y, repeat=repeat)
        pid = server.process.pid
        own, mapped, peak = rss_mib(pid, "RssAnon"), rss_mib(pid, "RssFile"), rss_mib(pid, "VmHWM")
    print(f"\n  range change to the new window in Chromium, median ms of {repeat} (after one warm-up round):")
    print(f"  {'window':>7} {'Panel':>9} {'bokehsite':>10} {'ratio':>7} {'from its request':>17}")
    for zoom in ZOOMS:
        total, request = ours[zoom]
        print(f"  {zoom:>7.1%} {theirs[zoom]:>9.0f} {total:>10.1f} {theirs[zoom] / total:>6.1f}x {request:>17.1f}")
    print(f"  memory: the Panel process {their_rss:,.0f} MiB resident (peak {their_peak:,.0f}), all its own; "
          f"the bokehsite server {own:,.0f} MiB its own and {mapped:,.0f} MiB of mapped files (shared; peak "
          f"{peak:,.0f} MiB in all)")


def images(side: int, repeat: int, folder: str | None = None) -> None:
    print(f"\nagainst HoloViews + Datashader in Panel: a {side:,}² uint8 image, {holoviews_panel.IMAGE_SIZE[0]} x "
          f"{holoviews_panel.IMAGE_SIZE[1]} px, zoom on both axes")
    with tempfile.TemporaryDirectory(prefix="bench-against-panel-", dir=folder) as data:
        compare("image", holoviews_panel.make_image(side, Path(data)), repeat)


def series(count: int, rows: int, repeat: int) -> None:
    print(f"\nagainst HoloViews + Datashader in Panel (`wide`): {count:,} series x {rows:,} rows, "
          f"{holoviews_panel.SERIES_SIZE[0]} x {holoviews_panel.SERIES_SIZE[1]} px, zoom on x")
    with tempfile.TemporaryDirectory(prefix="bench-against-panel-") as data:
        compare("series", holoviews_panel.make_series(count, rows, Path(data)), repeat)
