"""Views of many series that share one x (``server_source(dataset, "lines", y=[...])``): what one
viewer's plot shows of a range at its size in pixels.

Each series is reduced to its M4 line first: for each pixel column, its first, last, lowest and
highest row (``datasets.aggregation``), the extremes found in its min/max summaries
(``datasets.summaries``), so the cost grows with the series and the pixels, not the rows. The
pixel columns are Datashader's: row r is in column ``int(x[r] * sx + tx)`` with
``sx = width / (x1 - x0)``, ``tx = -x0 * sx``, x1 itself in the last column.

While the lines hold at most ``LINE_POINTS`` points in all they are the view (``kind`` "lines"),
one line a series. Past that the view is a density image (``kind`` "image"): for each pixel,
the number of series whose line touches it, each line drawn as Datashader draws lines (its
clipping and Bresenham rasterization, no antialiasing) from its M4 points. Within one pixel column
the M4 points are joined by vertical runs that cover exactly the rows between the column's lowest
and highest point, and between columns by the same segment as the raw rows, so for a series
without NaNs this is exactly ``Canvas.line(raw rows, agg=any())``, summed over the series. A NaN
breaks a line; one inside a pixel column that is neither its first nor its last row is bridged,
as in line views. The clipping is Datashader's own function (``_liang_barsky``); the rest of its
line drawing is repeated here, for a kernel that counts each series once a pixel.

Given an executor, the series are split in two halves, each found and drawn on its own thread
into its own image; the two are summed. Plain functions of arrays: no Django, no network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from datashader.glyphs.line import _liang_barsky

from datasets import summaries
from datasets.aggregation import RAW_ROWS_PER_PIXEL

# Up to this many points in all (every series' M4 line together) the lines are sent; past it the
# density image. BokehJS draws 100k points of lines in about 0.1 s in a software canvas; 1,000
# series of 0.1% of 1e5 rows (102k points) are lines.
LINE_POINTS = 200_000


@dataclass
class SeriesView:
    """The lines (``xs``, ``ys``: one array of each series, in order), or the density image
    (``image``: height by width, row 0 at y0, how many series touch each pixel)."""

    xs: list[np.ndarray] | None
    ys: list[np.ndarray] | None
    image: np.ndarray | None
    rows: int  # rows of each series inside the x range
    points: int  # points of the M4 lines, in all


def scale(start: float, end: float, n: int) -> tuple[float, float]:
    """Datashader's mapping of ``[start, end]`` onto ``n`` pixels: ``pixel = int(value * s + t)``."""
    s = n / (end - start)
    return s, -start * s


@numba.njit(nogil=True, cache=True)
def _pixel(value, s, t, last):  # pragma: no cover
    p = int(value * s + t)
    return min(p, last)


@numba.njit(nogil=True, cache=True)
def _column_bounds(x, first, end, s, t, width):  # pragma: no cover
    """For each pixel column p, the first row of ``[first, end)`` whose pixel is p or more (x
    sorted, so pixels never decrease); entry ``width`` is ``end``."""
    bounds = np.empty(width + 1, np.int64)
    lo = first
    for p in range(width):
        hi = end
        while lo < hi:
            mid = (lo + hi) // 2
            if _pixel(float(x[mid]), s, t, width - 1) < p:
                lo = mid + 1
            else:
                hi = mid
        bounds[p] = lo
    bounds[width] = end
    return bounds


@dataclass
class Columns:
    """The rows of the x range and how they fall into pixel columns, shared by every series."""

    first: int  # the first row with x >= x0
    end: int  # one past the last with x <= x1
    before: bool  # a row before the range exists (``first - 1``), kept so the line reaches the edge
    after: bool  # a row after it (``end``)
    raw: bool  # few rows: the rows themselves, not M4
    starts: np.ndarray  # each non-empty pixel column's rows: [starts, ends)
    ends: np.ndarray


def columns(x: np.ndarray, x0: float, x1: float, width: int) -> Columns:
    """How the rows with x in ``[x0, x1]`` (``x`` sorted ascending) fall into ``width`` pixel columns."""
    n = len(x)
    first = int(np.searchsorted(x, x0, "left"))
    end = int(np.searchsorted(x, x1, "right"))
    raw = end - first <= RAW_ROWS_PER_PIXEL * width
    if raw:
        starts = ends = np.empty(0, np.int64)
    else:
        s, t = scale(x0, x1, width)
        bounds = _column_bounds(x, first, end, s, t, width)
        filled = bounds[1:] > bounds[:-1]
        starts, ends = bounds[:-1][filled], bounds[1:][filled]
    return Columns(first, end, first > 0, end < n, raw, starts, ends)


