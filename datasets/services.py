"""What can be done to datasets: upload (start, receive chunks, finish, cancel), append, delete.
Views call these; none of them sees a request. Who may call which is ``datasets.access``'s."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import numpy as np
from bokeh.core.serialization import Buffer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from bokehsite.errors import Unavailable
from datasets import chunked, storage, summaries
from datasets.exceptions import (
    BadChunk, ChecksumMismatch, DatasetNotFound, InvalidColumns, InvalidDtype, NameTaken, QuotaExceeded, TooLarge, UnequalLengths,
    UploadIncomplete, UploadNotFound, XNotSorted,
)
from datasets.models import DATETIME_UNITS, NUMERIC_DTYPES, Dataset, State, UploadChunk
from datasets.signals import dataset_removed, rows_appended

# Columns a dataset may have: 1,000s of series against one x, with the upload status (a few
# hundred bytes a column) and the dataset's description still well under a megabyte or two.
MAX_COLUMNS = 4096
# Missing chunks an upload's status lists, in all (the first ones, column by column): bounded,
# however small the chunks and however many the columns.
LISTED_MISSING = 1000
MAX_COLUMN_NAME = 100
# Rows compared at once when checking that x is sorted or finding its range.
SCAN_ROWS = 1 << 22
_DATETIME = re.compile(r"datetime64\[([A-Za-z]+)\]")


@contextmanager
def _writing(what: str) -> Iterator[None]:
    """A disk that fails (full, gone) answers 503, as a database that is down does: nothing was stored."""
    try:
        yield
    except OSError as e:
        raise Unavailable(f"the server could not write {what} ({e.strerror or e}); nothing was stored, "
                          "try again later") from e


# --- columns -------------------------------------------------------------------------------------


def parse_dtype(name: Any, field: str) -> tuple[np.dtype, str | None]:
    """The dtype a column's file holds for the dtype ``name`` (``float64``, ``datetime64[ms]``...),
    and the datetime unit.

    Raises:
        InvalidDtype: not a dtype datasets store.
    """
    if isinstance(name, str):
        if name in NUMERIC_DTYPES:
            return np.dtype(name).newbyteorder("<"), None
        match = _DATETIME.fullmatch(name)
        if match and match[1] in DATETIME_UNITS:
            return np.dtype("<i8"), match[1]
    raise InvalidDtype(
        f"{field}: {name!r} is not a dtype datasets store; use one of {', '.join(NUMERIC_DTYPES)} or "
        f"datetime64[unit] with a unit of {', '.join(DATETIME_UNITS)}", field=field)


def summary_bytes(dtype: np.dtype, rows: int) -> int:
    """What ``summaries.build`` writes for a column of ``rows`` rows of ``dtype``."""
    lengths = summaries.level_lengths(rows) or [-(-rows // summaries.BRANCH)]
    return sum(n * summaries.record_dtype(level, dtype).itemsize for level, n in enumerate(lengths, start=1))


def dataset_bytes(dtypes: Sequence[np.dtype], x_index: int, rows: int) -> int:
    """Bytes on disk of a dataset of ``rows`` rows: its columns and their summaries."""
    header = len(storage.header(np.dtype("<f8"), rows))
    total = sum(header + rows * dtype.itemsize for dtype in dtypes)
    return total + sum(summary_bytes(dtype, rows) for i, dtype in enumerate(dtypes) if i != x_index)


def used_bytes(owner: Any) -> int:
    """Bytes ``owner``'s datasets and uploads in progress take, or have reserved."""
    return Dataset.objects.filter(owner=owner).aggregate(total=Sum("bytes"))["total"] or 0


def _check_quota(owner: Any, more: int) -> None:
    quota = settings.BOKEHSITE_DATASET_QUOTA_BYTES
    used = used_bytes(owner)
    if used + more > quota:
        raise QuotaExceeded(
            f"this needs {more} bytes on disk, and your datasets and uploads already take {used} of your quota of "
            f"{quota} bytes (BOKEHSITE_DATASET_QUOTA_BYTES); delete datasets to make room", field="columns")


