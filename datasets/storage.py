"""Where datasets live and how their files are read and written.

A dataset is a folder under ``BOKEHSITE_DATASET_DIR`` named by its id: ``c<i>.npy`` for column i
(NumPy's ``.npy`` format, so ``np.load(path, mmap_mode="r")`` reads it) and the min/max
summaries of every column but x (``c<i>.summary<k>.bin``, ``datasets.summaries``). An upload
is written into ``.uploads/<id>/`` and renamed into place when it is finished.

Readers map the files once per process (``open_columns``, ``summary_levels``) and take the
dataset's length from the database, not from a file: rows an append has written but not yet
committed are past that length, so nobody sees them, and the summaries' blocks that an append
rewrites are never read for ranges within the old length (only whole blocks are).
"""

from __future__ import annotations

import ctypes
import io
import logging
import mmap
import os
import queue
import resource
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

from datasets import summaries

logger = logging.getLogger(__name__)

# Datasets whose maps each process keeps (a map costs address space, not memory: the pages are
# the page cache's, shared by every process).
OPEN_DATASETS = 64
# Each map holds a file descriptor (Python's mmap keeps its own): a dataset of thousands of
# series maps thousands of columns and their summaries. The maps kept are bounded by this share
# of the process's limit on open files (``raise_open_files_limit``).
MAPS_SHARE_OF_OPEN_FILES = 0.5


def root() -> Path:
    return Path(settings.BOKEHSITE_DATASET_DIR)


def final_directory(dataset_id: uuid.UUID | str) -> Path:
    return root() / str(dataset_id)


def upload_directory(dataset_id: uuid.UUID | str) -> Path:
    return root() / ".uploads" / str(dataset_id)


def directory(dataset: Any) -> Path:
    """The folder of ``dataset``'s files (its upload's, while it is uploading)."""
    return final_directory(dataset.id) if dataset.is_ready else upload_directory(dataset.id)


def column_stem(index: int) -> str:
    return f"c{index}"


def column_path(folder: Path, index: int) -> Path:
    return folder / f"{column_stem(index)}.npy"


# --- writing -------------------------------------------------------------------------------------


def header(dtype: np.dtype, length: int, width: int = 0) -> bytes:
    """The ``.npy`` header of ``length`` rows of ``dtype`` (of ``width`` values each, if given: an
    image): 128 bytes, whatever the length."""
    out = io.BytesIO()
    # NumPy pads the header so that the shape can grow to 21 digits in place: appends rewrite it.
    shape = (int(length), int(width)) if width else (int(length),)
    np.lib.format.write_array_header_1_0(out, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                                               "shape": shape})
    return out.getvalue()


def data_offset(path: Path) -> int:
    """Where a ``.npy`` file's rows start."""
    with open(path, "rb") as file:
        version = np.lib.format.read_magic(file)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        read(file)
        return file.tell()


def create_column(path: Path, dtype: np.dtype, length: int, width: int = 0) -> None:
    """A ``.npy`` file for ``length`` rows of ``dtype`` (of ``width`` values each, if given), sparse until written."""
    head = header(dtype, length, width)
    with open(path, "wb") as file:
        file.write(head)
        file.truncate(len(head) + length * max(width, 1) * dtype.itemsize)


def write_at(path: Path, offset: int, data: bytes | memoryview, durable: bool = True) -> None:
    """Write ``data`` at byte ``offset`` of the rows, durably unless told not to (the caller then
    syncs the file with others, ``sync_files``)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        view = memoryview(data).cast("B")
        position = data_offset(path) + offset
        while view:
            written = os.pwrite(fd, view, position)
            view, position = view[written:], position + written
        if durable:
            os.fdatasync(fd)
    finally:
        os.close(fd)


def set_rows(path: Path, dtype: np.dtype, length: int, rows: np.ndarray | None = None, at: int = 0,
             width: int = 0) -> None:
    """Write ``rows`` from row ``at`` (if given), cut the file after row ``length`` and say
    ``length`` rows in its header (rows of ``width`` values, if given)."""
    head = header(dtype, length, width)
    row_bytes = max(width, 1) * dtype.itemsize
    offset = data_offset(path)
    if len(head) != offset:
        raise OSError(f"{path}: the header cannot grow in place")
    with open(path, "r+b") as file:
        if rows is not None:
            file.seek(offset + at * row_bytes)
            file.write(np.ascontiguousarray(rows, dtype=dtype).tobytes())
        file.truncate(offset + length * row_bytes)
        file.seek(0)
        file.write(head)
        file.flush()
        os.fdatasync(file.fileno())


def sync_files(paths: list[Path]) -> None:
    """Flush the data of ``paths`` (files that exist, whose size did not change) to disk."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)


