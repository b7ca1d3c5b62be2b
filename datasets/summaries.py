"""Min/max summaries of a column, built once when it is stored and extended as rows are appended:
a pyramid of blocks, so that the extremes of any range of rows are found by reading a few
entries of a few levels instead of every row (``extremes``).

Level 1 holds, for each block of ``BRANCH`` consecutive rows, the smallest and the largest value
and which row each is (as an offset into the block); level k does the same for blocks of
``BRANCH`` level-(k-1) blocks, up to a level of at most ``BRANCH`` blocks. Level 0 is the column
itself. NaN is no value: a block of NaNs has +inf as its minimum and -inf as its maximum.

Each level is a flat binary file of records with no header (its length follows from the
column's), so that appending rows rewrites only the last block of each level and adds the new
ones, and every process memory-maps it. For 8-byte values it takes about 20 / (BRANCH - 1)
bytes a row: 2.9 bytes, a third of the column, with ``BRANCH = 8``.
"""

from __future__ import annotations

from pathlib import Path

import numba
import numpy as np

BRANCH = 8
# Rows read at once while building level 1, so that a 1e8-row column needs little memory.
CHUNK_ROWS = BRANCH ** 8


def offset_dtype(level: int) -> np.dtype:
    """The type of an offset into a level-``level`` block, which spans BRANCH ** level rows."""
    span = BRANCH ** level
    return np.dtype("<u2") if span <= 2 ** 16 else np.dtype("<u4") if span <= 2 ** 32 else np.dtype("<u8")


def value_dtype(column: np.dtype) -> np.dtype:
    """The type summaries keep a column's values in: its own for floats, float64 otherwise."""
    return np.dtype(column) if np.dtype(column).kind == "f" else np.dtype("<f8")


def record_dtype(level: int, column: np.dtype) -> np.dtype:
    values = value_dtype(column)
    return np.dtype([("min", values), ("max", values), ("at_min", offset_dtype(level)), ("at_max", offset_dtype(level))])