def _check_size(data_bytes: int, what: str) -> None:
    limit = settings.BOKEHSITE_DATASET_MAX_BYTES
    if data_bytes > limit:
        raise TooLarge(f"{what} holds {data_bytes} bytes of columns, more than the limit of {limit} bytes "
                       "(BOKEHSITE_DATASET_MAX_BYTES)", field="columns")


def _lock_owner(owner: Any) -> None:
    """Serialise quota checks of one user (PostgreSQL; SQLite serialises writers anyway)."""
    get_user_model().objects.select_for_update().filter(pk=owner.pk).first()


def _x_summary(x: np.ndarray) -> tuple[bool, float | None, float | None]:
    """Whether ``x`` never decreases (NaN breaks it), and its smallest and largest finite values."""
    ordered, low, high = True, None, None
    for start in range(0, len(x), SCAN_ROWS):
        part = np.asarray(x[start:start + SCAN_ROWS + 1])
        if ordered and len(part) > 1:
            ordered = bool(np.all(part[1:] >= part[:-1]))
        part = part[:SCAN_ROWS]
        if part.dtype.kind == "f":  # the range of the finite values (JSON has no NaN or infinity)
            part = part[np.isfinite(part)]
        if len(part):
            lo, hi = float(part.min()), float(part.max())
            low = lo if low is None else min(low, lo)
            high = hi if high is None else max(high, hi)
    return ordered, low, high


# --- uploads -------------------------------------------------------------------------------------


def start_upload(owner: Any, name: str, columns: Sequence[Mapping[str, Any]], *, x: str | None = None,
                 require_sorted_x: bool = False) -> Dataset:
    """Reserve room for a dataset and make its (empty) files; chunks then fill them.

    Args:
        columns: in order, ``{"name", "dtype", "length"}`` each.
        x: the x column (default: the first).
        require_sorted_x: refuse the upload at ``finish_upload`` unless x is sorted (a line).

    Raises:
        InvalidColumns, InvalidDtype, UnequalLengths: a column is not one the server stores.
        TooLarge: over ``BOKEHSITE_DATASET_MAX_BYTES``.
        QuotaExceeded: over the owner's ``BOKEHSITE_DATASET_QUOTA_BYTES``.
        NameTaken: the owner has a dataset of that name.
    """
    if not 1 <= len(columns) <= MAX_COLUMNS:
        raise InvalidColumns(f"columns: a dataset has 1 to {MAX_COLUMNS} columns, not {len(columns)}", field="columns")
    described, dtypes, seen = [], [], set()
    for i, column in enumerate(columns):
        column_name = column["name"]
        if column_name in seen:
            raise InvalidColumns(f"columns[{i}].name: {column_name!r} is named twice", field=f"columns[{i}].name")
        seen.add(column_name)
        dtype, unit = parse_dtype(column["dtype"], f"columns[{i}].dtype")
        described.append({"name": column_name, "dtype": dtype.name, "unit": unit})
        dtypes.append(dtype)
    length = columns[0]["length"]
    for i, column in enumerate(columns):
        if column["length"] != length:
            raise UnequalLengths(f"columns[{i}].length: column {column['name']!r} has {column['length']} rows but "
                                 f"column {columns[0]['name']!r} has {length}; every column needs as many",
                                 field=f"columns[{i}].length")
    x = columns[0]["name"] if x is None else x
    if x not in seen:
        raise InvalidColumns(f"x: {x!r} is not one of the columns", field="x")
    _check_size(sum(length * dtype.itemsize for dtype in dtypes), "the upload")
    reserved = dataset_bytes(dtypes, [c["name"] for c in described].index(x), length)
    discard_idle_uploads(owner)  # so that an abandoned upload does not hold the quota forever
    with transaction.atomic():
        _lock_owner(owner)
        if Dataset.objects.ready().filter(owner=owner, name=name).exists():
            raise NameTaken(f"you already have a dataset called {name!r}", field="name")
        _check_quota(owner, reserved)
        upload = Dataset.objects.create(owner=owner, name=name, columns=described, x_column=x, length=length,
                                        require_sorted_x=require_sorted_x, bytes=reserved,
                                        chunk_bytes=settings.BOKEHSITE_DATASET_CHUNK_BYTES)
    try:
        with _writing("the upload's files"):
            folder = storage.upload_directory(upload.id)
            folder.mkdir(mode=0o700, parents=True)
            for index, dtype in enumerate(dtypes):
                storage.create_column(storage.column_path(folder, index), dtype, length)
                chunked.create(folder, storage.column_stem(index), dtype, length, upload.chunk_bytes // dtype.itemsize,
                               summarized=described[index]["name"] != x)
    except BaseException:
        _discard(upload)
        raise
    return upload