def sync(folder: Path, pattern: str | None = "*") -> None:
    """Flush the files of ``folder`` that match ``pattern`` (None: none), and the folder itself, to disk."""
    for path in folder.glob(pattern) if pattern else ():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def disk_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.iterdir() if path.is_file())


def remove(dataset_id: uuid.UUID | str) -> None:
    """Delete every file of a dataset or upload; maps other processes hold stay valid until dropped."""
    forget(dataset_id)
    for folder in (final_directory(dataset_id), upload_directory(dataset_id)):
        shutil.rmtree(folder, ignore_errors=True)


# --- reading -------------------------------------------------------------------------------------

_maps: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()
_lock = threading.Lock()


def _opened(dataset: Any) -> dict[str, Any]:
    key = (str(dataset.id), int(dataset.length))
    with _lock:
        entry = _maps.get(key)
        if entry is not None:
            _maps.move_to_end(key)
            return entry
    folder = directory(dataset)
    columns = {}
    for index, name in enumerate(dataset.column_names):
        rows = np.load(column_path(folder, index), mmap_mode="r")
        columns[name] = rows[:dataset.length]
    entry = {"columns": columns, "levels": {}, "folder": folder}
    with _lock:
        opened = _maps.setdefault(key, entry)
        budget = _open_files_limit() * MAPS_SHARE_OF_OPEN_FILES
        while len(_maps) > OPEN_DATASETS or (len(_maps) > 1 and sum(map(_map_count, _maps.values())) > budget):
            _maps.popitem(last=False)  # the least recently used; its maps close once no view holds them
    if opened is entry:
        prefetch(key, list(columns.values()), cached_only=True)
    return opened


def _map_count(entry: dict[str, Any]) -> int:
    return len(entry["columns"]) + sum(len(levels) for levels in entry["levels"].values())


def _open_files_limit() -> int:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def raise_open_files_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit (maps of thousands of
    columns need thousands of descriptors; a service manager's soft limit is often 1024); the
    limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            pass
    return _open_files_limit()


def open_columns(dataset: Any) -> dict[str, np.ndarray]:
    """Every column of ``dataset``, in order, as read-only memory maps of its first
    ``dataset.length`` rows (datetimes as int64: the unit is in ``dataset.columns``).

    Opened once per process for each (dataset, length): an append, which changes the length,
    is seen by those who read the dataset's row again."""
    return dict(_opened(dataset)["columns"])


def summary_levels(dataset: Any, column: str) -> list[np.ndarray]:
    """The min/max summaries of ``column`` (any but x), level 1 first, as memory maps.

    Raises:
        KeyError: no such column, or it is x (which has none).
    """
    entry = _opened(dataset)
    if column == dataset.x_column or column not in entry["columns"]:  # a lookup: many series ask often
        raise KeyError(column)
    levels = entry["levels"].get(column)
    if levels is None:
        stem = column_stem(dataset.column_index(column))
        opened = summaries.open_levels(entry["folder"], stem, entry["columns"][column])
        levels = entry["levels"].setdefault(column, opened)
        if levels is opened:  # read by every view of the column: first in line, top level first
            prefetch((str(dataset.id), int(dataset.length)), opened[::-1], first=True)
    return list(levels)


def image_levels(dataset: Any) -> list[Any]:
    """The pyramid of an image (``datasets.rasters.Level``, finest first), as memory maps of its
    levels at the image's ``dataset.length`` rows."""
    from datasets import rasters

    entry = _opened(dataset)
    levels = entry["levels"].get(None)
    if levels is None:
        levels = entry["levels"].setdefault(None, rasters.open_levels(entry["folder"], column_stem(0),
                                                                      entry["columns"][dataset.column_names[0]]))
    return list(levels)


def forget(dataset_id: uuid.UUID | str) -> None:
    """Drop this process's maps of a dataset."""
    with _lock:
        for key in [key for key in _maps if key[0] == str(dataset_id)]:
            del _maps[key]



# --- prefetching ---------------------------------------------------------------------------------
# A view reads a few rows of each pixel column, scattered over the maps: each first touch of a
# page costs a fault (a minor one if the page is in the page cache, a read from disk if not),
# and a view of a billion rows touches thousands of pages it has not touched before. So once a
# process opens a dataset, a thread of its own maps its pages ahead (MADV_POPULATE_READ): the
# summaries first, read from disk if need be (sequentially, far faster than a view's scattered
# faults), then the parts of the columns already in the page cache (so that a dataset larger
# than memory evicts nothing). It works in steps of PREFETCH_STEP bytes, outside the GIL, and
# skips what the process no longer has open.

MADV_POPULATE_READ = 22  # Linux 5.14
PREFETCH_STEP = 64 * 1024 * 1024
_prefetch_queue: queue.SimpleQueue = queue.SimpleQueue()
_prefetcher: threading.Thread | None = None
_prefetch_pending = 0  # lists of arrays queued or being mapped
_libc = ctypes.CDLL(None, use_errno=True)
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]


