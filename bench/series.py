"""Many series: how fast the view of 1,000 series x 1e5 rows sharing one x is (``datasets.series``),
at the full range and at 10%, 1% and 0.1% zoom: computed in the process (both cores), and through
a Daphne server's websocket (``view`` to ``view_data``, the dataset uploaded through the client).
Beside it, once: Datashader's line aggregation over the raw rows (each series' ``any``, summed),
the brute-force way to the same density image.

    .venv/bin/python bench/large_data.py --series                  # 1,000 x 1e5
    .venv/bin/python bench/series.py --series 1000 --rows 1e5      # the same, alone
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import websockets
from common import machine, revision, server_env

from bokehsite import protocol
from datasets import series as series_views
from datasets import summaries
from tests.servers import DaphneServer

WIDTH, HEIGHT = 1000, 400
ZOOMS = (1.0, 0.1, 0.01, 0.001)


def walks(n: int, count: int, folder: Path) -> tuple[np.ndarray, list[np.ndarray], list[list[np.ndarray]], float]:
    """x = 0..n-1 and ``count`` random walks, written as .npy files with their summaries and
    memory-mapped back; and the seconds the summaries took to build."""
    rng = np.random.default_rng(count)
    np.save(folder / "x.npy", np.arange(n, dtype=np.float64))
    ys, levels, build = [], [], 0.0
    for i in range(count):
        np.save(folder / f"y{i}.npy", np.cumsum(rng.normal(size=n)))
        y = np.load(folder / f"y{i}.npy", mmap_mode="r")
        start = time.perf_counter()
        summaries.build(y, folder, f"y{i}")
        build += time.perf_counter() - start
        ys.append(y)
        levels.append(summaries.open_levels(folder, f"y{i}", y))
    return np.load(folder / "x.npy", mmap_mode="r"), ys, levels, build


def window(n: int, zoom: float) -> tuple[float, float]:
    span = max(int(n * zoom), 10)
    start = (n - span) // 2
    return float(start), float(start + span - 1)


def y_range(ys: list[np.ndarray], levels: list[list[np.ndarray]]) -> tuple[float, float]:
    low = min(float(np.min(level[-1]["min"])) for level in levels)
    high = max(float(np.max(level[-1]["max"])) for level in levels)
    return low, high


def timed(function, repeat: int) -> tuple[float, float]:
    """The median and the best time of ``function()``, in ms (the best shows the floor on a busy machine)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), min(times)


def compute(n: int, count: int, repeat: int, reference: bool = True) -> None:
    print(f"\nmany series: {count:,} series x {n:,} rows ({count * n:,} points) at {WIDTH}x{HEIGHT} px, "
          f"median of {repeat}, ms (both cores)")
    with tempfile.TemporaryDirectory(prefix="bench-series-") as folder:
        x, ys, levels, build = walks(n, count, Path(folder))
        print(f"  summaries built in {build:.1f} s")
        y0, y1 = y_range(ys, levels)
        threads = ThreadPoolExecutor(2)
        series_views.view(x, ys, levels, 0.0, float(n - 1), y0, y1, WIDTH, HEIGHT, threads=threads)  # compiles
        print(f"  {'zoom':>6} {'rows in view':>13} {'view':>8} {'(best)':>7} {'one core':>9} {'(best)':>7} {'kind':>6} "
              f"{'M4 points':>10}")
        for zoom in ZOOMS:
            x0, x1 = window(n, zoom)
            view = series_views.view(x, ys, levels, x0, x1, y0, y1, WIDTH, HEIGHT, threads=threads)
            both = timed(lambda x0=x0, x1=x1: series_views.view(x, ys, levels, x0, x1, y0, y1, WIDTH, HEIGHT, threads=threads), repeat)
            one = timed(lambda x0=x0, x1=x1: series_views.view(x, ys, levels, x0, x1, y0, y1, WIDTH, HEIGHT), repeat)
            kind = "image" if view.image is not None else "lines"
            print(f"  {zoom * 100:>5g}% {view.rows * count:>13,} {both[0]:>8.1f} {both[1]:>7.1f} {one[0]:>9.1f} {one[1]:>7.1f} "
                  f"{kind:>6} {view.points:>10,}")
        if reference:
            import datashader
            import pandas

            canvas = datashader.Canvas(plot_width=WIDTH, plot_height=HEIGHT, x_range=(0.0, float(n - 1)), y_range=(y0, y1))
            start = time.perf_counter()
            image = np.zeros((HEIGHT, WIDTH), np.uint32)
            for y in ys:
                frame = pandas.DataFrame({"x": np.asarray(x), "y": np.asarray(y)}, copy=False)
                image += canvas.line(frame, "x", "y", agg=datashader.any()).values
            raw = (time.perf_counter() - start) * 1000
            ours = series_views.view(x, ys, levels, 0.0, float(n - 1), y0, y1, WIDTH, HEIGHT, threads=threads).image
            print(f"  Datashader over the raw rows (each series' any, summed), full range: {raw:,.0f} ms, one core; "
                  f"the same image: {np.array_equal(image, ours)}")


