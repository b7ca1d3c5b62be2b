"""Large data: how fast a view of a huge line or scatter is, against scanning the raw data and
against plotly-resampler, in one run.

It prints:

- **compute**: the server's line view (M4 from the min/max summaries, ``datasets.aggregation``)
  at full range and at 10%, 1% and 0.1% zoom, for each size, beside a plain ``y[slice].min()``
  and tsdownsample's MinMaxLTTB (to 2,000 points) over the same slice: the raw-scan floor. The
  summaries' build time and size are printed too;
- **scatter**: a full view of the largest size's scatter (Datashader counts, on both cores);
- **server**: the line (generated in pieces: memory stays small at 1e9 rows) uploaded through the
  client to a Daphne server over loopback (MB/s, start to finish); then, on the stored dataset,
  line views at every zoom against a 1e6-row one, and one viewer's random 1% windows in a fresh
  process (p50, p99, page faults a view), with the files in the page cache and (as root) with the
  page cache emptied, from the first view on and once the process's prefetch is done;
- **websocket**: ``view`` to ``view_data`` round trips for one viewer (random 1% windows), and for
  1 and 10 viewers panning at once (p50, p99), and the server's memory per viewer;
- **zoom to pixels**: in headless Chromium, from a mouse-wheel event to the new view painted;
- **images** (``--images``, alone): a 20,000 x 20,000 uint8 image's pyramid (build time, bytes
  against the image's) and views of a window at full view, 10%, 1%, 0.1% and 1:1 (``bench/images.py``);
  then the same zooms in Chromium against HoloViews + Datashader in Panel (``bench/against_panel.py``);
- **many series** (``--series``, alone): 1,000 series x 1e5 rows in the process and over the
  websocket (``bench/series.py``), then against HoloViews + Datashader in Panel;
- **baselines**: the same line sent whole to the browser (time to first render, and to redraw
  after a zoom), and plotly-resampler in a Dash app: the HTTP round trip of its
  ``/_dash-update-component`` callback after a relayout, and its memory.

    .venv/bin/python -m pip install -r requirements-bench.txt
    .venv/bin/python bench/large_data.py                       # 1e6, 1e7, 1e8; the server parts on 1e7
    .venv/bin/python bench/large_data.py --server-size 1e8     # the server parts on 1e8 too (1.6 GB)
    .venv/bin/python bench/large_data.py --images              # a 20,000² uint8 image (bench/images.py)
    .venv/bin/python bench/large_data.py --images --image-size 100000   # 10 GB (12.5 GB of disk)
    .venv/bin/python bench/large_data.py --series              # only many series (bench/series.py)
    .venv/bin/python bench/large_data.py --sizes 1e6 --server-size 1e9 --no-plotly   # 16 GB; 35 GB of disk at most
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import requests
import websockets

from common import CHROMIUM, CHROMIUM_ARGS, machine, revision, rss_mib, server_env  # noqa: I001

from bokehsite import protocol
from datasets import summaries
from datasets.aggregation import line_view, points_view
from tests.servers import DaphneServer, free_port

WIDTH, HEIGHT = 1000, 400
ZOOMS = (1.0, 0.1, 0.01, 0.001)


def p(values, q):
    return float(np.percentile(values, q)) if values else float("nan")


def timed(function, repeat: int) -> float:
    """The median time of ``function()`` in ms."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def walk(n: int, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """x = 0..n-1 and a random walk, written as .npy files in pieces (memory stays small,
    whatever n) and memory-mapped back."""
    rng = np.random.default_rng(n)
    x = np.lib.format.open_memmap(folder / "x.npy", mode="w+", dtype=np.float64, shape=(n,))
    y = np.lib.format.open_memmap(folder / "y.npy", mode="w+", dtype=np.float64, shape=(n,))
    last = 0.0
    for start in range(0, n, 10_000_000):
        piece = np.cumsum(rng.normal(size=min(10_000_000, n - start))) + last
        x[start:start + len(piece)] = np.arange(start, start + len(piece), dtype=np.float64)
        y[start:start + len(piece)] = piece
        last = float(piece[-1])
    x.flush()
    y.flush()
    del x, y
    return np.load(folder / "x.npy", mmap_mode="r"), np.load(folder / "y.npy", mmap_mode="r")


def window(n: int, zoom: float) -> tuple[int, int]:
    span = max(int(n * zoom), 10)
    start = (n - span) // 2
    return start, start + span


def zoom_views(x, y, levels, repeat: int) -> dict[float, float]:
    """The median time of a line view (ms) at each zoom, centred."""
    n, times = len(x), {}
    for zoom in ZOOMS:
        lo, hi = window(n, zoom)
        x0, x1 = float(x[lo]), float(x[hi - 1])
        line_view(x, y, levels, x0, x1, WIDTH)  # its pages mapped in
        times[zoom] = timed(lambda: line_view(x, y, levels, x0, x1, WIDTH), repeat)
    return times


def cache_sweeper():
    """A function that pushes everything out of the CPU's caches, by reading a buffer twice the
    size of the last-level cache (the highest level sysfs lists; 32 MiB if it lists none).
    Reading, not writing, so that no dirty line is left for the next view to write back."""
    caches = Path("/sys/devices/system/cpu/cpu0/cache")
    sizes = {}
    for index in caches.glob("index*"):
        with contextlib.suppress(OSError, ValueError):
            text = (index / "size").read_text().strip()
            size = int(text.rstrip("KM")) << (10 if text.endswith("K") else 20 if text.endswith("M") else 0)
            sizes[int((index / "level").read_text())] = size
    buffer = np.ones(2 * (sizes[max(sizes)] if sizes else 32 << 20) // 8)

    def sweep() -> None:
        buffer.sum()

    return sweep


def random_zoom_views(x, y, levels, count: int, sweep=None) -> dict[float, float]:
    """The median time of a line view (ms) at each zoom over ``count`` windows at random places,
    each drawn once after a pass over all of them that maps their pages in: unlike the centred
    window drawn again and again, each view finds little of what it reads in the CPU's caches.
    With ``sweep`` (``cache_sweeper``), the caches are emptied before each view: it finds nothing."""
    n, times = len(x), {}
    for zoom in ZOOMS:
        span = max(int(n * zoom), 10)
        starts = np.random.default_rng(int(1 / zoom)).integers(0, n - span + 1, count)
        windows = [(float(x[start]), float(x[start + span - 1])) for start in starts]
        for x0, x1 in windows:
            line_view(x, y, levels, x0, x1, WIDTH)
        took, faults = [], resource.getrusage(resource.RUSAGE_SELF).ru_majflt
        for x0, x1 in windows:
            if sweep is not None:
                sweep()
            start = time.perf_counter()
            line_view(x, y, levels, x0, x1, WIDTH)
            took.append((time.perf_counter() - start) * 1000)
        times[zoom] = statistics.median(took)
        if (read := resource.getrusage(resource.RUSAGE_SELF).ru_majflt - faults) > 0:
            print(f"  ({read} pages read from disk during the {zoom:g} views: not only the CPU's caches were missed)")
    return times


def flat_views(small: int, large: tuple, repeat: int) -> None:
    """A line view of ``small`` rows against one of the ``large`` (x, y, levels) at every zoom: at
    the centred window, and at random ones."""
    with tempfile.TemporaryDirectory(prefix="bench-large-") as folder:
        x, y = walk(small, Path(folder))
        summaries.build(y, Path(folder), "y")
        levels = summaries.open_levels(Path(folder), "y", y)
        sweep = cache_sweeper()
        ours = zoom_views(x, y, levels, repeat)
        ours_random = random_zoom_views(x, y, levels, repeat)
        ours_cold = random_zoom_views(x, y, levels, repeat, sweep)
    theirs = zoom_views(*large, repeat)
    theirs_random = random_zoom_views(*large, repeat)
    theirs_cold = random_zoom_views(*large, repeat, sweep)
    n = len(large[0])
    print(f"\nline views of the uploaded dataset against {small:,} rows, median of {repeat} (ms), {WIDTH} px")
    print(f"{'zoom':>6} {f'{small:,} rows':>14} {f'{n:,} rows':>16} {'ratio':>6}   random windows: "
          f"{f'{small:,} rows':>14} {f'{n:,} rows':>16} {'ratio':>6}   the same, CPU caches emptied before each: "
          f"{f'{small:,} rows':>14} {f'{n:,} rows':>16} {'ratio':>6}")
    for zoom in ZOOMS:
        print(f"{zoom * 100:>5g}% {ours[zoom]:>14.3f} {theirs[zoom]:>16.3f} {theirs[zoom] / ours[zoom]:>5.2f}x   "
              f"{'':>16}{ours_random[zoom]:>14.3f} {theirs_random[zoom]:>16.3f} "
              f"{theirs_random[zoom] / ours_random[zoom]:>5.2f}x   {'':>42}{ours_cold[zoom]:>14.3f} "
              f"{theirs_cold[zoom]:>16.3f} {theirs_cold[zoom] / ours_cold[zoom]:>5.2f}x")


# One viewer's random 1% windows in a fresh process, through datasets.storage as a server
# reads them (its prefetch included): from the first view on, and once the prefetch is done.
ONE_VIEWER = textwrap.dedent("""
    import resource, sys, time
    import django
    django.setup()
    import numpy as np
    from datasets import storage
    from datasets.aggregation import line_view
    from datasets.models import Dataset
    dataset = Dataset.objects.get(pk=sys.argv[1])
    views, width = int(sys.argv[2]), int(sys.argv[3])
    start = opened = time.perf_counter()
    columns = storage.open_columns(dataset)
    x, y, levels = columns[dataset.x_column], columns["y"], storage.summary_levels(dataset, "y")
    n = len(x)
    line_view(x, y, levels, 0.0, n * 0.01, width)
    print(f"first {(time.perf_counter() - start) * 1000:.1f}")
    rng = np.random.default_rng(7)

    def run(label):
        times, faults = [], resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(views):
            x0 = float(rng.uniform(0, n * 0.99))
            t = time.perf_counter()
            line_view(x, y, levels, x0, x0 + n * 0.01, width)
            times.append((time.perf_counter() - t) * 1000)
        after = resource.getrusage(resource.RUSAGE_SELF)
        print(label, np.percentile(times, 50), np.percentile(times, 99), max(times),
              (after.ru_minflt - faults.ru_minflt) / views, (after.ru_majflt - faults.ru_majflt) / views)

    run("at_once")
    storage.prefetch_done(600)
    print(f"prefetch_s {time.perf_counter() - opened:.1f}")
    run("prefetched")
