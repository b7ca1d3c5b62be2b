"""What can be done to images (datasets of kind ``image``): start an upload, finish it (building
the pyramid, ``datasets.rasters``), append rows at the top. Chunks, status, cancelling and
deleting are the same as for columns (``datasets.services``): an image is one column whose rows
are ``width`` pixels each."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from django.db import IntegrityError, transaction

from datasets import rasters, services, storage
from datasets.exceptions import DatasetNotFound, InvalidColumns, InvalidDtype, NameTaken
from datasets.models import Dataset, Kind, State
from datasets.signals import rows_appended

COLUMN = "image"
MAX_WIDTH = 2 ** 31


def _extent(extent: Sequence[float]) -> list[float]:
    values = [float(v) for v in extent]
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise InvalidColumns("image.extent: four finite numbers, [x0, x1, y0, y1]", field="image.extent")
    x0, x1, y0, y1 = values
    if not (x1 > x0 and y1 > y0 and math.isfinite(x1 - x0) and math.isfinite(y1 - y0)):
        raise InvalidColumns("image.extent: x1 must be greater than x0 and y1 greater than y0", field="image.extent")
    return values


def start_upload(owner: Any, name: str, dtype_name: str, rows: int, width: int, extent: Sequence[float]) -> Dataset:
    """Reserve room for an image of ``rows`` x ``width`` pixels of ``dtype_name`` over ``extent``
    (``[x0, x1, y0, y1]``, the outer edges of its pixels; row 0 at y0) and make its (empty) file;
    chunks of its rows, row after row, then fill it (column ``"image"``).

    Raises:
        InvalidColumns, InvalidDtype: not an image the server stores.
        TooLarge, QuotaExceeded, NameTaken: as for columns.
    """
    dtype, unit = services.parse_dtype(dtype_name, "columns[0].dtype")
    if unit is not None:
        raise InvalidDtype("columns[0].dtype: an image holds numbers, not datetimes", field="columns[0].dtype")
    if not (1 <= width <= MAX_WIDTH and rows >= 1):
        raise InvalidColumns(f"image.width: 1 to {MAX_WIDTH} pixels a row, and at least one row", field="image.width")
    values = _extent(extent)
    services._check_size(rows * width * dtype.itemsize, "the image")
    reserved = rasters.image_bytes(dtype, rows, width)
    services.discard_idle_uploads(owner)
    with transaction.atomic():
        services._lock_owner(owner)
        if Dataset.objects.ready().filter(owner=owner, name=name).exists():
            raise NameTaken(f"you already have a dataset called {name!r}", field="name")
        services._check_quota(owner, reserved)
        upload = Dataset.objects.create(
            owner=owner, name=name, columns=[{"name": COLUMN, "dtype": dtype.name, "unit": None}], x_column=COLUMN,
            length=rows, bytes=reserved, chunk_bytes=services.settings.BOKEHSITE_DATASET_CHUNK_BYTES, kind=Kind.IMAGE,
            width=width, extent=values)
    try:
        with services._writing("the upload's files"):
            folder = storage.upload_directory(upload.id)
            folder.mkdir(mode=0o700, parents=True)
            storage.create_column(storage.column_path(folder, 0), dtype, rows, width=width)
    except BaseException:
        services._discard(upload)
        raise
    return upload


def finish_upload(upload: Dataset) -> Dataset:
    """Build the pyramid of a complete image upload and make it a dataset (see
    ``services.finish_upload``, which calls this once every chunk has arrived)."""
    folder, final = storage.upload_directory(upload.id), storage.final_directory(upload.id)
    if not folder.exists() and final.exists():  # renamed by a finish whose commit failed
        os.rename(final, folder)
    image = np.load(storage.column_path(folder, 0), mmap_mode="r")
    with services._writing("the pyramid"):
        rasters.build(image, folder, storage.column_stem(0))
        storage.sync(folder, "c0.*")
    del image
    try:
        with transaction.atomic():
            locked = services._locked_upload(upload)
            locked.state = State.READY
            locked.bytes = storage.disk_bytes(folder)
            locked.save()
            services.UploadChunk.objects.filter(dataset=locked).delete()
            os.rename(folder, final)
            storage.sync(final.parent, None)
    except IntegrityError:
        services._discard(upload)
        raise NameTaken(f"name: you already have a dataset called {upload.name!r}; the upload was discarded",
                        field="name") from None
    return locked


def rows_of(dataset: Dataset, columns: dict[str, np.ndarray]) -> np.ndarray:
    """Appended rows of an image, from the column ``"image"`` (its pixels, row after row).

    Raises:
        InvalidColumns, InvalidDtype: not whole rows of the image's dtype.
    """
    if set(columns) != {COLUMN}:
        raise InvalidColumns(f"columns: rows appended to an image are one column, {COLUMN!r}", field="columns")
    values = np.asarray(columns[COLUMN])
    dtype = dataset.stored_dtype(COLUMN)
    field = f"columns.{COLUMN}"
    if values.dtype.newbyteorder("<") != dtype:
        raise InvalidDtype(f"{field}: the image is {dtype.name}, not {values.dtype}", field=field)
    if values.size == 0 or values.size % dataset.width:
        raise InvalidColumns(f"{field}: {values.size} pixels are not whole rows of {dataset.width}", field=field)
    return np.ascontiguousarray(values, dtype=dtype).reshape(-1, dataset.width)


def append(dataset: Dataset, rows: np.ndarray) -> Dataset:
    """Append ``rows`` (of the image's width and dtype) at the top of the image: the file and its
    pyramid grow, then the length and extent change in one transaction, and
    ``datasets.signals.rows_appended`` is sent once that is committed.

    Raises:
        TooLarge, QuotaExceeded: over the limits.
    """
    services._check_size(rows.nbytes, "the append")
    with transaction.atomic():
        services._lock_owner(dataset.owner)
        locked = Dataset.objects.select_for_update().filter(pk=dataset.pk, state=State.READY).first()
        if locked is None:
            raise DatasetNotFound("the dataset was deleted")
        old, width = locked.length, locked.width
        new = old + len(rows)
        dtype = locked.stored_dtype(COLUMN)
        services._check_quota(locked.owner, rasters.image_bytes(dtype, new, width) - rasters.image_bytes(dtype, old, width))
        folder = storage.directory(locked)
        path, stem = storage.column_path(folder, 0), storage.column_stem(0)
        with services._writing("the rows"):
            try:
                storage.set_rows(path, dtype, new, rows, at=old, width=width)
                rasters.build(np.load(path, mmap_mode="r"), folder, stem, old)
                storage.sync(folder, "c0.*")
            except BaseException:
                storage.set_rows(path, dtype, old, width=width)
                rasters.build(np.load(path, mmap_mode="r"), folder, stem, old)
                raise
        x0, x1, y0, y1 = locked.extent
        locked.extent = [x0, x1, y0, y0 + (y1 - y0) / old * new]
        locked.length = new
        locked.bytes = storage.disk_bytes(folder)
        locked.save()
        transaction.on_commit(lambda: rows_appended.send(sender=Dataset, dataset=locked, old_length=old,
                                                         new_length=new))
    return locked
