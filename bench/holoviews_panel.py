"""A baseline for large images and many series: HoloViews + Datashader served by Panel.

A Panel server (a Bokeh server) runs in a child process and holds the data in its memory; it
shows ``rasterize(hv.Image(...))`` of a 2-D uint8 array, or 1,000 series sharing x drawn by
Datashader's line aggregation. Headless Chromium opens the app and sets the plot's ranges to a
window (full, 10%, 1%, 0.1% of the extent), then fires the ``RangesUpdate`` event BokehJS fires
after a zoom, and times until the re-rasterized image arrives (the image's source changes): the
real HTTP/websocket round trip, HoloViews' range stream, Datashader and the patch back.

HoloViews' ``RangeXY`` stream listens to ``RangesUpdate`` events only, which only BokehJS emits: a
``bokeh.client.pull_session`` setting ``x_range.start``/``end`` changes the ranges on the server
but re-rasterizes nothing (``--check-pull-session`` shows it), hence Chromium.

Two ways to draw many series, ``--series-method``:

- ``ndoverlay``: ``rasterize(hv.NdOverlay({i: hv.Curve((x, y[i]))}))``, HoloViews' own way
  (it aggregates each curve, then sums);
- ``wide``: a ``DynamicMap`` on ``RangeXY`` and ``PlotSize`` streams whose callback aggregates a
  wide DataFrame (x and one column per series) with ``datashader.Canvas.line(..., axis=0)`` over
  the rows in the x range, as an ``hv.Image``: one Datashader pass for all series.

    .venv/bin/python bench/holoviews_panel.py --images --size 20000
    .venv/bin/python bench/holoviews_panel.py --series --series-count 1000 --rows 1e5
    .venv/bin/python bench/holoviews_panel.py --series --series-method ndoverlay,wide --series-count 100

``bench/large_data.py`` uses ``serve_image``/``serve_series``, ``time_zooms`` and ``rss_mib``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import requests

from common import CHROMIUM, CHROMIUM_ARGS, machine, stop_process  # noqa: I001
from common import rss_mib as process_rss_mib
from tests.servers import free_port

ZOOMS = (1.0, 0.1, 0.01, 0.001)
IMAGE_SIZE = (800, 800)  # the plot's frame, in pixels
SERIES_SIZE = (1000, 400)
START_SECONDS = 900.0  # loading and the first full render of 1e8 points take a while on a busy machine


@dataclass
class Served:
    """A Panel server in a child process and what it shows."""

    process: subprocess.Popen
    url: str
    kind: str  # "image" or "series"
    extent: tuple[float, float, float, float]  # x0, y0, x1, y1 of the data
    zoom_y: bool  # images zoom on both axes; series on x only, over the full y extent
    log: Path
    notes: dict = field(default_factory=dict)

    def stop(self) -> None:
        stop_process(self.process)
        self.log.unlink(missing_ok=True)

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# --- the served apps (in the child process) ----------------------------------------------------


def image_app(npy_path: str, width: int, height: int):
    import holoviews as hv
    from holoviews.operation.datashader import rasterize

    hv.extension("bokeh")
    array = np.load(npy_path)  # in this process's memory, as a server holding the image would
    rows, columns = array.shape
    image = hv.Image(array, bounds=(0, 0, columns, rows), kdims=["x", "y"], vdims=["value"])

    def app():
        import panel as pn

        return pn.pane.HoloViews(rasterize(image).opts(width=width, height=height, cmap="gray"))

    return app


def series_app(npy_path: str, width: int, height: int, method: str):
    import datashader as ds
    import holoviews as hv
    import pandas as pd

    hv.extension("bokeh")
    ys = np.load(npy_path)  # (series, rows): each series contiguous
    count, rows = ys.shape
    x = np.arange(rows, dtype=np.float64)
    y_range = (float(ys.min()), float(ys.max()))
    if method == "ndoverlay":
        from holoviews.operation.datashader import rasterize

        overlay = hv.NdOverlay({i: hv.Curve((x, ys[i]), "x", "y") for i in range(count)}, kdims="series")

        def element():
            return rasterize(overlay, aggregator=ds.count()).opts(width=width, height=height, cnorm="eq_hist")
    elif method == "wide":
        frame = pd.DataFrame(ys.T, columns=[f"s{i}" for i in range(count)], copy=False)
        frame.insert(0, "x", x)
        names = list(frame.columns[1:])

        full_y = y_range

        def aggregate(x_range, y_range, width, height, scale=1.0):
            x_range, y_range = x_range or (x[0], x[-1]), y_range or full_y
            # The rows in the x range and one beyond each end, so lines reach the edges.
            low = max(int(np.searchsorted(x, x_range[0])) - 1, 0)
            high = int(np.searchsorted(x, x_range[1], side="right")) + 1
            canvas = ds.Canvas(plot_width=width or 1, plot_height=height or 1, x_range=x_range, y_range=y_range)
            counts = canvas.line(frame.iloc[low:high], x="x", y=names, agg=ds.count(), axis=0)
            return hv.Image(counts, kdims=["x", "y"]).opts(cnorm="eq_hist")

        def element():
            streams = [hv.streams.RangeXY(x_range=(x[0], x[-1]), y_range=y_range),
                       hv.streams.PlotSize(width=width, height=height)]
            return hv.DynamicMap(aggregate, streams=streams).opts(width=width, height=height)
    else:
        raise ValueError(f"--series-method: ndoverlay or wide, not {method!r}")

    def app():
        import panel as pn

        return pn.pane.HoloViews(element())

    return app


def serve_child(kind: str, npy_path: str, port: int, width: int, height: int, method: str) -> None:
    import panel as pn

    app = image_app(npy_path, width, height) if kind == "image" else series_app(npy_path, width, height, method)
    print("loaded", flush=True)
    pn.serve({"app": app}, port=port, address="127.0.0.1", show=False, start=True, threaded=False,
             websocket_origin=[f"127.0.0.1:{port}"], websocket_max_message_size=1 << 30)


# --- the benchmark side ------------------------------------------------------------------------


def _serve(kind: str, npy_path: str | os.PathLike, extent, zoom_y: bool, size: tuple[int, int], method: str = "",
           timeout: float = START_SECONDS) -> Served:
    port = free_port()
    log = Path(tempfile.mkstemp(prefix=f"holoviews-panel-{kind}-", suffix=".log")[1])
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, __file__, "--serve", kind, str(npy_path), str(port),
                                    str(size[0]), str(size[1]), method or "-"],
                                   stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).parent)
    url = f"http://127.0.0.1:{port}/app"
    deadline = time.monotonic() + timeout
    while True:  # the page answers once the data is loaded and the server listens
        if process.poll() is not None:
            raise RuntimeError(f"the Panel server ended: {log.read_text()[-2000:]}")
        try:
            if requests.get(url, timeout=timeout).status_code == 200:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            stop_process(process)
            raise RuntimeError(f"the Panel server did not start in {timeout:.0f} s: {log.read_text()[-2000:]}")
        time.sleep(0.5)
    return Served(process, url, kind, extent, zoom_y, log, {"method": method} if method else {})


def serve_image(npy_path: str | os.PathLike, *, size: tuple[int, int] = IMAGE_SIZE) -> Served:
    """A Panel server showing ``rasterize(hv.Image(array))`` of the 2-D array in ``npy_path``."""
    rows, columns = np.load(npy_path, mmap_mode="r").shape
    return _serve("image", npy_path, (0.0, 0.0, float(columns), float(rows)), True, size)


def serve_series(npy_path: str | os.PathLike, *, method: str = "wide", size: tuple[int, int] = SERIES_SIZE) -> Served:
    """A Panel server showing the series in ``npy_path`` (a (series, rows) array; x = 0..rows-1)
    drawn by Datashader, ``method`` ``wide`` or ``ndoverlay`` (see the module's docstring)."""
    ys = np.load(npy_path, mmap_mode="r")
    extent = (0.0, float(ys.min()), float(ys.shape[1] - 1), float(ys.max()))
    return _serve("series", npy_path, extent, False, size, method)


FIND_IMAGE = """() => {
  function* walk(view) { yield view; for (const child of view.children()) yield* walk(child); }
  const views = [...Bokeh.index.roots].flatMap((root) => [...walk(root)]);
  const plot = views.find((view) => typeof view.trigger_ranges_update_event === "function");
  if (plot == null) return false;
  const image = plot.model.renderers.find((r) => r.glyph != null && r.glyph.constructor.__name__ === "Image");
  if (image == null || image.data_source.data.image == null) return false;
  window.__bench = {plot, source: image.data_source};
  return true;
}"""

# Set the ranges as a zoom does, fire the RangesUpdate event the stream listens to, and resolve
# with the ms until the image's data is replaced by one of about that x extent (null after the timeout).
ZOOM_TO = """([x0, x1, y0, y1, timeout]) => new Promise((resolve) => {
  const {plot, source} = window.__bench;
  const before = source.data.image;
  const started = performance.now();
  let done = false;
  const finish = (value) => { if (!done) { done = true; resolve(value); } };
  const check = () => {
    const {image, dw} = source.data;
    // The image of this window: an answer to an earlier change may still arrive first.
    if (image !== before && Math.abs(Math.log(dw[0] / (x1 - x0))) < Math.log(2)) finish(performance.now() - started);
  };
  source.connect(source.change, check);
  source.connect(source.properties.data.change, check);
  setTimeout(() => finish(null), timeout);
  plot.model.x_range.setv({start: x0, end: x1});
  plot.model.y_range.setv({start: y0, end: y1});
  plot.trigger_ranges_update_event();
})"""


def window(served: Served, zoom: float, shift: float) -> tuple[float, float, float, float]:
    """The ``zoom`` fraction of the extent around a point that moves with ``shift`` (0..1)."""
    x0, y0, x1, y1 = served.extent

    def one(low: float, high: float) -> tuple[float, float]:
        span = (high - low) * zoom
        centre = low + span / 2 + (high - low - span) * shift
        return centre - span / 2, centre + span / 2

    xs = one(x0, x1)
    ys = one(y0, y1) if served.zoom_y else (y0, y1)
    return xs[0], xs[1], ys[0], ys[1]


def zoom_rounds(target, windows, zoom_to: str, zooms=ZOOMS, *, repeat: int, timeout_ms: float) -> dict[float, list]:
    """Evaluate ``zoom_to`` in ``target`` (a page or a frame) for the window of each zoom in turn,
    ``repeat`` rounds after a warm-up round that is dropped (Numba compiles, caches fill), around a
    point that moves between rounds so that every change is a real one; what it resolved with, by zoom."""
    results: dict[float, list] = {zoom: [] for zoom in zooms}
    for round_ in range(repeat + 1):
        for zoom in zooms:
            shift = 0.5 + 0.4 * math.sin(round_ * 2.1 + zoom)
            x0, x1, y0, y1 = window(windows, zoom, shift)
            result = target.evaluate(zoom_to, [x0, x1, y0, y1, timeout_ms])
            if result is None:
                raise RuntimeError(f"nothing of x {x0:g}..{x1:g} within {timeout_ms / 1000:.0f} s after a {zoom:.1%} zoom")
            if round_:
                results[zoom].append(result)
            target.wait_for_timeout(200)  # let the rest of the answer (ranges, ticks) settle
    return results


def time_zooms(served: Served, zooms=ZOOMS, *, repeat: int = 5, timeout_ms: float = 600_000) -> dict[float, float]:
    """The median ms from a range change in Chromium to the new image's arrival, for each zoom."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(served.url, timeout=START_SECONDS * 1000)
            page.wait_for_function(FIND_IMAGE, timeout=START_SECONDS * 1000, polling=200)
            times = zoom_rounds(page, served, ZOOM_TO, zooms, repeat=repeat, timeout_ms=timeout_ms)
        finally:
            browser.close()
    return {zoom: statistics.median(values) for zoom, values in times.items()}


def rss_mib(served: Served, field: str = "VmRSS") -> float:
    """The Panel server process's resident memory (``VmHWM``: its peak)."""
    return process_rss_mib(served.process.pid, field)


def check_pull_session(served: Served, wait: float = 10.0) -> bool:
    """Whether ranges set through ``bokeh.client.pull_session`` make the server re-rasterize."""
    from bokeh.client import pull_session
    from bokeh.models import GlyphRenderer, Image, Plot

    with pull_session(url=served.url) as session:
        plot = next(iter(session.document.select({"type": Plot})))
        source = next(r.data_source for r in session.document.select({"type": GlyphRenderer})
                      if isinstance(r.glyph, Image))
        changed = []
        source.on_change("data", lambda attr, old, new: changed.append(time.monotonic()))
        x0, x1, y0, y1 = window(served, 0.1, 0.5)
        plot.x_range.update(start=x0, end=x1)
        plot.y_range.update(start=y0, end=y1)
        deadline = time.monotonic() + wait
        while not changed and time.monotonic() < deadline:
            time.sleep(0.1)
        return bool(changed)


# --- data --------------------------------------------------------------------------------------


def make_image(size: int, folder: Path) -> Path:
    """A ``size``² uint8 image with structure at every scale (rings and noise), as a .npy file."""
    path = folder / f"image-{size}.npy"
    image = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(size, size))
    rng = np.random.default_rng(size)
    x = np.linspace(-1, 1, size, dtype=np.float32)
    for start in range(0, size, 1000):  # in bands, to keep memory small
        y = x[start:start + 1000, None]
        r = np.sqrt(x[None, :] ** 2 + y ** 2)
        band = 127 + 100 * np.sin(200 * r) + rng.normal(0, 20, (len(y), size))
        image[start:start + len(y)] = np.clip(band, 0, 255).astype(np.uint8)
    image.flush()
    del image
    return path


