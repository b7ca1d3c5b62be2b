"""Views of large datasets: what one viewer's plot shows of a range at its size in pixels.

A line view (``line_view``) is the M4 aggregation (Jugel et al., VLDB 2014): for each pixel column
of the visible x range, the first, the last, the lowest and the highest point of the rows that
fall in it, in row order. Drawn as a line, that is the same picture as the raw rows. The lowest
and highest come from the column's min/max summaries (``datasets.summaries``), so the work grows
with the pixels and the logarithm of the rows, not with the rows; the point just before and just
after the range are kept, so that the line runs to the edges. A range with no more than a few
rows a pixel column is sent raw.

Plain functions of arrays (memory maps of the stored columns): no Django, no network.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

from datasets import summaries

# Up to this many rows a pixel column the rows themselves are cheaper to send than the view.
RAW_ROWS_PER_PIXEL = 4


@dataclass
class LineView:
    """What a line view holds: its points, and how many rows they stand for."""

    x: np.ndarray
    y: np.ndarray
    rows: int  # rows inside the range
    raw: bool  # the rows themselves, not an aggregate


def line_view(x: np.ndarray, y: np.ndarray, levels: list[np.ndarray], x0: float, x1: float, width: int) -> LineView:
    """The M4 view of the rows whose x is in ``[x0, x1]`` (``x`` sorted ascending) at ``width``
    pixel columns, with the rows just outside on each side. ``levels`` are ``y``'s summaries."""
    n = len(x)
    first = int(np.searchsorted(x, x0, "left"))
    end = int(np.searchsorted(x, x1, "right"))
    lo, hi = max(first - 1, 0), min(end + 1, n)
    inside = end - first
    if inside <= RAW_ROWS_PER_PIXEL * width:
        return LineView(np.asarray(x[lo:hi]), np.asarray(y[lo:hi]), inside, True)
    # Pixel column p holds the rows with x in [edge p, edge p+1); the last one includes x1.
    edges = x0 + (x1 - x0) * (np.arange(width + 1) / width)
    _load_guesses(np.asarray(x), edges, first, end)
    bounds = _search_sorted(np.asarray(x), edges, first, end)
    bounds[-1] = end
    starts, ends = bounds[:-1], bounds[1:]
    filled = ends > starts
    starts, ends = starts[filled], ends[filled]
    low, at_low, high, at_high = summaries.extremes(y, levels, starts, ends)
    if y.dtype.kind == "f" and levels and levels[0].dtype["min"] == y.dtype:
        # The summaries hold y's own values (the same bits): reading y at the extremes' rows,
        # anywhere in each pixel column, would cost two more cache and TLB misses a column.
        low_y, high_y = low.astype(y.dtype, copy=False), high.astype(y.dtype, copy=False)
    else:
        low_y, high_y = np.asarray(y[at_low]), np.asarray(y[at_high])
    picked, picked_y = _m4_rows(np.asarray(y), starts, ends, at_low, at_high, low_y, high_y,
                                first - 1 if first > 0 else -1, end if end < n else -1)
    return LineView(np.asarray(x[picked]), picked_y, inside, False)