def _column_bytes(upload: Dataset, index: int) -> int:
    return upload.length * upload.values_per_row * upload.stored_dtype(upload.columns[index]["name"]).itemsize


def _offsets(upload: Dataset, index: int) -> range:
    return range(0, _column_bytes(upload, index), upload.chunk_bytes)


def receive_chunk(upload: Dataset, column: str, offset: int, data: bytes | memoryview, sha256: str) -> None:
    """Store one chunk of ``column``: the bytes from ``offset`` (a multiple of the chunk size), as
    many as a chunk holds there. Sending a chunk again is harmless.

    Raises:
        BadChunk: no such column, an offset that starts no chunk, or a chunk of the wrong length.
        ChecksumMismatch: the bytes' SHA-256 is not ``sha256``; nothing was stored, send it again.
        UploadNotFound: the upload was finished or cancelled meanwhile.
    """
    try:
        index = upload.column_index(column)
    except KeyError:
        raise BadChunk(f"column: the upload has no column {column!r}", field="column") from None
    size = _column_bytes(upload, index)
    if offset % upload.chunk_bytes or not 0 <= offset < size:
        raise BadChunk(f"offset: {offset} does not start a chunk of column {column!r}: chunks start at multiples of "
                       f"{upload.chunk_bytes} below {size}", field="offset")
    expected = min(upload.chunk_bytes, size - offset)
    if len(data) != expected:
        raise BadChunk(f"body: the chunk of column {column!r} at offset {offset} is {expected} bytes, not {len(data)}",
                       field="body")
    if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), sha256.lower()):
        raise ChecksumMismatch("sha256: the chunk's bytes do not have this SHA-256; it was corrupted on the way "
                               "and not stored: send it again", field="sha256")
    # The chunk's rows, its blocks of the summaries and its record are written and synced before
    # its row says it arrived: a crash (of the server or the machine) then loses at worst a chunk
    # that is sent again. Syncing once at finish instead would leave rows claiming bytes that a
    # machine crash lost, and with hosts sharing the files, a finish on another host would not
    # flush this host's writes; with 64 MiB chunks and two in flight, the sync of one overlaps
    # the transfer of the next. The writes are outside the transaction, so that chunks of one
    # upload are written at once (the row is what a transaction serialises); a chunk sent twice
    # at once writes the same bytes twice.
    if not Dataset.objects.filter(pk=upload.pk, state=State.UPLOADING).exists():
        raise UploadNotFound("the upload was finished or cancelled")
    folder = storage.upload_directory(upload.id)
    dtype = upload.stored_dtype(column)
    chunk_rows = upload.chunk_bytes // dtype.itemsize
    try:
        with _writing("the chunk"):
            path = storage.column_path(folder, index)
            storage.write_at(path, offset, data, durable=False)
            written = chunked.receive(folder, storage.column_stem(index), np.frombuffer(data, dtype),
                                      offset // upload.chunk_bytes, chunk_rows, upload.length,
                                      summarized=column != upload.x_column, x=column == upload.x_column)
            storage.sync_files([path, *written])
    except Unavailable:
        if not Dataset.objects.filter(pk=upload.pk, state=State.UPLOADING).exists():  # its folder went
            raise UploadNotFound("the upload was finished or cancelled") from None
        raise
    with transaction.atomic():
        locked = _locked_upload(upload)
        UploadChunk.objects.get_or_create(dataset=locked, column=index, offset=offset)
        locked.save(update_fields=["updated"])