def make_series(count: int, rows: int, folder: Path) -> Path:
    """``count`` random walks of ``rows`` points, as a (series, rows) float64 .npy file."""
    path = folder / f"series-{count}x{rows}.npy"
    ys = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(count, rows))
    rng = np.random.default_rng(count)
    for i in range(count):
        ys[i] = np.cumsum(rng.normal(size=rows)) + 10 * i / count
    ys.flush()
    del ys
    return path


# --- standalone --------------------------------------------------------------------------------


def print_table(title: str, figures: dict[float, float], rss: float, peak: float) -> None:
    print(f"\n{title}")
    print(f"  {'zoom':>6} {'range change to new image, median ms':>38}")
    for zoom, ms in figures.items():
        print(f"  {zoom:>6.1%} {ms:>38.0f}")
    print(f"  Panel server process: {rss:,.0f} MiB RSS after the zooms, peak {peak:,.0f} MiB")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        kind, npy_path, port, width, height, method = sys.argv[2:8]
        serve_child(kind, npy_path, int(port), int(width), int(height), method)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", action="store_true", help="a size² uint8 image")
    parser.add_argument("--series", action="store_true", help="many series sharing x")
    parser.add_argument("--size", type=int, default=20_000, help="image side (default %(default)s)")
    parser.add_argument("--series-count", type=int, default=1000, help="series (default %(default)s)")
    parser.add_argument("--rows", type=float, default=1e5, help="rows per series (default %(default)g)")
    parser.add_argument("--series-method", default="wide", help="wide, ndoverlay or both comma-separated")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds of zooms (default %(default)s)")
    parser.add_argument("--check-pull-session", action="store_true",
                        help="also show whether ranges set from bokeh.client.pull_session re-rasterize")
    parser.add_argument("--data-dir", help="where the .npy files go (default: a temporary directory)")
    args = parser.parse_args()
    if not (args.images or args.series):
        parser.error("say --images, --series or both")
    import datashader
    import holoviews
    import panel

    print(f"HoloViews {holoviews.__version__} + Datashader {datashader.__version__}, served by Panel "
          f"{panel.__version__}; {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-holoviews-", dir=args.data_dir) as data:
        folder = Path(data)
        if args.images:
            start = time.perf_counter()
            path = make_image(args.size, folder)
            print(f"\nimage: {args.size:,}² uint8 ({args.size ** 2 / 2**20:,.0f} MiB) made in "
                  f"{time.perf_counter() - start:.0f} s")
            start = time.perf_counter()
            with serve_image(path) as served:
                print(f"  server up (loaded, first page) in {time.perf_counter() - start:.0f} s")
                if args.check_pull_session:
                    print(f"  pull_session range change re-rasterizes: {check_pull_session(served)}")
                figures = time_zooms(served, repeat=args.repeat)
                print_table(f"rasterize(hv.Image), {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} px, zoom on both axes", figures,
                            rss_mib(served), rss_mib(served, "VmHWM"))
            path.unlink()
        if args.series:
            rows = int(args.rows)
            start = time.perf_counter()
            path = make_series(args.series_count, rows, folder)
            print(f"\nseries: {args.series_count:,} × {rows:,} float64 rows "
                  f"({args.series_count * rows * 8 / 2**20:,.0f} MiB) made in {time.perf_counter() - start:.0f} s")
            for method in args.series_method.split(","):
                start = time.perf_counter()
                with serve_series(path, method=method) as served:
                    print(f"  {method}: server up (loaded, first page) in {time.perf_counter() - start:.0f} s")
                    if args.check_pull_session:
                        print(f"  pull_session range change re-rasterizes: {check_pull_session(served)}")
                    figures = time_zooms(served, repeat=args.repeat)
                    print_table(f"{args.series_count:,} series × {rows:,} rows, method {method}, "
                                f"{SERIES_SIZE[0]}x{SERIES_SIZE[1]} px, zoom on x", figures,
                                rss_mib(served), rss_mib(served, "VmHWM"))


if __name__ == "__main__":
    main()