""")


def wait_for_prefetch(pid: int, timeout: float = 300) -> float:
    """Wait until the server's mapped file pages (its prefetch) stop growing for 3 s; seconds waited."""
    start = last_change = time.monotonic()
    last = rss_mib(pid, "RssFile")
    while time.monotonic() - last_change < 3 and time.monotonic() - start < timeout:
        time.sleep(0.5)
        now = rss_mib(pid, "RssFile")
        if now > last + 1:
            last, last_change = now, time.monotonic()
    return last_change - start


def read_files(folder: Path) -> None:
    """Read a dataset's files once, into the page cache."""
    subprocess.run(["cat", *map(str, folder.iterdir())], stdout=subprocess.DEVNULL, check=True)


def drop_caches() -> bool:
    """Empty the page cache (root only): what a cold start reads comes from disk."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1")
        return True
    except OSError:
        return False


def one_viewer(env: dict[str, str], dataset_id: str, views: int) -> None:
    print(f"\none viewer, {views} random 1% windows in a fresh process (compute only, ms; faults a view)")
    for cold in (False, True):
        if cold and not drop_caches():
            print("  cold: not measured (emptying the page cache needs root)")
            continue
        if not cold:
            read_files(Path(env["BOKEHSITE_DATA_DIR"], "datasets", dataset_id))
        out = subprocess.run([sys.executable, "-c", ONE_VIEWER, dataset_id, str(views), str(WIDTH)],
                             env={**os.environ, "DJANGO_SETTINGS_MODULE": "bokehsite.settings", **env},
                             cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, check=True)
        lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
        label = "cold (page cache emptied)" if cold else "warm (files in the page cache)"
        print(f"  {label}: opening and a first view {float(lines['first']):.0f} ms; "
              f"prefetch done {float(lines['prefetch_s']):.1f} s after opening")
        for key, what in (("at_once", "from the first view on"), ("prefetched", "once the prefetch is done")):
            p50, p99, top, minor, major = map(float, lines[key].split())
            print(f"    {what:>26}: p50 {p50:.2f}, p99 {p99:.2f}, max {top:.1f}; {minor:.0f} minor, {major:.1f} major faults")


def compute(sizes: list[int], repeat: int) -> dict[int, float]:
    from tsdownsample import MinMaxLTTBDownsampler

    print(f"\ncompute: a line view at {WIDTH} px (median of {repeat}, ms); raw-scan floor beside it")
    print(f"{'rows':>12} {'zoom':>6} {'rows in view':>12} {'view':>8} {'y.min()':>9} {'MinMaxLTTB':>11} {'points':>7}")
    full = {}
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-large-") as folder:
            x, y = walk(n, Path(folder))
            start = time.perf_counter()
            size = summaries.build(y, Path(folder), "y")
            build = time.perf_counter() - start
            levels = summaries.open_levels(Path(folder), "y", y)
            downsampler = MinMaxLTTBDownsampler()
            for zoom in ZOOMS:
                lo, hi = window(n, zoom)
                x0, x1 = float(x[lo]), float(x[hi - 1])
                view_ms = timed(lambda: line_view(x, y, levels, x0, x1, WIDTH), repeat)
                points = len(line_view(x, y, levels, x0, x1, WIDTH).x)
                scan_ms = timed(lambda: y[lo:hi].min(), repeat)
                lttb_ms = timed(lambda: downsampler.downsample(x[lo:hi], y[lo:hi], n_out=2000, parallel=True), repeat)
                if zoom == 1.0:
                    full[n] = view_ms
                print(f"{n:>12,} {zoom * 100:>5g}% {hi - lo:>12,} {view_ms:>8.2f} {scan_ms:>9.2f} {lttb_ms:>11.2f} {points:>7}")
            print(f"{'':>12} summaries: built in {build:.2f} s, {size / 1e6:.1f} MB ({size / (8 * n):.0%} of y)")
    if len(full) > 1:
        small, large = min(full), max(full)
        print(f"full-range view, {large:,} rows against {small:,}: {full[large] / full[small]:.2f}x")
    return full


def scatter(n: int, repeat: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(3)
    with tempfile.TemporaryDirectory(prefix="bench-scatter-") as folder:
        for name in ("x", "y"):
            column = np.empty(n)
            for start in range(0, n, 10_000_000):
                column[start:start + 10_000_000] = rng.normal(size=min(10_000_000, n - start))
            np.save(Path(folder) / f"{name}.npy", column)
            del column
        x, y = (np.load(Path(folder) / f"{name}.npy", mmap_mode="r") for name in ("x", "y"))
        threads = ThreadPoolExecutor(2)
        points_view(x, y, -5, 5, -5, 5, WIDTH, HEIGHT, x_sorted=False, threads=threads)  # numba compiles
        full = timed(lambda: points_view(x, y, -5, 5, -5, 5, WIDTH, HEIGHT, x_sorted=False, threads=threads), repeat)
        deep = timed(lambda: points_view(x, y, 0, 0.01, 0, 0.01, WIDTH, HEIGHT, x_sorted=False, threads=threads), repeat)
        print(f"\nscatter: {n:,} points at {WIDTH}x{HEIGHT} px: full view (Datashader counts) {full:.0f} ms; "
              f"a 0.01 x 0.01 zoom (the points themselves, x unsorted: a full scan) {deep:.0f} ms")


# --- a server ------------------------------------------------------------------------------------


def backed_plot(session, dataset, title: str):
    from bokeh.document import Document

    from bokehsite.client import figure, server_source

    source = server_source(dataset, "line")
    plot = figure(width=WIDTH, height=HEIGHT, active_scroll="wheel_zoom", toolbar_location=None)
    plot.line("x", "y", source=source)
    doc = Document()
    doc.add_root(plot)
    session.use_doc(title)
    return session.push(doc), source.id


async def viewers_panning(url: str, document_id: str, source_id: str, n: int, viewers: int, requests_each: int):
    """Each viewer asks for views of random 1% windows, one after another; the round trips, ms."""
    rng = np.random.default_rng(viewers)

    async def viewer(index: int) -> list[float]:
        times = []
        async with websockets.connect(protocol.url(url, document_id), max_size=None) as socket:
            protocol.decode(await socket.recv(), sender=protocol.SERVER)  # hello
            for i in range(requests_each):
                span = n * 0.01
                x0 = float(rng.uniform(0, n - span))
                start = time.perf_counter()
                await socket.send(protocol.View(i, source_id, x0, x0 + span, WIDTH, HEIGHT).encode())
                while True:
                    message, _ = protocol.decode(await socket.recv(), sender=protocol.SERVER)
                    if isinstance(message, protocol.ViewData) and message.id == i:
                        break
                times.append((time.perf_counter() - start) * 1000)
        return times

    results = await asyncio.gather(*(viewer(i) for i in range(viewers)))
    return [t for r in results for t in r]


def websocket_views(server: DaphneServer, n: int, document_id: str, source_id: str) -> None:
    print(f"\nwebsocket: view requests of random 1% windows of {n:,} rows, {WIDTH} px")
    base = rss_mib(server.process.pid, "RssAnon")
    for viewers in (1, 10):
        times = asyncio.run(viewers_panning(server.url, document_id, source_id, n, viewers, 40))
        print(f"  {viewers:>2} viewer(s) at once: p50 {p(times, 50):.1f} ms, p99 {p(times, 99):.1f} ms ({len(times)} views)")

    async def hold() -> tuple[float, float]:
        """The server's own memory with 10 viewers holding a view of half the rows, and with 50 more:
        the slope leaves out what the first views cost once (their threads' memory, say)."""
        sockets, memory = [], []
        for count in (10, 50):
            for i in range(count):
                socket = await websockets.connect(protocol.url(server.url, document_id), max_size=None)
                await socket.recv()
                await socket.send(protocol.View(i, source_id, 0, n * 0.5, WIDTH, HEIGHT).encode())
                while not isinstance(protocol.decode(await socket.recv(), sender=protocol.SERVER)[0], protocol.ViewData):
                    pass
                sockets.append(socket)
            await asyncio.sleep(1)
            memory.append(rss_mib(server.process.pid, "RssAnon"))
        for socket in sockets:
            await socket.close()
        return memory[0], memory[1]

    ten, sixty = asyncio.run(hold())
    print(f"  server memory of its own (RssAnon: the mapped data, shared by every process, left out) "
          f"{base:.0f} MiB before, {ten:.0f} MiB with 10 viewers holding a view, {sixty:.0f} MiB with 60: "
          f"{(sixty - ten) / 50 * 1024:.0f} KiB a viewer")


# --- the browser ---------------------------------------------------------------------------------

# In the plot frame: the time from each wheel event to the next view painted.
WATCH_ZOOMS = """() => {
  const plot = document.getElementById("plot");
  window.__zooms = [];
  let wheel = null;
  document.addEventListener("wheel", () => { if (wheel === null) wheel = performance.now(); }, {capture: true});
  new MutationObserver(() => {
    if (wheel === null) return;
    const started = wheel;
    wheel = null;
    requestAnimationFrame(() => requestAnimationFrame(() => window.__zooms.push(performance.now() - started)));
  }).observe(plot, {attributes: true, attributeFilter: ["data-views-applied"]});
}"""


def browser_zooms(url: str, zooms: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 700})
        page.goto(url)
        page.frame_locator("#plot-frame").locator("#plot[data-views-applied]").wait_for(timeout=60_000)
        frame = next(f for f in page.frames if "/frame/" in f.url)
        frame.evaluate(WATCH_ZOOMS)
        box = page.frame_locator("#plot-frame").locator("canvas").first.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        for i in range(zooms):
            page.mouse.wheel(0, -200 if (i // 10) % 2 == 0 else 200)
            deadline = time.monotonic() + 10
            while frame.evaluate("window.__zooms.length") <= i and time.monotonic() < deadline:
                page.wait_for_timeout(5)
            page.wait_for_timeout(100)
        times = frame.evaluate("window.__zooms")
        browser.close()
    return times


def whole_line_in_the_browser(server: DaphneServer, session, n: int) -> None:
    """The same line sent whole: a plain ColumnDataSource of every row."""
    from bokeh.document import Document
    from bokeh.models import ColumnDataSource
    from playwright.sync_api import sync_playwright

    from bokehsite.client import figure

    x = np.arange(n, dtype=np.float64)
    y = np.cumsum(np.random.default_rng(n).normal(size=n))
    plot = figure(width=WIDTH, height=HEIGHT, active_scroll="wheel_zoom", toolbar_location=None)
    plot.line("x", "y", source=ColumnDataSource({"x": x, "y": y}))
    doc = Document()
    doc.add_root(plot)
    session.use_doc("whole line")
    info = session.push(doc)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 700})
        start = time.perf_counter()
        page.goto(info["url"])
        page.frame_locator("#plot-frame").locator("#plot[data-state=rendered]").wait_for(timeout=300_000)
        frame = next(f for f in page.frames if "/frame/" in f.url)
        frame.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
        first = time.perf_counter() - start
        redraws = []
        box = page.frame_locator("#plot-frame").locator("canvas").first.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        for _ in range(5):
            start = time.perf_counter()
            page.mouse.wheel(0, -200)
            frame.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
            redraws.append((time.perf_counter() - start) * 1000)
        browser.close()
    print(f"  the whole line ({n:,} points) in the browser: first render {first:.1f} s (page open to painted), "
          f"redraw after a zoom p50 {p(redraws, 50):.0f} ms")