def m4_rows(y: np.ndarray, levels: list[np.ndarray], cols: Columns) -> np.ndarray:
    """The rows of one series' M4 line, in row order: each pixel column's first, last, lowest and
    highest (once each), and the rows just outside the range; all rows of it when ``cols.raw``."""
    lo, hi = cols.first - cols.before, cols.end + cols.after
    if cols.raw:
        return np.arange(lo, hi, dtype=np.int64)
    _, at_low, _, at_high = summaries.extremes(y, levels, cols.starts, cols.ends)
    return _picked(cols.starts, cols.ends, at_low, at_high, lo, hi, cols.first, cols.end)


@numba.njit(nogil=True, cache=True)
def _picked(starts, ends, at_low, at_high, lo, hi, first, end):  # pragma: no cover
    out = np.empty(4 * len(starts) + 2, np.int64)
    k = 0
    if lo < first:
        out[k] = lo
        k += 1
    for i in range(len(starts)):
        # first <= low, high <= last: only the middle two may need swapping
        a, b, c, d = starts[i], min(at_low[i], at_high[i]), max(at_low[i], at_high[i]), ends[i] - 1
        out[k] = a
        k += 1
        if b != a:
            out[k] = b
            k += 1
        if c != b:
            out[k] = c
            k += 1
        if d != c:
            out[k] = d
            k += 1
    if hi > end:
        out[k] = end
        k += 1
    return out[:k]


def lines(x: np.ndarray, ys: list[np.ndarray], levels: list[list[np.ndarray]], x0: float, x1: float,
          width: int, *, threads=None) -> tuple[Columns, list[np.ndarray]]:
    """Every series' M4 rows over ``[x0, x1]`` at ``width`` pixel columns; ``threads``: an
    executor that takes halves of the series at once."""
    cols = columns(x, x0, x1, width)
    if cols.raw:
        rows = m4_rows(ys[0], levels[0], cols) if ys else np.empty(0, np.int64)
        return cols, [rows] * len(ys)

    def part(indices: range) -> list[np.ndarray]:
        return [m4_rows(ys[i], levels[i], cols) for i in indices]

    return cols, _spread(part, len(ys), threads)


