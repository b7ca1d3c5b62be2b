"""Images larger than memory: their pyramid of reduced levels, and the view of a window of one at
a plot's size.

An image is one 2-D ``.npy`` file (``c0.npy``: ``length`` rows of ``width`` pixels, row 0 at the
bottom, as Bokeh's ``image`` glyph draws it). Its pyramid sits next to it:

- level 1 reduces 4x4 blocks of pixels, and every further level halves both sides of the one
  below, until one pixel is left; a block at an edge of odd size holds the pixels there are;
- each level keeps, per block, the MEAN of the pixels that are not NaN (NaN if none are) in
  ``c0.mean<k>.npy`` and their MAX (so that a single bright pixel survives) in ``c0.max<k>.npy``,
  of the image's dtype;
- the mean is float32, except for 1-byte images (bool, int8, uint8), whose mean is 16-bit fixed
  point over the dtype's range (a 65535th of it); a float image also keeps how many pixels of each
  block are not NaN (``c0.count<k>.npy``, float32), so that a level is computed exactly from the
  one below, which is how appends extend it.

Starting at 4x4 keeps the pyramid small: its pixels add up to 1/16 + 1/64 + ... = 1/12 of the
image's, and a level pixel takes at most 3 times the bytes of an image pixel (uint8: 2 + 1;
uint16: 4 + 2; float32: 4 + 4 + 4), so mean and max together take at most 1/4 of the image's
bytes (1/6 or less for 4- and 8-byte images), plus the edges' partial blocks. Between 1:1 and
a 4x reduction, views reduce the image itself (at most 16 of its pixels to a screen pixel).

Levels are built in strips of rows, so memory stays bounded whatever the image's size. An append
rewrites the last (partial) row of blocks of each level before it is committed: a view computed
meanwhile may show the new rows in those edge blocks a moment early.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

from datasets import storage

FIRST_FACTOR = 4  # level 1's blocks are 4x4 pixels; each further level halves both sides
STRIP_BYTES = 32 * 1024 * 1024  # bytes of source rows reduced at once
REDUCTIONS = ("mean", "max")
# A view reads at most this many source pixels a screen pixel (else it takes a coarser level):
# a plot zoomed far more on one axis than the other would otherwise read a very long strip.
MAX_READ_PER_SCREEN_PIXEL = 16
_FIXED = 65535.0  # steps of a 1-byte image's fixed-point mean


@dataclass(frozen=True)
class Level:
    """One level of a pyramid: ``factor`` image pixels a side per level pixel."""

    factor: int
    mean: np.ndarray
    max: np.ndarray
    count: np.ndarray | None  # float images only


# --- sizes and dtypes ----------------------------------------------------------------------------


def factors(height: int, width: int) -> list[int]:
    """The factor of every level of an image of ``height`` x ``width`` pixels, finest first."""
    out, factor = [], FIRST_FACTOR
    while True:
        out.append(factor)
        if -(-height // factor) <= 1 and -(-width // factor) <= 1:
            return out
        factor *= 2


def mean_dtype(dtype: np.dtype) -> np.dtype:
    return np.dtype("<u2") if dtype.itemsize == 1 else np.dtype("<f4")


def has_counts(dtype: np.dtype) -> bool:
    return dtype.kind == "f"


def _fixed_range(dtype: np.dtype) -> tuple[float, float]:
    """A 1-byte dtype's lowest value and the width of its range."""
    if dtype.kind == "b":
        return 0.0, 1.0
    info = np.iinfo(dtype)
    return float(info.min), float(info.max) - float(info.min)


@numba.njit(nogil=True, cache=True)
def _to_steps(values, low, scale, out):
    """Values as fixed-point steps above ``low``, ``scale`` steps a unit, in one pass (a NumPy
    expression makes five over the pixels)."""
    rows, cols = values.shape
    for i in range(rows):
        for j in range(cols):
            out[i, j] = np.uint16(np.rint((np.float64(values[i, j]) - low) * scale))


