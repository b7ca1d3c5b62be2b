"""Images larger than memory: the pyramid's build time and size, and how fast a view of a window
is at full view, 10%, 1% and 0.1% zoom and at 1:1 (``datasets.rasters``), mean and max.

Run through ``bench/large_data.py --images`` (``--image-size 100000`` for a 10 GB image; it
needs 12.5 GB of free disk for a while). The image is written to a temporary folder (``--image-dir``
to choose where) and deleted afterwards.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from datasets import rasters

PLOT = (1200, 800)  # width, height in screen pixels
ZOOMS = (1.0, 0.1, 0.01, 0.001)


def write_image(path: Path, side: int) -> np.ndarray:
    """A ``side`` x ``side`` uint8 image (gradients and noise), written in strips."""
    image = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(side, side))
    rng = np.random.default_rng(0)
    columns = (np.arange(side) * 255 // max(side - 1, 1)).astype(np.uint16)
    strip = max(1, (64 << 20) // side)
    for first in range(0, side, strip):
        rows = (np.arange(first, min(first + strip, side)) % 240).astype(np.uint16)[:, None]
        noise = rng.integers(0, 16, (len(rows), side), dtype=np.uint8)
        image[first:first + len(rows)] = ((columns + rows) % 240).astype(np.uint8) + noise
    image.flush()
    del image
    return np.load(path, mmap_mode="r")


def views(image: np.ndarray, levels: list[rasters.Level], repeat: int) -> None:
    side = image.shape[0]
    width, height = PLOT
    rng = np.random.default_rng(1)
    extent = (0.0, float(side), 0.0, float(side))
    windows = [(f"{zoom:.1%}", side * zoom, side * zoom * height / width) for zoom in ZOOMS]
    windows.append(("1:3.99", 3.99 * width, 3.99 * height))  # the most image pixels a view reads
    windows.append(("1:1", float(width), float(height)))
    print(f"  view of a window at {width} x {height} screen pixels, ms (median and max of {repeat}, "
          "each at a random place):")
    print(f"  {'window':>8} {'level':>6} {'view px':>11} {'mean p50':>9} {'max':>7} {'max p50':>8} {'max':>7}"
          f" {'encoding the mean, p50':>23}")
    for label, span_x, span_y in windows:
        row, encoding = [], []
        for reduce in ("mean", "max"):
            times = []
            for _ in range(repeat):
                x0 = rng.uniform(0, max(side - span_x, 0))
                y0 = rng.uniform(0, max(side - span_y, 0))
                start = time.perf_counter()
                view = rasters.view(image, levels, extent, x0, x0 + span_x, y0, y0 + span_y, width, height, reduce)
                times.append((time.perf_counter() - start) * 1000)
                if reduce == "mean":  # as it goes on the wire (16-bit steps for a uint8 image's means)
                    start = time.perf_counter()
                    rasters.for_the_page(view.image, image.dtype)
                    encoding.append((time.perf_counter() - start) * 1000)
            row.append((statistics.median(times), max(times), view))
        view = row[0][2]
        shape = f"{view.image.shape[1]}x{view.image.shape[0]}"
        print(f"  {label:>8} {view.level:>6} {shape:>11} {row[0][0]:>9.1f} {row[0][1]:>7.1f} {row[1][0]:>8.1f} "
              f"{row[1][1]:>7.1f} {statistics.median(encoding):>23.2f}")


def run(side: int, repeat: int, folder: str | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-image-", dir=folder) as data:
        path = Path(data) / "c0.npy"
        start = time.perf_counter()
        image = write_image(path, side)
        print(f"\nimages: a {side:,} x {side:,} uint8 image ({side * side / 1e9:.1f} GB) written in "
              f"{time.perf_counter() - start:.1f} s")
        rasters.warm_up()
        start = time.perf_counter()
        rasters.build(image, Path(data), "c0")
        built = time.perf_counter() - start
        raw = path.stat().st_size
        pyramid = sum(p.stat().st_size for p in Path(data).glob("c0.*[0-9].npy"))
        levels = rasters.open_levels(Path(data), "c0", image)
        print(f"  pyramid: {len(levels)} levels (factors {levels[0].factor} to {levels[-1].factor}) built in "
              f"{built:.1f} s ({raw / built / 1e6:.0f} MB/s), {pyramid / 1e6:.1f} MB = {pyramid / raw:.3f} of the "
              f"image's {raw / 1e6:.0f} MB")
        views(image, levels, repeat)
        del image, levels