def _spread(function, n: int, threads) -> list:
    """``function(range(n))``, in two halves on ``threads`` when given."""
    if threads is None or n < 2:
        return function(range(n))
    halves = [range(n // 2), range(n // 2, n)]
    return [item for half in threads.map(function, halves) for item in half]


def view(x: np.ndarray, ys: list[np.ndarray], levels: list[list[np.ndarray]], x0: float, x1: float,
         y0: float, y1: float, width: int, height: int, *, threads=None, line_points: int | None = None) -> SeriesView:
    """The view of the series ``ys`` against ``x`` (sorted) over ``[x0, x1]`` by ``[y0, y1]``:
    their M4 lines while they hold at most ``line_points`` (``LINE_POINTS``) points in all, else
    the density image."""
    line_points = LINE_POINTS if line_points is None else line_points
    x0, x1, y0, y1 = float(x0), float(x1), float(y0), float(y1)  # JSON's integers too: one compiled kernel
    cols = columns(x, x0, x1, width)
    inside = cols.end - cols.first
    # Each series has at least a point a pixel column that holds rows (all its rows, when raw).
    fewest = (inside + cols.before + cols.after) if cols.raw else len(cols.starts)
    rows: list[np.ndarray] | None = None
    if fewest * len(ys) <= line_points:
        cols, rows = lines(x, ys, levels, x0, x1, width, threads=threads)
        points = sum(len(r) for r in rows)
        if points <= line_points:
            # The rows themselves: the same x for every series, made once.
            xs = [_floats(x, rows[0])] * len(rows) if cols.raw and rows else [_floats(x, r) for r in rows]
            return SeriesView(xs, [_floats(y, r) for y, r in zip(ys, rows)], None, inside, points)
    sx, tx = scale(x0, x1, width)
    sy, ty = scale(y0, y1, height)
    shared_x = _floats(x, m4_rows(ys[0], levels[0], cols)) if cols.raw and ys else None

    def part(indices: range) -> list[tuple[np.ndarray, int]]:
        # Surely an image: each series' M4 rows are drawn as soon as they are found.
        image = np.zeros((height, width), np.uint32)
        stamp = np.full((height, width), -1, np.int64)
        points = 0
        for i in indices:
            r = rows[i] if rows is not None else m4_rows(ys[i], levels[i], cols)
            _draw(shared_x if shared_x is not None else _floats(x, r), _floats(ys[i], r), i,
                  sx, tx, sy, ty, x0, x1, y0, y1, image, stamp)
            points += len(r)
        return [(image, points)]

    drawn = _spread(part, len(ys), threads)
    image = drawn[0][0] if len(drawn) == 1 else np.add(drawn[0][0], drawn[1][0])
    return SeriesView(None, None, image, inside, sum(points for _, points in drawn))


def warm_up() -> None:
    """Compile the kernels, or load them from numba's cache (Datashader's clipping is compiled
    in every process: about a second), so that the first viewer of many series does not wait."""
    x = np.arange(64, dtype=np.float64)
    y = np.sin(x)
    levels = [summaries.summarize(y)[0]]
    for array in (x, y, *levels):  # held read-only, as the maps of a dataset are (numba types them so)
        array.setflags(write=False)
    view(x, [y, y], [levels, levels], 0.0, 63.0, -1.0, 1.0, 4, 4, line_points=0)
    view(x, [y, y], [levels, levels], 0.0, 63.0, -1.0, 1.0, 4, 4)


def _floats(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return np.asarray(np.asarray(values)[rows], dtype=np.float64)  # a plain view: no memmap indexing


@numba.njit(nogil=True, cache=True)
def _touch(image, stamp, series, px, py):  # pragma: no cover
    if stamp[py, px] != series:  # each pixel counts a series once
        stamp[py, px] = series
        image[py, px] += 1


@numba.njit(nogil=True, cache=True)
def _to_pixel(v, s, t, last_plus_one):  # pragma: no cover
    p = int(v * s + t)
    return p - 1 if p == last_plus_one else p  # Datashader's "snap": the upper bound in the last pixel


@numba.njit(nogil=True, cache=True)
def _draw(xs, ys, series, sx, tx, sy, ty, xmin, xmax, ymin, ymax, image, stamp):  # pragma: no cover
    """Add line ``series`` to ``image`` as Datashader draws a line (``glyphs.line``: Liang-Barsky
    clipping, its mapping onto pixels, Bresenham, no antialiasing); ``stamp`` holds the last
    series that counted each pixel."""
    xxmax, yymax = round(xmax * sx + tx), round(ymax * sy + ty)
    for i in range(len(xs) - 1):
        x0, y0, x1, y1 = xs[i], ys[i], xs[i + 1], ys[i + 1]
        if (xmin <= x0 <= xmax and xmin <= x1 <= xmax and ymin <= y0 <= ymax and ymin <= y1 <= ymax):
            # inside (so no NaN): what Liang-Barsky would leave as it is
            clipped_start = clipped = False
        else:
            skip = np.isnan(x0) or np.isnan(y0) or np.isnan(x1) or np.isnan(y1)
            x0, x1, y0, y1, skip, clipped_start, clipped_end = _liang_barsky(
                xmin, xmax, ymin, ymax, x0, x1, y0, y1, skip)
            if skip:
                continue
            clipped = clipped_start or clipped_end
        start = i == 0 or np.isnan(xs[i - 1]) or np.isnan(ys[i - 1]) or clipped_start
        px0, py0 = _to_pixel(x0, sx, tx, xxmax), _to_pixel(y0, sy, ty, yymax)
        px1, py1 = _to_pixel(x1, sx, tx, xxmax), _to_pixel(y1, sy, ty, yymax)
        # Bresenham, as Datashader's ``_bresenham``
        dx = px1 - px0
        ix = (dx > 0) - (dx < 0)
        dx = abs(dx) * 2
        dy = py1 - py0
        iy = (dy > 0) - (dy < 0)
        dy = abs(dy) * 2
        if not clipped and not (dx | dy):
            _touch(image, stamp, series, px0, py0)
            continue
        if start:
            _touch(image, stamp, series, px0, py0)
        if dx >= dy:
            error = 2 * dy - dx
            while px0 != px1:
                if error >= 0 and (error or ix > 0):
                    error -= 2 * dx
                    py0 += iy
                error += 2 * dy
                px0 += ix
                _touch(image, stamp, series, px0, py0)
        else:
            error = 2 * dx - dy
            while py0 != py1:
                if error >= 0 and (error or iy > 0):
                    error -= 2 * dy
                    px0 += ix
                error += 2 * dx
                py0 += iy
                _touch(image, stamp, series, px0, py0)