def encode_mean(mean: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Means (2-D, any float dtype, computed in float64) as stored for an image of ``dtype``."""
    if dtype.itemsize == 1:
        low, span = _fixed_range(dtype)
        steps = np.empty(mean.shape, dtype="<u2")
        _to_steps(mean, low, _FIXED / span, steps)
        return steps
    return mean.astype("<f4")


def decode_mean(stored: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Stored means as float64."""
    if dtype.itemsize == 1:
        low, span = _fixed_range(dtype)
        return stored.astype(np.float64) * (span / _FIXED) + low
    return stored.astype(np.float64)


def pyramid_bytes(dtype: np.dtype, height: int, width: int) -> int:
    """Bytes on disk of the pyramid of an image of ``height`` x ``width`` pixels of ``dtype``."""
    per_pixel = mean_dtype(dtype).itemsize + dtype.itemsize + (4 if has_counts(dtype) else 0)
    files = 3 if has_counts(dtype) else 2
    head = len(storage.header(dtype, height, width))
    return sum(-(-height // f) * -(-width // f) * per_pixel + files * head for f in factors(height, width))


def image_bytes(dtype: np.dtype, height: int, width: int) -> int:
    """Bytes on disk of an image and its pyramid."""
    return len(storage.header(dtype, height, width)) + height * width * dtype.itemsize + \
        pyramid_bytes(dtype, height, width)


def level_paths(folder: Path, stem: str, level: int) -> dict[str, Path]:
    return {part: folder / f"{stem}.{part}{level}.npy" for part in ("mean", "max", "count")}


# --- reducing blocks -----------------------------------------------------------------------------


@numba.njit(nogil=True, cache=True)
def _reduce(values, weights, row_weights, col_weights, maxes, row_starts, col_starts, want_mean, want_max,
            out_mean, out_count, out_max):
    """Reduce blocks of a strip of rows: output pixel (i, j) takes source rows ``row_starts[i]`` to
    ``row_starts[i + 1]`` and columns ``col_starts[j]`` to ``col_starts[j + 1]``.

    values: means (or pixels) of the source; weights: how many image pixels each stands for that
    are not NaN (a 2-D array), or, when it is empty, ``row_weights[i] * col_weights[j]``; maxes:
    the source's maxima (or pixels). Out: the weighted mean of the values that are not NaN (NaN if
    none), their total weight, and the maximum of the maxes that are not NaN (NaN if none)."""
    per_pixel = weights.shape[0] == 0
    out_rows, out_cols = out_mean.shape
    sums = np.zeros(out_cols)
    counts = np.zeros(out_cols)
    for i in range(out_rows):
        first, last = row_starts[i], row_starts[i + 1]
        if want_mean:
            sums[:] = 0.0
            counts[:] = 0.0
            for a in range(first, last):
                for j in range(out_cols):
                    total, count = 0.0, 0.0
                    if per_pixel:
                        for c in range(col_starts[j], col_starts[j + 1]):
                            v = values[a, c]
                            if v == v:  # noqa: PLR0124 (not NaN, in numba)
                                total += v * col_weights[c]
                                count += col_weights[c]
                        total, count = total * row_weights[a], count * row_weights[a]
                    else:
                        for c in range(col_starts[j], col_starts[j + 1]):
                            v = values[a, c]
                            w = weights[a, c]
                            if v == v and w > 0:  # noqa: PLR0124
                                total += v * w
                                count += w
                    sums[j] += total
                    counts[j] += count
            for j in range(out_cols):
                out_count[i, j] = counts[j]
                out_mean[i, j] = sums[j] / counts[j] if counts[j] > 0 else np.nan
        if want_max:
            for j in range(out_cols):
                out_max[i, j] = maxes[first, col_starts[j]]
            for a in range(first, last):
                for j in range(out_cols):
                    highest = out_max[i, j]
                    for c in range(col_starts[j], col_starts[j + 1]):
                        m = maxes[a, c]
                        if m > highest or highest != highest:  # noqa: PLR0124 (NaN: only if all are)
                            highest = m
                    out_max[i, j] = highest


@numba.njit(nogil=True, cache=True)
def _integer_means(values, row_starts, col_starts, out):
    """Means of blocks of integers (as ``_reduce``, every pixel counting once): integer sums,
    several times quicker than floating-point ones."""
    out_rows, out_cols = out.shape
    sums = np.zeros(out_cols, dtype=np.int64)
    for i in range(out_rows):
        sums[:] = 0
        for a in range(row_starts[i], row_starts[i + 1]):
            for j in range(out_cols):
                total = 0
                for c in range(col_starts[j], col_starts[j + 1]):
                    total += values[a, c]
                sums[j] += total
        rows = row_starts[i + 1] - row_starts[i]
        for j in range(out_cols):
            out[i, j] = sums[j] / (rows * (col_starts[j + 1] - col_starts[j]))


def integer_means(values: np.ndarray, by: float, bx: float) -> np.ndarray:
    """Means of the blocks of ``values`` (integers or bools, each pixel counting once; 64-bit ones
    are summed in float64, which cannot overflow), as ``reduce_blocks`` groups them."""
    if values.dtype.itemsize == 8:
        return reduce_blocks(values, values, None, np.ones(values.shape[0]), np.ones(values.shape[1]), by, bx,
                             maximum=False)[0]
    rows_out, col_out = assign(values.shape[0], by), assign(values.shape[1], bx)
    shape = (int(rows_out[-1]) + 1, int(col_out[-1]) + 1)
    out = np.empty(shape)
    _integer_means(values.view(np.uint8) if values.dtype == np.bool_ else values,
                   np.searchsorted(rows_out, np.arange(shape[0] + 1)), np.searchsorted(col_out, np.arange(shape[1] + 1)),
                   out)
    return out


def assign(count: int, step: float) -> np.ndarray:
    """Which output pixel each of ``count`` source pixels goes to, ``step`` source pixels an output
    pixel (a whole number for the pyramid; any, at least 1, for views): the one its start falls in."""
    return np.floor(np.arange(count) / step + 1e-9).astype(np.int64)


def reduce_blocks(values: np.ndarray, maxes: np.ndarray, weights: np.ndarray | None, row_weights: np.ndarray,
                  col_weights: np.ndarray, by: float, bx: float, *, mean: bool = True,
                  maximum: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blocks of ``by`` x ``bx`` source pixels of ``values`` (see ``_reduce`` and ``assign``): mean
    (float64), weight (float64) and max (of ``maxes``' dtype, NaN where a float block has none);
    the ones not asked for are empty."""
    rows_out, col_out = assign(values.shape[0], by), assign(values.shape[1], bx)
    shape = (int(rows_out[-1]) + 1, int(col_out[-1]) + 1)
    row_starts = np.searchsorted(rows_out, np.arange(shape[0] + 1))
    col_starts = np.searchsorted(col_out, np.arange(shape[1] + 1))
    boolean = maxes.dtype == np.bool_
    values = values.view(np.uint8) if values.dtype == np.bool_ else values
    maxes = maxes.view(np.uint8) if boolean else maxes
    out_mean, out_count = np.empty(shape), np.empty(shape)  # the kernel takes its output's shape from out_mean
    out_max = np.zeros(shape if maximum else (0, 0), dtype=maxes.dtype)
    _reduce(values, np.empty((0, 0)) if weights is None else weights, row_weights, col_weights, maxes, row_starts,
            col_starts, mean, maximum, out_mean, out_count, out_max)
    empty = np.empty((0, 0))
    return (out_mean if mean else empty, out_count if mean else empty,
            (out_max.view(np.bool_) if boolean else out_max) if maximum else empty)


def _edge_weights(total: int, factor: int, start: int, count: int) -> np.ndarray:
    """How many image pixels level pixels ``start`` .. ``start + count`` cover along a side of ``total``."""
    first = np.arange(start, start + count, dtype=np.float64) * factor
    return np.clip(np.minimum(first + factor, total) - first, 0, None)


# --- building ------------------------------------------------------------------------------------


def _file_rows(path: Path, dtype: np.dtype, rows: int, width: int) -> np.ndarray:
    """A level's file sized to ``rows`` rows (made if missing), mapped for writing."""
    if path.exists():
        storage.set_rows(path, dtype, rows, width=width)
    else:
        storage.create_column(path, dtype, rows, width=width)
    return np.memmap(path, dtype=dtype, mode="r+", offset=storage.data_offset(path), shape=(rows, width))


def build(image: np.ndarray, folder: Path, stem: str, old_rows: int = 0) -> None:
    """Build the pyramid of ``image`` (``rows`` x ``width``), or, after rows were appended to an
    image of ``old_rows`` rows, recompute the level rows they reach (and add levels it needs now)."""
    height, width = image.shape
    dtype = image.dtype.newbyteorder("<")
    counted = has_counts(dtype)
    source_mean, source_max, source_count = image, image, None
    source_rows, source_factor, old_source_rows = height, 1, old_rows
    for level, factor in enumerate(factors(height, width), start=1):
        block = factor // source_factor
        rows, cols = -(-height // factor), -(-width // factor)
        paths = level_paths(folder, stem, level)
        start = old_source_rows // block if paths["max"].exists() else 0
        maps = {"mean": _file_rows(paths["mean"], mean_dtype(dtype), rows, cols),
                "max": _file_rows(paths["max"], dtype, rows, cols)}
        if counted:
            maps["count"] = _file_rows(paths["count"], np.dtype("<f4"), rows, cols)
        source_cols = source_mean.shape[1]
        strip = max(1, STRIP_BYTES // max(1, source_cols * 8 * block)) * block
        col_weights = _edge_weights(width, source_factor, 0, source_cols)
        for first in range(start * block, source_rows, strip):
            last = min(first + strip, source_rows)
            values = np.asarray(source_mean[first:last])
            if level > 1:
                values = decode_mean(values, dtype)
            counts = None if source_count is None else np.asarray(source_count[first:last], dtype=np.float64)
            row_weights = _edge_weights(height, source_factor, first, last - first)
            mean, count, maximum = reduce_blocks(values, np.asarray(source_max[first:last]), counts, row_weights,
                                                 col_weights, block, block)
            at = first // block
            maps["mean"][at:at + len(mean)] = encode_mean(mean, dtype)
            maps["max"][at:at + len(mean)] = maximum
            if counted:
                maps["count"][at:at + len(mean)] = count
        for part in maps.values():
            part.flush()
        source_mean, source_max, source_count = maps["mean"], maps["max"], maps.get("count")
        # Rows of this level that the old rows filled whole: the ones after changed.
        old_source_rows, source_rows, source_factor = old_rows // factor, rows, factor
    for level in range(len(factors(height, width)) + 1, 64):  # levels an image that shrank had (an append undone)
        paths = level_paths(folder, stem, level)
        if not paths["max"].exists():
            break
        for path in paths.values():
            path.unlink(missing_ok=True)


def _mapped(path: Path, dtype: np.dtype, shape: tuple[int, int]) -> np.ndarray:
    """The first ``shape`` of a level's file, read-only (an append may have made it longer)."""
    return np.memmap(path, dtype=dtype, mode="r", offset=storage.data_offset(path), shape=shape)


def open_levels(folder: Path, stem: str, image: np.ndarray) -> list[Level]:
    """The levels of ``image`` (as many rows as it has now), finest first, as read-only maps."""
    height, width = image.shape
    dtype = image.dtype.newbyteorder("<")
    levels = []
    for level, factor in enumerate(factors(height, width), start=1):
        paths, shape = level_paths(folder, stem, level), (-(-height // factor), -(-width // factor))
        levels.append(Level(factor, _mapped(paths["mean"], mean_dtype(dtype), shape), _mapped(paths["max"], dtype, shape),
                            _mapped(paths["count"], np.dtype("<f4"), shape) if has_counts(dtype) else None))
    return levels


# --- views ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageView:
    """A window of an image at a plot's size: ``image`` (row 0 at the bottom) covers ``x0`` ..
    ``x1`` by ``y0`` .. ``y1``. ``level`` is the pyramid level it was cut from (0: the image itself),
    reduced further by ``step`` (level pixels a screen pixel, per side: rows, columns);
    ``pixels`` counts the image's pixels in the window."""

    image: np.ndarray
    x0: float
    x1: float
    y0: float
    y1: float
    level: int
    step: tuple[float, float]
    pixels: int


def _window(low: float, high: float, origin: float, size: float, count: int) -> tuple[int, int]:
    """The level pixels ``[first, last)`` along a side that ``low`` .. ``high`` touches."""
    first = math.floor((low - origin) / size)
    last = math.ceil((high - origin) / size)
    return max(0, min(first, count)), max(0, min(last, count))


def view(image: np.ndarray, levels: list[Level], extent: tuple[float, float, float, float], x0: float, x1: float,
         y0: float, y1: float, width: int, height: int, reduce: str) -> ImageView:
    """The window ``x0`` .. ``x1`` by ``y0`` .. ``y1`` of ``image`` at ``width`` x ``height`` screen
    pixels: from the coarsest level whose pixel is no larger than a screen pixel, cut at whole
    level pixels, and reduced to at most the screen's pixels (a view pixel takes the level pixels
    whose start falls in it). At 1:1 or closer, the image's own pixels, unchanged."""
    rows, cols = image.shape
    ex0, ex1, ey0, ey1 = extent
    dx, dy = (ex1 - ex0) / cols, (ey1 - ey0) / rows
    per_pixel = min((x1 - x0) / dx / width, (y1 - y0) / dy / height)  # image pixels a screen pixel
    choice = 0
    for index, level in enumerate(levels, start=1):
        if level.factor <= per_pixel:
            choice = index
    while True:
        factor = 1 if choice == 0 else levels[choice - 1].factor
        level_rows, level_cols = -(-rows // factor), -(-cols // factor)
        c0, c1 = _window(x0, x1, ex0, dx * factor, level_cols)
        r0, r1 = _window(y0, y1, ey0, dy * factor, level_rows)
        if (r1 - r0) * (c1 - c0) <= MAX_READ_PER_SCREEN_PIXEL * width * height or choice == len(levels):
            break
        choice += 1
    if r1 <= r0 or c1 <= c0:
        empty = np.zeros((0, 0), dtype=image.dtype)
        return ImageView(empty, x0, x0, y0, y0, choice, (1, 1), 0)
    # Level pixels a screen pixel, per side: a view pixel takes those whose start falls in it (a
    # whole block at a whole number of them), so that a view has no more pixels than the screen
    # shows but for partial ones at its edges; at 1:1 or closer, one each.
    bx = max(1.0, (x1 - x0) / (dx * factor) / width)
    by = max(1.0, (y1 - y0) / (dy * factor) / height)
    bx, by = (1.0 if step < 1 + 1e-6 else step for step in (bx, by))
    pixels = (min(r1 * factor, rows) - r0 * factor) * (min(c1 * factor, cols) - c0 * factor)
    covered = (ex0 + c0 * factor * dx, ex0 + min(c1 * factor, cols) * dx,
               ey0 + r0 * factor * dy, ey0 + min(r1 * factor, rows) * dy)
    if choice == 0:
        values = np.array(image[r0:r1, c0:c1])  # read now, and contiguous
        if bx == by == 1:
            return ImageView(values, *covered, 0, (1, 1), pixels)
        ones_r, ones_c = np.ones(r1 - r0), np.ones(c1 - c0)
        if reduce == "mean" and values.dtype.kind in "biu":
            out = integer_means(values, by, bx).astype(np.float32)
        else:
            mean, _, maximum = reduce_blocks(values, values, None, ones_r, ones_c, by, bx, mean=reduce == "mean",
                                             maximum=reduce == "max")
            out = mean.astype(np.float32) if reduce == "mean" else maximum
        return ImageView(out, *covered, 0, (by, bx), pixels)
    level = levels[choice - 1]
    if reduce == "max":
        maxes = np.array(level.max[r0:r1, c0:c1])
        if bx == by == 1:
            return ImageView(maxes, *covered, choice, (1, 1), pixels)
        _, _, out = reduce_blocks(maxes, maxes, None, np.ones(r1 - r0), np.ones(c1 - c0), by, bx, mean=False)
        return ImageView(out, *covered, choice, (by, bx), pixels)
    means = decode_mean(np.asarray(level.mean[r0:r1, c0:c1]), image.dtype)
    if bx == by == 1:
        return ImageView(means.astype(np.float32), *covered, choice, (1, 1), pixels)
    counts = None if level.count is None else np.asarray(level.count[r0:r1, c0:c1], dtype=np.float64)
    mean, _, _ = reduce_blocks(means, means, counts, _edge_weights(rows, factor, r0, r1 - r0),
                               _edge_weights(cols, factor, c0, c1 - c0), by, bx, maximum=False)
    return ImageView(mean.astype(np.float32), *covered, choice, (by, bx), pixels)


def for_the_page(values: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, dict[str, float] | None]:
    """A view's pixels (of an image of ``dtype``) in a dtype BokehJS draws: 64-bit integers as
    float64, bools as uint8. The means of a 1-byte image go as the 16-bit fixed point its pyramid
    keeps them in, half the bytes of float32, with how to read them: ``{"low", "step"}``, each
    pixel being ``low + step * value`` (a level's pixels shown as they are come back exactly as
    stored; other means within half a step)."""
    if values.dtype.kind == "f" and dtype.itemsize == 1:
        low, span = _fixed_range(dtype)
        return encode_mean(values, dtype), {"low": low, "step": span / _FIXED}
    if values.dtype.kind == "b":
        return values.view(np.uint8), None
    if values.dtype.kind in "iu" and values.dtype.itemsize == 8:
        return values.astype(np.float64), None
    return values, None


def warm_up() -> None:
    """Compile the kernels (numba caches them on disk, so this is quick after the first time)."""
    small = np.zeros((4, 4), dtype=np.uint8)
    reduce_blocks(small, small, None, np.ones(4), np.ones(4), 2, 2)
    integer_means(small, 2, 2)
    floats = np.zeros((4, 4))
    reduce_blocks(floats, floats, floats, np.ones(4), np.ones(4), 2, 2)
    encode_mean(floats, np.dtype(np.uint8))
    for_the_page(floats.astype(np.float32), np.dtype(np.uint8))