def over_websocket(n: int, count: int, repeat: int) -> None:
    """The dataset uploaded through the client to a Daphne server, a document drawing it, and the
    ``view`` to ``view_data`` round trip at each zoom."""
    from bokeh.document import Document
    from bokeh.models import Range1d
    from bokeh.plotting import figure

    from bokehsite.client import Session, server_source

    print(f"\nmany series over the websocket: {count:,} x {n:,}, {WIDTH}x{HEIGHT} px, median of {repeat}, ms")
    rng = np.random.default_rng(count)
    columns = {"x": np.arange(n, dtype=np.float64)}
    for i in range(count):
        columns[f"s{i}"] = np.cumsum(rng.normal(size=n))
    with tempfile.TemporaryDirectory(prefix="bench-series-server-") as data, \
            DaphneServer(env=server_env(data, BOKEHSITE_MAX_BODY_BYTES=str(1 << 30))) as server:
        with Session(server.url) as session:
            start = time.perf_counter()
            dataset = session.upload_dataset("series", columns, require_sorted_x=True)
            print(f"  {count + 1:,} columns uploaded in {time.perf_counter() - start:.1f} s")
            source = server_source(dataset, "lines", y=[f"s{i}" for i in range(count)])
            x0, x1, y0, y1 = protocol.read_mark(source.tags)["extent"]
            p = figure(width=WIDTH, height=HEIGHT, x_range=Range1d(x0, x1), y_range=Range1d(y0, y1))
            p.multi_line(xs="xs", ys="ys", source=source)
            doc = Document()
            doc.add_root(p)
            session.use_doc("many series")
            info = session.push(doc)

        async def run() -> dict[str, tuple[float, str]]:
            figures = {}
            async with websockets.connect(protocol.url(server.url, info["id"]), max_size=None) as socket:
                await socket.recv()
                ids = iter(range(10 ** 6))
                for zoom in ZOOMS:
                    lo, hi = window(n, zoom)
                    times, kind = [], ""
                    for i in range(repeat + 1):
                        request_id = next(ids)
                        start = time.perf_counter()
                        await socket.send(protocol.View(request_id, source.id, lo + i, hi, WIDTH, HEIGHT, y0, y1).encode())
                        while not ((m := protocol.decode(await socket.recv(), sender=protocol.SERVER)[0])
                                   and isinstance(m, protocol.ViewData) and m.id == request_id):
                            pass
                        times.append((time.perf_counter() - start) * 1000)
                        kind = m.kind
                    figures[f"{zoom * 100:g}%"] = (statistics.median(times[1:]), min(times[1:]), kind)
            return figures

        for label, (ms, best, kind) in asyncio.run(run()).items():
            print(f"  {label:>6} {ms:>8.1f} ms (best {best:.1f})  {kind}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--rows", type=float, default=1e5)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--no-reference", action="store_true", help="skip Datashader over the raw rows")
    parser.add_argument("--no-server", action="store_true", help="skip the websocket round trips")
    args = parser.parse_args(argv)
    print(f"bokehsite many-series benchmark; {machine()}")
    print(f"bokehsite at {revision()}")
    compute(int(args.rows), args.series, args.repeat, reference=not args.no_reference)
    if not args.no_server:
        over_websocket(int(args.rows), args.series, args.repeat)


if __name__ == "__main__":
    main()