def _locked_upload(upload: Dataset) -> Dataset:
    locked = Dataset.objects.select_for_update().filter(pk=upload.pk, state=State.UPLOADING).first()
    if locked is None:
        raise UploadNotFound("the upload was finished or cancelled")
    return locked


def upload_status(upload: Dataset) -> dict[str, Any]:
    """What has arrived: for each column, its size and the offsets of the chunks still missing."""
    received: dict[int, set[int]] = {}
    for index, offset in UploadChunk.objects.filter(dataset=upload).values_list("column", "offset"):
        received.setdefault(index, set()).add(offset)
    columns, listed = [], 0
    for index, column in enumerate(upload.columns):
        have = received.get(index, set())
        size = _column_bytes(upload, index)
        offsets = _offsets(upload, index)
        missing = list(itertools.islice((o for o in offsets if o not in have), LISTED_MISSING - listed))
        listed += len(missing)
        columns.append({"name": column["name"], "dtype": upload.declared_dtype(column["name"]), "bytes": size,
                        "received_bytes": sum(min(upload.chunk_bytes, size - o) for o in have),
                        "missing_chunks": len(offsets) - len(have), "missing": missing})
    return {"id": upload.id, "name": upload.name, "length": upload.length, "x": upload.x_column,
            "require_sorted_x": upload.require_sorted_x, "chunk_bytes": upload.chunk_bytes, "columns": columns,
            "created": upload.created, "updated": upload.updated}


