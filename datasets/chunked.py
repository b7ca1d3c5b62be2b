"""What each chunk of an upload adds as it arrives, so that finishing an upload reads no column
whole: the chunk's blocks of its column's min/max summaries (``datasets.summaries``), and a
record of the chunk (whether its rows never decrease, its first and last row, its smallest and
largest finite value) from which x's order and range follow.

A chunk of ``chunk_rows`` rows, starting at a multiple of them, holds whole blocks of every level
k with ``BRANCH ** k`` dividing ``chunk_rows`` (``chunk_levels``): it writes those blocks at their
places in the level files. Writes are positional, so chunks may come in any order, and a chunk
sent twice writes the same bytes again. ``finish`` builds the levels above from the highest
level the chunks wrote (a few thousand records), and combines the chunks' records.

Files, in the upload's folder: ``c<i>.summary<k>.bin`` (as a whole build writes them) and
``c<i>.chunks.bin``, one record per chunk (``record_dtype``), removed when the upload finishes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numba
import numpy as np

from datasets import summaries


def chunk_levels(chunk_rows: int, rows: int) -> int:
    """How many levels of summaries a chunk of ``chunk_rows`` rows writes for a column of ``rows``
    rows: 0 if its rows are no whole number of level-1 blocks (``finish`` then builds them all)."""
    levels = 0
    while chunk_rows % summaries.BRANCH ** (levels + 1) == 0:
        levels += 1
    return min(levels, top_level(rows))


def top_level(rows: int) -> int:
    """How many levels ``summaries.build`` writes for ``rows`` rows (level 1 at least)."""
    return max(1, len(summaries.level_lengths(rows)))


def record_dtype(column: np.dtype) -> np.dtype:
    """A chunk's record: ``done`` is 1 once its blocks are written (0: a hole, never written)."""
    return np.dtype([("done", "u1"), ("sorted", "u1"), ("first", column), ("last", column),
                     ("low", "<f8"), ("high", "<f8")])


def records_path(folder: Path, stem: str) -> Path:
    return folder / f"{stem}.chunks.bin"


def create(folder: Path, stem: str, dtype: np.dtype, rows: int, chunk_rows: int, summarized: bool) -> None:
    """Make the (sparse) files the chunks of a column write into; made at the start, so that a
    chunk never creates a file in a folder that a cancel is removing."""
    chunks = -(-rows // chunk_rows)
    with open(records_path(folder, stem), "wb") as file:
        file.truncate(chunks * record_dtype(dtype).itemsize)
    if summarized:
        lengths = summaries.level_lengths(rows) or [-(-rows // summaries.BRANCH)]
        for level in range(1, chunk_levels(chunk_rows, rows) + 1):
            with open(summaries.level_path(folder, stem, level), "wb") as file:
                file.truncate(lengths[level - 1] * summaries.record_dtype(level, dtype).itemsize)


def _record(values: np.ndarray) -> np.ndarray:
    record = np.zeros(1, record_dtype(values.dtype))
    record["done"] = 1
    record["first"], record["last"] = values[0], values[-1]
    raw = values.view(np.uint8) if values.dtype == np.bool_ else values
    ordered, low, high = _order_and_range(raw)
    record["sorted"], record["low"], record["high"] = ordered, low, high
    return record


@numba.njit(nogil=True, cache=True)
def _order_and_range(values):  # pragma: no cover
    """Whether ``values`` never decrease (NaN breaks it), and the smallest and largest finite one
    (NaN if none), in one pass."""
    ordered = True
    low, high = np.inf, -np.inf
    found = False
    for i in range(len(values)):
        v = values[i]
        if i and not v >= values[i - 1]:
            ordered = False
        f = float(v)
        if np.isfinite(f):
            found = True
            if f < low:
                low = f
            if f > high:
                high = f
    if not found:
        return ordered, np.nan, np.nan
    return ordered, low, high


def _pwrite(fd: int, data: bytes | memoryview, position: int) -> None:
    view = memoryview(data).cast("B")
    while view:
        written = os.pwrite(fd, view, position)
        view, position = view[written:], position + written


def receive(folder: Path, stem: str, values: np.ndarray, index: int, chunk_rows: int, rows: int,
            summarized: bool, x: bool) -> list[Path]:
    """Write what chunk ``index`` (``values``, its rows) adds; the files written, for the caller to
    make durable. An upload made before these files existed gets nothing here (``finish`` then
    reads the columns whole)."""
    path = records_path(folder, stem)
    if not path.exists():
        return []
    written = []
    if summarized:
        first_row = index * chunk_rows
        for level, records in enumerate(_levels(values, chunk_levels(chunk_rows, rows)), start=1):
            level_file = summaries.level_path(folder, stem, level)
            fd = os.open(level_file, os.O_WRONLY)
            try:
                _pwrite(fd, records.tobytes(), first_row // summaries.BRANCH ** level * records.dtype.itemsize)
            finally:
                os.close(fd)
            written.append(level_file)
    record = _record(values) if x else np.zeros(1, record_dtype(values.dtype))
    record["done"] = 1
    fd = os.open(path, os.O_WRONLY)
    try:
        _pwrite(fd, record.tobytes(), index * record.dtype.itemsize)
    finally:
        os.close(fd)
    return [*written, path]


def _levels(values: np.ndarray, count: int) -> list[np.ndarray]:
    """The records of levels 1 to ``count`` over ``values``, which start a block of each."""
    return summaries.summarize_levels(values, count) if count else []


def _records(folder: Path, stem: str, dtype: np.dtype, rows: int, chunk_rows: int) -> np.ndarray | None:
    """Every chunk's record, or None if one is missing (an upload started before them)."""
    path = records_path(folder, stem)
    if not path.exists():
        return None
    records = np.fromfile(path, record_dtype(dtype))
    if len(records) != -(-rows // chunk_rows) or not records["done"].all():
        return None
    return records


def finish_summaries(column: np.ndarray, folder: Path, stem: str, chunk_rows: int) -> None:
    """Write the levels of ``column``'s summaries that no chunk wrote: from the highest the chunks
    did, or all of them if the chunks wrote none."""
    rows, dtype = len(column), column.dtype
    have = chunk_levels(chunk_rows, rows) if _records(folder, stem, dtype, rows, chunk_rows) is not None else 0
    if not have:
        summaries.build(column, folder, stem)
        return
    below = np.fromfile(summaries.level_path(folder, stem, have), summaries.record_dtype(have, dtype))
    for level in range(have + 1, top_level(rows) + 1):
        below = summaries.level_up(below, level)
        below.tofile(summaries.level_path(folder, stem, level))


def x_summary(folder: Path, stem: str, dtype: np.dtype, rows: int, chunk_rows: int,
              ) -> tuple[bool, float | None, float | None] | None:
    """Whether x never decreases, and its smallest and largest finite values, from the chunks'
    records (None if they are not all there: scan x instead). NaN breaks the order."""
    records = _records(folder, stem, dtype, rows, chunk_rows)
    if records is None:
        return None
    ordered = bool(records["sorted"].all()) and bool(np.all(records["first"][1:] >= records["last"][:-1]))
    low, high = records["low"], records["high"]
    if np.isnan(low).all():
        return ordered, None, None
    return ordered, float(np.nanmin(low)), float(np.nanmax(high))


def forget(folder: Path) -> None:
    """Remove the chunks' records once the upload is a dataset."""
    for path in folder.glob("*.chunks.bin"):
        path.unlink()