def level_lengths(rows: int) -> list[int]:
    """How many blocks each level 1, 2, ... has over ``rows`` rows."""
    lengths, n = [], rows
    while n > BRANCH:
        n = -(-n // BRANCH)
        lengths.append(n)
    return lengths


def level_path(directory: Path, column: str, level: int) -> Path:
    return directory / f"{column}.summary{level}.bin"


# --- building ------------------------------------------------------------------------------------


def _raw_extremes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The values as minima and maxima: NaN is neither."""
    values = np.asarray(values, dtype=value_dtype(values.dtype))
    if values.dtype.kind == "f":
        nan = np.isnan(values)
        if nan.any():
            return np.where(nan, np.inf, values), np.where(nan, -np.inf, values)
    return values, values


def _reduce(mins: np.ndarray, maxs: np.ndarray, at_min: np.ndarray | None, at_max: np.ndarray | None,
            level: int, column: np.dtype) -> np.ndarray:
    """Level ``level``'s records for consecutive groups of BRANCH entries of the level below, given
    as minima, maxima and their offsets (None for raw rows). The last group may be short."""
    blocks = -(-len(mins) // BRANCH)
    pad = blocks * BRANCH - len(mins)
    if pad:
        mins = np.concatenate([mins, np.full(pad, np.inf, mins.dtype)])
        maxs = np.concatenate([maxs, np.full(pad, -np.inf, maxs.dtype)])
        if at_min is not None:
            at_min = np.concatenate([at_min, np.zeros(pad, at_min.dtype)])
            at_max = np.concatenate([at_max, np.zeros(pad, at_max.dtype)])
    mins, maxs = mins.reshape(blocks, BRANCH), maxs.reshape(blocks, BRANCH)
    lo, hi = mins.argmin(axis=1), maxs.argmax(axis=1)
    rows = np.arange(blocks)
    span = BRANCH ** (level - 1)  # rows under one entry of the level below
    record = np.empty(blocks, record_dtype(level, column))
    record["min"], record["max"] = mins[rows, lo], maxs[rows, hi]
    low, high = lo.astype(np.uint64) * span, hi.astype(np.uint64) * span
    if at_min is not None:
        low += at_min.reshape(blocks, BRANCH)[rows, lo]
        high += at_max.reshape(blocks, BRANCH)[rows, hi]
    record["at_min"], record["at_max"] = low, high
    return record


def level_one(values: np.ndarray) -> np.ndarray:
    """Level 1's records over ``values`` (which start a block): ``_reduce`` of the raw rows, in
    one compiled pass instead of NumPy's several (a tenth of the time: uploads build it for
    every chunk as it arrives)."""
    record = np.empty(-(-len(values) // BRANCH), record_dtype(1, values.dtype))
    if len(values):
        mins, maxs = np.empty(len(record), record["min"].dtype), np.empty(len(record), record["max"].dtype)
        at_min, at_max = np.empty(len(record), np.uint16), np.empty(len(record), np.uint16)
        raw = np.asarray(values)
        _level_one(raw.view(np.uint8) if raw.dtype == np.bool_ else raw, mins, maxs, at_min, at_max)
        record["min"], record["max"], record["at_min"], record["at_max"] = mins, maxs, at_min, at_max
    return record


@numba.njit(nogil=True, cache=True)
def _level_one(values, mins, maxs, at_min, at_max):  # pragma: no cover
    """Per block of BRANCH rows, the first smallest and the first largest, NaN being +inf for the
    one and -inf for the other (so a block of NaNs has +inf and -inf, at its first row)."""
    n = len(values)
    for b in range(len(mins)):
        low, high = np.inf, -np.inf
        at_low = at_high = 0
        for j in range(BRANCH):
            i = b * BRANCH + j
            if i >= n:
                break
            v = float(values[i])  # as _raw_extremes compares them: integers as float64
            if v < low:
                low, at_low = v, j
            if v > high:
                high, at_high = v, j
        mins[b], maxs[b], at_min[b], at_max[b] = low, high, at_low, at_high


def summarize(column: np.ndarray, first_row: int = 0) -> list[np.ndarray]:
    """The records of each level over the rows of ``column`` from ``first_row`` (which must start
    a block of every level it reaches: 0 for a whole build; see ``extend``)."""
    return summarize_levels(column[first_row:], len(level_lengths(len(column))))


def summarize_levels(values: np.ndarray, count: int) -> list[np.ndarray]:
    """The records of levels 1 to ``count`` (level 1 at least) over ``values``, which start a block
    of each: a whole column, or a chunk of an upload."""
    dtype = values.dtype
    level1 = [level_one(values[start:start + CHUNK_ROWS])  # CHUNK_ROWS is a multiple of BRANCH
              for start in range(0, len(values), CHUNK_ROWS)]
    levels = [np.concatenate(level1) if level1 else np.empty(0, record_dtype(1, dtype))]
    for level in range(2, count + 1):
        levels.append(level_up(levels[-1], level))
    return levels


def level_up(below: np.ndarray, level: int) -> np.ndarray:
    """Level ``level``'s records over the records ``below`` of the level under it (which start a
    block): ``_reduce``, compiled."""
    record = np.empty(-(-len(below) // BRANCH), record_dtype(level, below["min"].dtype))
    mins, maxs = np.empty(len(record), record["min"].dtype), np.empty(len(record), record["max"].dtype)
    at_min, at_max = np.empty(len(record), record["at_min"].dtype), np.empty(len(record), record["at_max"].dtype)
    _level_up(np.ascontiguousarray(below["min"]), np.ascontiguousarray(below["max"]),
              np.ascontiguousarray(below["at_min"]), np.ascontiguousarray(below["at_max"]), BRANCH ** (level - 1),
              mins, maxs, at_min, at_max)
    record["min"], record["max"], record["at_min"], record["at_max"] = mins, maxs, at_min, at_max
    return record


@numba.njit(nogil=True, cache=True)
def _level_up(below_min, below_max, below_at_min, below_at_max, span, mins, maxs, at_min, at_max):  # pragma: no cover
    n = len(below_min)
    for b in range(len(mins)):
        low, high = below_min[b * BRANCH], below_max[b * BRANCH]
        at_low = at_high = 0
        for j in range(1, BRANCH):
            i = b * BRANCH + j
            if i >= n:
                break
            if below_min[i] < low:
                low, at_low = below_min[i], j
            if below_max[i] > high:
                high, at_high = below_max[i], j
        mins[b], maxs[b] = low, high
        at_min[b] = at_low * span + below_at_min[b * BRANCH + at_low]
        at_max[b] = at_high * span + below_at_max[b * BRANCH + at_high]


def build(column: np.ndarray, directory: Path, name: str) -> float:
    """Write the summaries of ``column`` as ``directory/<name>.summary<k>.bin``; their size in bytes."""
    size = 0
    for level, records in enumerate(summarize(column), start=1):
        records.tofile(level_path(directory, name, level))
        size += records.nbytes
    return size


def extend(column: np.ndarray, directory: Path, name: str, old_rows: int) -> None:
    """Bring the summaries up to date after rows were appended to ``column``, which had
    ``old_rows`` rows: only the last block of each level is written again, and the new ones."""
    dtype = column.dtype
    below_mins = below_maxs = below_at_min = below_at_max = None
    existed = len(level_lengths(old_rows))
    for level, length in enumerate(level_lengths(len(column)), start=1):
        # The first block of this level that changes; a level the old rows did not need is new.
        first = old_rows // BRANCH ** level if level <= existed else 0
        if level == 1:
            below_mins, below_maxs = _raw_extremes(column[first * BRANCH:])
        else:
            below = np.fromfile(level_path(directory, name, level - 1), dtype=record_dtype(level - 1, dtype),
                                offset=first * BRANCH * record_dtype(level - 1, dtype).itemsize)
            below_mins, below_maxs, below_at_min, below_at_max = below["min"], below["max"], below["at_min"], below["at_max"]
        records = _reduce(below_mins, below_maxs, below_at_min, below_at_max, level, dtype)
        assert first + len(records) == length
        path = level_path(directory, name, level)
        with open(path, "r+b" if path.exists() else "wb") as file:
            file.seek(first * records.dtype.itemsize)
            file.write(records.tobytes())
            file.truncate()


def open_levels(directory: Path, name: str, column: np.ndarray) -> list[np.ndarray]:
    """The summaries of ``column`` as read-only memory maps, level 1 first."""
    return [np.memmap(level_path(directory, name, level), dtype=record_dtype(level, column.dtype), mode="r",
                      shape=(length,))
            for level, length in enumerate(level_lengths(len(column)), start=1)]


# --- reading -------------------------------------------------------------------------------------

def extremes(column: np.ndarray, levels: list[np.ndarray], starts: np.ndarray, ends: np.ndarray,
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each range of rows ``[starts[i], ends[i])`` (non-empty), the smallest value and its row,
    and the largest value and its row: ``(min, at_min, max, at_max)``. A range of NaNs only has
    +inf and -inf; its rows then say nothing.

    Each range is split into pieces of under ``2 * BRANCH`` entries of each level: the rows at
    its two ends that no level-1 block covers wholly, the level-1 blocks at the ends of what is
    left that no level-2 block covers, and so on up. So the cost grows with the number of
    ranges and the logarithm of their length, not with the rows they span.
    """
    best_min = np.full(len(starts), np.inf)
    best_max = np.full(len(starts), -np.inf)
    at_min = starts.astype(np.int64)
    at_max = at_min.copy()
    lo, hi = at_min.copy(), ends.astype(np.int64)  # what is left of each range, on the level scanned next
    top = len(levels)
    if not _scan_rows(np.asarray(column), lo, hi, top > 0, best_min, at_min, best_max, at_max)[0]:
        return best_min, at_min, best_max, at_max
    for level in range(1, top + 1):
        records = np.asarray(levels[level - 1])  # a plain view of the map: no memmap wrapping per access
        if not _scan_blocks(records["min"], records["max"], records["at_min"], records["at_max"], BRANCH ** level,
                            lo, hi, level < top, best_min, at_min, best_max, at_max)[0]:
            break
    return best_min, at_min, best_max, at_max