@numba.njit(nogil=True, cache=True)
def _m4_rows(y, starts, ends, at_low, at_high, low_y, high_y, before, after):  # pragma: no cover
    """The rows of the view, in row order, and their y: each pixel column's first, last, lowest
    and highest row (a row that is two of them once), with ``before`` and ``after`` (unless -1).
    An infinite extreme may stand for a column of NaNs (which has none), so y says there."""
    rows = np.empty(4 * len(starts) + 2, np.int64)
    values = np.empty(4 * len(starts) + 2, y.dtype)
    count = 0
    if before >= 0:
        rows[0], values[0] = before, y[before]
        count = 1
    for i in range(len(starts)):
        r0, r1, r2, r3 = starts[i], ends[i] - 1, at_low[i], at_high[i]
        v0, v1, v2, v3 = y[r0], y[r1], low_y[i], high_y[i]
        if not abs(float(v2)) < np.inf:
            v2 = y[r2]
        if not abs(float(v3)) < np.inf:
            v3 = y[r3]
        # Sorting network on four rows, each carrying its value.
        if r1 < r0:
            r0, r1, v0, v1 = r1, r0, v1, v0
        if r3 < r2:
            r2, r3, v2, v3 = r3, r2, v3, v2
        if r2 < r0:
            r0, r2, v0, v2 = r2, r0, v2, v0
        if r3 < r1:
            r1, r3, v1, v3 = r3, r1, v3, v1
        if r2 < r1:
            r1, r2, v1, v2 = r2, r1, v2, v1
        rows[count], values[count] = r0, v0
        count += 1
        for r, v in ((r1, v1), (r2, v2), (r3, v3)):
            if r != rows[count - 1]:
                rows[count], values[count] = r, v
                count += 1
    if after >= 0:
        rows[count], values[count] = after, y[after]
        count += 1
    return rows[:count], values[:count]


@numba.njit(nogil=True, cache=True)
def _load_guesses(x, edges, first, end):  # pragma: no cover
    """Load the row ``_search_sorted`` guesses first for each edge, summed (so that the loads are
    kept): over a column larger than the caches each is a cache and TLB miss, and here they
    overlap, where the search takes them one after another."""
    total = 0.0
    if first < end:
        a, b = float(x[first]), float(x[end - 1])
        if a < b:
            for k in range(len(edges)):
                m = first + int((min(max(edges[k], a), b) - a) / (b - a) * (end - 1 - first))
                total += float(x[m])
    return total


@numba.njit(nogil=True, cache=True)
def _search_sorted(x, edges, first, end):  # pragma: no cover
    """``np.searchsorted(x[first:end], edges, "left") + first`` for ascending ``edges``, reading
    few rows of ``x`` however long it is: each edge's row is guessed by interpolating between
    the previous edge's row and ``end``, then found by galloping from the guess and bisecting.
    Evenly spaced x (a clock, a counter) takes a probe or two an edge, all near one another;
    any other sorted x costs at most about twice a binary search."""
    found = np.empty(len(edges), np.int64)
    lo = first
    a = b = 0.0
    if first < end:
        a, b = float(x[first]), float(x[end - 1])
    for k in range(len(edges)):
        e = edges[k]
        hi = end
        if lo < hi:
            # The guess interpolates between the range's ends, not from the previous edge's row:
            # then no guess waits for a row loaded for the one before, and the loads overlap.
            if e <= a or b <= a:
                m = lo
            elif e > b:
                m = hi - 1
            else:
                m = min(max(first + int((e - a) / (b - a) * (end - 1 - first)), lo), hi - 1)
            step = 1
            if x[m] < e:  # the row is past m: gallop right
                lo = m + 1
                while True:
                    probe = lo + step - 1
                    if probe >= hi:
                        break
                    if x[probe] >= e:
                        hi = probe
                        break
                    lo, step = probe + 1, step * 2
            else:  # at m or before it: gallop left
                hi = m
                while True:
                    probe = hi - step
                    if probe < lo:
                        break
                    if x[probe] < e:
                        lo = probe + 1
                        break
                    hi, step = probe, step * 2
            while lo < hi:  # the row is in [lo, hi]
                mid = (lo + hi) // 2
                if x[mid] < e:
                    lo = mid + 1
                else:
                    hi = mid
        found[k] = lo
    return found