def finish_upload(upload: Dataset) -> Dataset:
    """Check the upload, build the top levels of the summaries of every column but x (the chunks
    built the rest as they arrived), and make it a dataset: the files are renamed into place
    and only then is it marked ready, in one step for readers.

    Raises:
        UploadIncomplete: chunks are missing (send them, then finish again).
        XNotSorted: x is not sorted and the upload required it; the upload is discarded.
        NameTaken: a dataset of that name was finished meanwhile; the upload is discarded.
        UploadNotFound: the upload was finished or cancelled meanwhile.
    """
    status = upload_status(upload)
    for column in status["columns"]:
        if column["missing_chunks"]:  # its offsets may be past those listed
            first = f", the first at offset {column['missing'][0]}" if column["missing"] else ""
            raise UploadIncomplete(
                f"columns: column {column['name']!r} misses {column['missing_chunks']} chunk(s){first}; "
                "send them, then finish again", field="columns")
    if upload.is_image:
        from datasets import images

        return images.finish_upload(upload)
    folder, final = storage.upload_directory(upload.id), storage.final_directory(upload.id)
    if not folder.exists() and final.exists():  # renamed by a finish whose commit failed
        os.rename(final, folder)
    rows = {name: np.load(storage.column_path(folder, i), mmap_mode="r") for i, name in enumerate(upload.column_names)}
    x_index = upload.column_index(upload.x_column)
    x_dtype = upload.stored_dtype(upload.x_column)
    x_sorted, x_min, x_max = (chunked.x_summary(folder, storage.column_stem(x_index), x_dtype, upload.length,
                                                upload.chunk_bytes // x_dtype.itemsize)
                              or _x_summary(rows[upload.x_column]))
    if upload.require_sorted_x and not x_sorted:
        _discard(upload)
        raise XNotSorted(f"x: column {upload.x_column!r} is not sorted, and the upload asked for a sorted x "
                         "(require_sorted_x, as a line needs); the upload was discarded", field="x")
    with _writing("the summaries"):
        for name in upload.summarized_columns:  # the chunks wrote the lower levels
            chunked.finish_summaries(rows[name], folder, storage.column_stem(upload.column_index(name)),
                                     upload.chunk_bytes // upload.stored_dtype(name).itemsize)
        chunked.forget(folder)
        storage.sync(folder, "*.summary*")
    del rows
    try:
        with transaction.atomic():
            locked = _locked_upload(upload)
            locked.state, locked.x_sorted, locked.x_min, locked.x_max = State.READY, x_sorted, x_min, x_max
            locked.bytes = storage.disk_bytes(folder)
            locked.save()
            UploadChunk.objects.filter(dataset=locked).delete()
            os.rename(folder, final)
            storage.sync(final.parent, None)  # the rename, before the database says ready
    except IntegrityError:
        _discard(upload)
        raise NameTaken(f"name: you already have a dataset called {upload.name!r}; the upload was discarded",
                        field="name") from None
    return locked


def discard_idle_uploads(owner: Any = None) -> int:
    """Cancel the uploads (``owner``'s, or everyone's) that received nothing for
    ``BOKEHSITE_DATASET_UPLOAD_EXPIRY`` seconds; how many."""
    since = timezone.now() - timedelta(seconds=settings.BOKEHSITE_DATASET_UPLOAD_EXPIRY)
    idle = Dataset.objects.filter(state=State.UPLOADING, updated__lt=since)
    if owner is not None:
        idle = idle.filter(owner=owner)
    uploads = list(idle)
    for upload in uploads:
        _discard(upload)
    return len(uploads)


def cancel_upload(upload: Dataset) -> None:
    """Forget an upload and its files."""
    _discard(upload)


def _discard(dataset: Dataset) -> None:
    Dataset.objects.filter(pk=dataset.pk).delete()
    storage.remove(dataset.id)


# --- datasets ------------------------------------------------------------------------------------


def delete_dataset(dataset: Dataset) -> None:
    """Delete a dataset; its files go once that is committed (``remove_files``)."""
    Dataset.objects.filter(pk=dataset.pk).delete()


def remove_files(sender: type, instance: Dataset, **kwargs: Any) -> None:
    """Connected to ``post_delete``: however a dataset's row goes (deleted, its owner deleted, the
    admin), its files go once that is committed."""
    dataset_id = instance.pk
    transaction.on_commit(lambda: storage.remove(dataset_id))
    transaction.on_commit(lambda: dataset_removed.send(sender=Dataset, dataset_id=dataset_id))


def rows_from_buffers(spec: Sequence[Mapping[str, Any]], buffers: Sequence[Buffer]) -> dict[str, np.ndarray]:
    """Columns sent as raw little-endian buffers: ``spec[i]`` (``{"name", "dtype"}``) describes
    ``buffers[i]``. Datetimes come as int64 and are returned as datetime64.

    Raises:
        InvalidColumns, InvalidDtype: a buffer that does not fit its description.
    """
    if len(spec) != len(buffers):
        raise InvalidColumns(f"columns: {len(spec)} columns are described but {len(buffers)} buffers follow",
                             field="columns")
    columns: dict[str, np.ndarray] = {}
    for i, (column, buffer) in enumerate(zip(spec, buffers)):
        dtype, unit = parse_dtype(column["dtype"], f"columns[{i}].dtype")
        data = memoryview(buffer.data).cast("B")
        if len(data) % dtype.itemsize:
            raise InvalidColumns(f"columns[{i}]: {len(data)} bytes are not a whole number of {column['dtype']} values",
                                 field=f"columns[{i}]")
        values = np.frombuffer(data, dtype)
        columns[column["name"]] = values.view(f"datetime64[{unit}]") if unit else values
    return columns


def _appended_rows(dataset: Dataset, columns: Mapping[str, Any]) -> dict[str, np.ndarray]:
    names = dataset.column_names
    if set(columns) != set(names):
        missing, unknown = sorted(set(names) - set(columns)), sorted(set(columns) - set(names))
        raise InvalidColumns(f"columns: appended rows need exactly the dataset's columns {names}"
                             + (f"; missing {missing}" if missing else "") + (f"; unknown {unknown}" if unknown else ""),
                             field="columns")
    rows, length = {}, None
    for name in names:
        values = np.asarray(columns[name])
        field = f"columns.{name}"
        if values.ndim != 1:
            raise InvalidColumns(f"{field}: a column is one-dimensional, not of shape {values.shape}", field=field)
        declared = dataset.declared_dtype(name)
        if str(values.dtype) != declared and np.dtype(values.dtype).newbyteorder("<") != np.dtype(declared).newbyteorder("<"):
            raise InvalidDtype(f"{field}: the column is {declared}, not {values.dtype}", field=field)
        if length is not None and len(values) != length:
            raise UnequalLengths(f"{field}: {len(values)} rows, but {names[0]!r} has {length}", field=field)
        length = len(values)
        stored = dataset.stored_dtype(name)
        rows[name] = np.ascontiguousarray(values.view("<i8") if values.dtype.kind == "M" else values, dtype=stored)
    if not length:
        raise InvalidColumns("columns: no rows to append", field="columns")
    return rows


def append(dataset: Dataset, columns: Mapping[str, Any]) -> Dataset:
    """Append rows to every column (``columns`` maps each name to its new values, of its dtype):
    the files and summaries grow, then the length and x range change in one transaction, and
    ``datasets.signals.rows_appended`` is sent once that is committed.

    Raises:
        InvalidColumns, InvalidDtype, UnequalLengths: rows that do not fit the dataset.
        XNotSorted: x was sorted and would not stay so.
        TooLarge, QuotaExceeded: over the limits.
    """
    rows = _appended_rows(dataset, columns)
    added = len(next(iter(rows.values())))
    _check_size(sum(values.nbytes for values in rows.values()), "the append")
    new_x = rows[dataset.x_column]
    new_sorted, new_min, new_max = _x_summary(new_x)
    with transaction.atomic():
        _lock_owner(dataset.owner)
        locked = Dataset.objects.select_for_update().filter(pk=dataset.pk, state=State.READY).first()
        if locked is None:
            raise DatasetNotFound("the dataset was deleted")
        old = locked.length
        new = old + added
        dtypes = [locked.stored_dtype(name) for name in locked.column_names]
        x_index = locked.column_index(locked.x_column)
        _check_quota(locked.owner, dataset_bytes(dtypes, x_index, new) - dataset_bytes(dtypes, x_index, old))
        folder = storage.directory(locked)
        x_path = storage.column_path(folder, x_index)
        if locked.x_sorted:
            last = np.load(x_path, mmap_mode="r")[old - 1]
            if not new_sorted or new_x[0] < last:
                raise XNotSorted(f"columns.{locked.x_column}: x is sorted and the appended rows would unsort it "
                                 f"(they must not decrease, and start at {last} or more)",
                                 field=f"columns.{locked.x_column}")
        with _writing("the rows"):
            try:
                for index, (name, dtype) in enumerate(zip(locked.column_names, dtypes)):
                    storage.set_rows(storage.column_path(folder, index), dtype, new, rows[name], at=old)
                for name in locked.summarized_columns:
                    index = locked.column_index(name)
                    column = np.load(storage.column_path(folder, index), mmap_mode="r")
                    summaries.extend(column, folder, storage.column_stem(index), old)
                storage.sync(folder, "*.summary*")
            except BaseException:
                _restore(locked, folder, dtypes, old)
                raise
        locked.length = new
        if new_min is not None:  # else the new x values are all NaN
            locked.x_min = new_min if locked.x_min is None else min(locked.x_min, new_min)
            locked.x_max = new_max if locked.x_max is None else max(locked.x_max, new_max)
        locked.bytes = storage.disk_bytes(folder)
        locked.save()
        transaction.on_commit(lambda: rows_appended.send(sender=Dataset, dataset=locked, old_length=old,
                                                         new_length=new))
    return locked


def _restore(dataset: Dataset, folder, dtypes: list[np.dtype], length: int) -> None:
    """Put the files back to ``length`` rows after an append failed half-way."""
    for index, dtype in enumerate(dtypes):
        storage.set_rows(storage.column_path(folder, index), dtype, length)
    for name in dataset.summarized_columns:
        index = dataset.column_index(name)
        column = np.load(storage.column_path(folder, index), mmap_mode="r")
        summaries.extend(column, folder, storage.column_stem(index), length)