# --- plotly-resampler ----------------------------------------------------------------------------

DASH_APP = textwrap.dedent("""
    import sys
    import numpy as np, plotly.graph_objects as go
    from dash import Dash, dcc, html
    from plotly_resampler import FigureResampler
    n, port = int(sys.argv[1]), int(sys.argv[2])
    x = np.arange(n, dtype=np.float64)
    y = np.cumsum(np.random.default_rng(n).normal(size=n))
    fig = FigureResampler(go.Figure(), default_n_shown_samples=2000)
    fig.add_trace(go.Scattergl(name="walk"), hf_x=x, hf_y=y)
    app = Dash(__name__)
    app.layout = html.Div([dcc.Graph(id="graph", figure=fig)])
    fig.register_update_graph_callback(app, "graph")
    app.run(host="127.0.0.1", port=port, debug=False)
""")


def plotly_resampler(n: int, repeat: int) -> dict[str, float]:
    port = free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
        script.write(DASH_APP)
    process = subprocess.Popen([sys.executable, script.name, str(n), str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                dependencies = requests.get(f"{base}/_dash-dependencies", timeout=5).json()
                break
            except requests.RequestException:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the Dash app did not start") from None
                time.sleep(0.5)
        callback = next(d for d in dependencies if d["inputs"][0]["property"] == "relayoutData")
        output = callback["output"]

        def relayout(value: dict) -> float:
            body = {"output": output, "outputs": {"id": "graph", "property": output.split(".", 1)[1]},
                    "inputs": [{"id": "graph", "property": "relayoutData", "value": value}],
                    "changedPropIds": ["graph.relayoutData"], "state": []}
            start = time.perf_counter()
            answer = requests.post(f"{base}/_dash-update-component", json=body, timeout=60)
            elapsed = (time.perf_counter() - start) * 1000
            if answer.status_code != 200 or b"walk" not in answer.content and b"data" not in answer.content:
                raise RuntimeError(f"plotly-resampler answered {answer.status_code}: {answer.text[:200]}")
            return elapsed

        figures = {}
        for zoom in (0.1, 0.01):
            lo, hi = window(n, zoom)
            relayout({"xaxis.range[0]": lo, "xaxis.range[1]": hi})  # warm
            figures[f"{zoom:.0%}"] = statistics.median(
                relayout({"xaxis.range[0]": lo + i, "xaxis.range[1]": hi + i}) for i in range(repeat))
        times = []
        for i in range(repeat):  # a reset, as plotly's button sends it: autorange beside showspikes
            relayout({"xaxis.range[0]": 1000 + i, "xaxis.range[1]": n // 3})
            times.append(relayout({"xaxis.autorange": True, "xaxis.showspikes": False}))
        figures["full (reset)"] = statistics.median(times)
        figures["rss"] = rss_mib(process.pid)
        return figures
    finally:
        process.terminate()
        process.wait(10)
        os.unlink(script.name)


def ours_over_websocket(url: str, document_id: str, source_id: str, n: int, repeat: int) -> dict[str, float]:
    async def run() -> dict[str, float]:
        figures = {}
        async with websockets.connect(protocol.url(url, document_id), max_size=None) as socket:
            await socket.recv()
            ids = iter(range(10**6))
            for label, zoom in (("10%", 0.1), ("1%", 0.01), ("full (reset)", 1.0)):
                lo, hi = window(n, zoom)
                times = []
                for i in range(repeat + 1):
                    request_id = next(ids)
                    start = time.perf_counter()
                    await socket.send(protocol.View(request_id, source_id, float(lo + i), float(hi - 1), WIDTH, HEIGHT).encode())
                    while not ((m := protocol.decode(await socket.recv(), sender=protocol.SERVER)[0])
                               and isinstance(m, protocol.ViewData) and m.id == request_id):
                        pass
                    times.append((time.perf_counter() - start) * 1000)
                figures[label] = statistics.median(times[1:])
        return figures

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1e6,1e7,1e8", help="rows for the compute table (default %(default)s)")
    parser.add_argument("--server-size", type=float, default=1e7, help="rows for the server parts (default %(default)g)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--zooms", type=int, default=40, help="wheel zooms timed in Chromium (default %(default)s)")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--no-compute", action="store_true", help="only the server parts")
    parser.add_argument("--no-plotly", action="store_true")
    parser.add_argument("--images", action="store_true", help="only the images part (bench/images.py)")
    parser.add_argument("--image-size", type=float, default=20_000, help="pixels a side of the image (default %(default)g)")
    parser.add_argument("--image-dir", default=None, help="where the image is written for a while (default: the temp dir)")
    parser.add_argument("--series", action="store_true",
                        help="only many series: 1,000 x 1e5 rows, in the process and over the websocket (bench/series.py)")
    parser.add_argument("--no-panel", action="store_true",
                        help="with --images or --series: not against HoloViews + Datashader in Panel")
    parser.add_argument("--panel-repeat", type=int, default=3,
                        help="timed rounds of zooms against Panel (default %(default)s)")
    parser.add_argument("--viewer-views", type=int, default=300,
                        help="random 1%% windows one viewer asks for (default %(default)s)")
    args = parser.parse_args()
    if args.series:
        import series

        series.main(["--repeat", str(min(args.repeat, 10))])
        if not args.no_panel:
            import against_panel

            against_panel.series(1000, 100_000, args.panel_repeat)
        return
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    print(f"bokehsite large-data benchmark; {machine()}")
    print(f"bokehsite at {revision()}")
    if args.images:
        import images

        images.run(int(args.image_size), args.repeat, args.image_dir)
        if not args.no_panel:
            import against_panel

            against_panel.images(int(args.image_size), args.panel_repeat, args.image_dir)
        return

    if not args.no_compute:
        compute(sizes, args.repeat)
        scatter(max(sizes), 5)

    n = int(args.server_size)
    from bokehsite.client import Session

    with tempfile.TemporaryDirectory(prefix="bench-server-") as data:
        env = server_env(data, BOKEHSITE_MAX_BODY_BYTES=str(1 << 30))
        with DaphneServer(env=env) as server, Session(server.url, timeout=600) as session:
            source = Path(data) / "source"
            source.mkdir()
            start = time.perf_counter()
            x, y = walk(n, source)
            print(f"\nserver: {n:,} rows ({2 * 8 * n / 1e9:.1f} GB) generated in {time.perf_counter() - start:.0f} s")
            start = time.perf_counter()
            dataset = session.upload_dataset("walk", {"x": x, "y": y}, require_sorted_x=True)
            took = time.perf_counter() - start
            print(f"  uploaded through the client in {took:.1f} s: {2 * 8 * n / 1e6 / took:.0f} MB/s over loopback "
                  "(start to finish, the summaries included)")
            del x, y
            for path in source.iterdir():  # the server has its copy: disk is not doubled from here on
                path.unlink()
            stored = Path(data) / "datasets" / dataset.id
            sx, sy = np.load(stored / "c0.npy", mmap_mode="r"), np.load(stored / "c1.npy", mmap_mode="r")
            flat_views(10 ** 6, (sx, sy, summaries.open_levels(stored, "c1", sy)), args.repeat)
            del sx, sy
            one_viewer(env, dataset.id, args.viewer_views)  # before any process keeps the files mapped
            read_files(stored)  # the page cache warm again
            info, source_id = backed_plot(session, dataset, "big line")
            asyncio.run(viewers_panning(server.url, info["id"], source_id, n, 1, 1))  # the server opens the dataset
            waited = wait_for_prefetch(server.process.pid)
            times = asyncio.run(viewers_panning(server.url, info["id"], source_id, n, 1, args.viewer_views))
            print(f"\none viewer over the websocket, {len(times)} random 1% windows once the server's prefetch is "
                  f"done ({waited:.0f} s after its first view): p50 {p(times, 50):.1f} ms, p99 {p(times, 99):.1f} ms, "
                  f"max {max(times):.1f} ms")
            websocket_views(server, n, info["id"], source_id)
            ours = ours_over_websocket(server.url, info["id"], source_id, n, args.repeat)
            if not args.no_browser:
                zooms = browser_zooms(info["url"], args.zooms)
                print(f"\nzoom to pixels in Chromium ({len(zooms)} wheel zooms): p50 {p(zooms, 50):.0f} ms, "
                      f"p99 {p(zooms, 99):.0f} ms, max {max(zooms):.0f} ms")
                print("\nbaselines:")
                whole_line_in_the_browser(server, session, min(n, 10_000_000))
            if not args.no_plotly:
                theirs = plotly_resampler(n, args.repeat)
                print(f"\nplotly-resampler 0.11 (Dash, one process) against bokehsite's view over the websocket, "
                      f"{n:,} rows, median ms:")
                print(f"  {'range':>14} {'plotly-resampler':>17} {'bokehsite':>10} {'ratio':>7}")
                for label in ("full (reset)", "10%", "1%"):
                    print(f"  {label:>14} {theirs[label]:>17.1f} {ours[label]:>10.2f} {theirs[label] / ours[label]:>6.1f}x")
                print(f"  memory: the Dash process {theirs['rss']:.0f} MiB RSS; the bokehsite server "
                      f"{rss_mib(server.process.pid):.0f} MiB RSS, of which "
                      f"{rss_mib(server.process.pid, 'RssAnon'):.0f} MiB its own (the rest: mapped data, shared)")
            else:
                print("\nbokehsite's view over the websocket, median ms: "
                      + ", ".join(f"{k} {v:.2f}" for k, v in ours.items()))


if __name__ == "__main__":
    main()
