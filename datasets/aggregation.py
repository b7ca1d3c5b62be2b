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

from dataclasses import dataclass

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
    bounds = np.searchsorted(x[first:end], edges, "left") + first
    bounds[-1] = end
    starts, ends = bounds[:-1], bounds[1:]
    filled = ends > starts
    starts, ends = starts[filled], ends[filled]
    low, at_low, high, at_high = summaries.extremes(y, levels, starts, ends)
    rows = np.stack([starts, ends - 1, at_low, at_high], axis=1)
    rows.sort(axis=1)
    keep = np.ones(rows.shape, bool)
    keep[:, 1:] = rows[:, 1:] != rows[:, :-1]  # a row that is both first and lowest, say, once
    picked = rows[keep]
    if first > 0:
        picked = np.concatenate([[first - 1], picked])
    if end < n:
        picked = np.concatenate([picked, [end]])
    return LineView(np.asarray(x[picked]), np.asarray(y[picked]), inside, False)