# The scans themselves, compiled: one call a level, each range reading under 2 * BRANCH entries
# of it, a few comparisons an entry, which NumPy's temporaries would cost many times over. Each
# takes the ends of what is left of every range that the level above does not cover wholly (or
# all of it, at the top or when nothing is covered), leaves in ``lo``/``hi`` what the level above
# is to take, and says whether anything is left (and what the first loop loaded, summed: returned
# so that the compiler keeps the loads). Ties keep the first entry met.
#
# Over a column larger than the caches each range's pieces are cache and TLB misses, one page a
# level. A first loop only loads the ends of every range's pieces, which the CPU overlaps (no
# loaded value decides an address or a branch), so that the scan then finds them cached; the
# scan keeps the best as selects rather than branches, which a random walk mispredicts.
@numba.njit(nogil=True, cache=True)
def _pieces(lo, hi, may_go_up):  # pragma: no cover
    """This level's two pieces of a range ``[lo, hi)``: ``[lo, left_end)`` and ``[right_start, hi)``,
    and the range of the level above that covers the middle (empty if none)."""
    if may_go_up:
        up_lo, up_hi = -(-lo // BRANCH), hi // BRANCH
        if up_lo < up_hi:
            return up_lo * BRANCH, up_hi * BRANCH, up_lo, up_hi
    return hi, hi, 0, 0


@numba.njit(nogil=True, cache=True)
def _touch(values, lo, hi, may_go_up):  # pragma: no cover
    """Load the first, middle and last entry of each range's pieces (a piece of records spans up to
    three cache lines), for the scan to find them cached; the sum only keeps the loads."""
    total = 0.0
    for i in range(len(lo)):
        left_end, right_start, _, _ = _pieces(lo[i], hi[i], may_go_up)
        if lo[i] < left_end:
            total += float(values[lo[i]]) + float(values[(lo[i] + left_end) // 2]) + float(values[left_end - 1])
        if right_start < hi[i]:
            total += float(values[right_start]) + float(values[(right_start + hi[i]) // 2]) + float(values[hi[i] - 1])
    return total


@numba.njit(nogil=True, cache=True)
def _scan_rows(values, lo, hi, may_go_up, best_min, at_min, best_max, at_max):  # pragma: no cover
    touched = _touch(values, lo, hi, may_go_up)
    left = False
    for i in range(len(lo)):
        left_end, right_start, up_lo, up_hi = _pieces(lo[i], hi[i], may_go_up)
        low, at_low, high, at_high = best_min[i], at_min[i], best_max[i], at_max[i]
        for start, end in ((lo[i], left_end), (right_start, hi[i])):
            for j in range(start, end):
                v = float(values[j])
                smaller, larger = v < low, v > high  # NaN is neither
                low, at_low = (v, j) if smaller else (low, at_low)
                high, at_high = (v, j) if larger else (high, at_high)
        best_min[i], at_min[i], best_max[i], at_max[i] = low, at_low, high, at_high
        lo[i], hi[i] = up_lo, up_hi
        left = left or up_lo < up_hi
    return left, touched


@numba.njit(nogil=True, cache=True)
def _scan_blocks(mins, maxs, offsets_min, offsets_max, span, lo, hi, may_go_up,
                 best_min, at_min, best_max, at_max):  # pragma: no cover
    touched = _touch(mins, lo, hi, may_go_up)
    left = False
    for i in range(len(lo)):
        left_end, right_start, up_lo, up_hi = _pieces(lo[i], hi[i], may_go_up)
        low, at_low, high, at_high = best_min[i], at_min[i], best_max[i], at_max[i]
        for start, end in ((lo[i], left_end), (right_start, hi[i])):
            for j in range(start, end):
                v, w = mins[j], maxs[j]
                smaller, larger = v < low, w > high
                low, at_low = (v, j * span + np.int64(offsets_min[j])) if smaller else (low, at_low)
                high, at_high = (w, j * span + np.int64(offsets_max[j])) if larger else (high, at_high)
        best_min[i], at_min[i], best_max[i], at_max[i] = low, at_low, high, at_high
        lo[i], hi[i] = up_lo, up_hi
        left = left or up_lo < up_hi
    return left, touched