def warm_up() -> None:
    """Compile the summaries' kernels for float64 columns, or load them from numba's cache, so
    that the first viewer does not wait about a second for it. Draws a line view of a column
    stored and mapped as a dataset's are (the kernels are typed by how their arrays are held),
    tall enough that its summaries reach the levels whose offsets are 32-bit."""
    with tempfile.TemporaryDirectory(prefix="bokehsite-warm-up-") as folder:
        path = Path(folder)
        rows = 2 * summaries.BRANCH ** 6  # a pixel column of half of them climbs to level 6
        np.save(path / "x.npy", np.arange(rows, dtype=np.float64))
        np.save(path / "y.npy", np.sin(np.arange(rows, dtype=np.float64)))
        x, y = np.load(path / "x.npy", mmap_mode="r"), np.load(path / "y.npy", mmap_mode="r")
        summaries.build(y, path, "y")
        line_view(x, y, summaries.open_levels(path, "y", y), 0.0, float(rows - 1), 2)
    # Views of many series too (imported here: that module imports this one).
    from datasets import series

    series.warm_up()


# Up to this many points in the visible range a scatter gets the points themselves; past it, an
# image of how many fall in each pixel (BokehJS draws 100k points in about 0.75 s).
RAW_POINTS = 20_000
# Rows aggregated at once by one thread: the work is split so that both cores take part.
_AGGREGATE_ROWS = 1 << 24


@dataclass
class PointsView:
    """What a scatter view holds: the points in range (``image`` None), or the count of points in
    each pixel (``image``, height by width, row 0 at y0) over ``[x0, x1]`` by ``[y0, y1]``."""

    x: np.ndarray | None
    y: np.ndarray | None
    image: np.ndarray | None
    rows: int  # points inside the range


def points_view(x: np.ndarray, y: np.ndarray, x0: float, x1: float, y0: float, y1: float,
                width: int, height: int, *, x_sorted: bool, threads=None) -> PointsView:
    """The points with x in ``[x0, x1]`` and y in ``[y0, y1]``: themselves when there are at most
    ``RAW_POINTS``, else Datashader's count of them per pixel. ``threads``: an executor that
    takes pieces of the rows at once (each is counted alone, and the counts summed)."""
    if x_sorted:  # only the rows in the x range need looking at
        first, end = int(np.searchsorted(x, x0, "left")), int(np.searchsorted(x, x1, "right"))
    else:
        first, end = 0, len(x)
    xs, ys = x[first:end], y[first:end]
    pieces = [(start, min(start + _AGGREGATE_ROWS, len(xs))) for start in range(0, len(xs), _AGGREGATE_ROWS)]
    spread = threads.map if threads is not None and len(pieces) > 1 else map

    def points(piece: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        px, py = xs[piece[0]:piece[1]], ys[piece[0]:piece[1]]
        at = np.flatnonzero((px >= x0) & (px <= x1))
        at = at[(py[at] >= y0) & (py[at] <= y1)]
        return np.asarray(px[at]), np.asarray(py[at])

    def gathered() -> PointsView:
        found = list(spread(points, pieces)) or [(np.empty(0), np.empty(0))]
        px, py = np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])
        return PointsView(px, py, None, len(px))

    if end - first <= 4 * RAW_POINTS:
        view = gathered()
        if view.rows <= RAW_POINTS:
            return view

    def count(piece: tuple[int, int]) -> np.ndarray:
        return _count(xs[piece[0]:piece[1]], ys[piece[0]:piece[1]], x0, x1, y0, y1, width, height)

    counts = list(spread(count, pieces))
    image = np.sum(counts, axis=0, dtype=np.uint32) if len(counts) > 1 else counts[0]
    if image.sum(dtype=np.int64) <= RAW_POINTS:  # sparse after all: the points are cheaper to draw
        return gathered()
    return PointsView(None, None, image, int(image.sum(dtype=np.int64)))


def _count(x: np.ndarray, y: np.ndarray, x0: float, x1: float, y0: float, y1: float, width: int, height: int) -> np.ndarray:
    """How many of the points fall in each pixel: Datashader's ``count``, rows from y0 up."""
    import datashader  # imported on first use: it takes a second (numba)
    import pandas

    canvas = datashader.Canvas(plot_width=width, plot_height=height, x_range=(x0, x1), y_range=(y0, y1))
    frame = pandas.DataFrame({"x": x, "y": y}, copy=False)  # the memory maps, not a copy
    return canvas.points(frame, "x", "y", agg=datashader.count()).values