def prefetch(key: tuple[str, int], arrays: list[np.ndarray], first: bool = False, cached_only: bool = False) -> None:
    """Map the pages of ``arrays`` (memory maps of the dataset ``key``) into this process in the
    background (``first``: before what is already waiting; ``cached_only``: only the pages
    already in the page cache)."""
    global _prefetcher, _prefetch_pending
    with _lock:
        if _prefetcher is None or not _prefetcher.is_alive():
            _prefetcher = threading.Thread(target=_prefetch_forever, name="bokehsite-prefetch", daemon=True)
            _prefetcher.start()
        _prefetch_pending += 1
    _prefetch_queue.put((key, arrays, first, cached_only))


def _prefetch_forever() -> None:
    global _prefetch_pending
    waiting: list[tuple[tuple[str, int], list[np.ndarray], bool]] = []
    while True:
        while not waiting or not _prefetch_queue.empty():
            key, arrays, first, cached_only = _prefetch_queue.get()
            waiting.insert(0 if first else len(waiting), (key, arrays, cached_only))
        key, arrays, cached_only = waiting[0]
        if key not in _maps or not arrays:  # dropped, or done
            waiting.pop(0)
            with _lock:
                _prefetch_pending -= 1
            continue
        try:
            populate(arrays.pop(0), cached_only)
        except Exception:  # a prefetch is only ever a head start: views read the pages anyway
            logger.exception("prefetching a dataset's pages failed")


def prefetch_done(timeout: float) -> bool:
    """Wait until nothing is being prefetched (for measurements); whether it came to that."""
    deadline = time.monotonic() + timeout
    while _prefetch_pending:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def populate(array: np.ndarray, cached_only: bool = False) -> None:
    """Map every page of ``array`` (a memory map) into this process, reading it in if need be
    (``cached_only``: only the pages already in the page cache)."""
    page = mmap.PAGESIZE
    start = array.__array_interface__["data"][0]
    end = start + array.nbytes
    start -= start % page
    resident = np.empty(PREFETCH_STEP // page, np.uint8) if cached_only else None
    for at in range(start, end, PREFETCH_STEP):
        length = min(PREFETCH_STEP, end - at)
        if resident is None:
            runs = [(at, length)]
        else:
            pages = -(-length // page)
            if _libc.mincore(at, length, resident.ctypes.data) != 0:
                return
            cached = np.concatenate([[False], (resident[:pages] & 1).astype(bool), [False]])
            edges = np.flatnonzero(cached[1:] != cached[:-1])  # where runs of cached pages start and end
            runs = [(at + int(first) * page, int(last - first) * page) for first, last in zip(edges[::2], edges[1::2])]
        for where, size in runs:
            if _libc.madvise(where, size, MADV_POPULATE_READ) != 0:  # an old kernel, or the file shrank
                return
