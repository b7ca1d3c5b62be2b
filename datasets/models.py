"""Datasets: large numeric columns kept on disk (``datasets.storage``), described here."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
from django.conf import settings
from django.db import models
from django.db.models import Q

# The dtypes a column may have, by name. Datetimes are stored as int64 and keep their unit.
NUMERIC_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32",
                  "float64")
DATETIME_UNITS = ("D", "h", "m", "s", "ms", "us", "ns")


class State(models.TextChoices):
    UPLOADING = "uploading", "Uploading"
    READY = "ready", "Ready"


class Kind(models.TextChoices):
    COLUMNS = "columns", "Columns"
    IMAGE = "image", "Image"


class DatasetQuerySet(models.QuerySet):
    def ready(self) -> DatasetQuerySet:
        return self.filter(state=State.READY)

    def usable_by(self, user: Any) -> DatasetQuerySet:
        """The datasets ``user`` may use directly: their own, once uploaded."""
        if not getattr(user, "is_authenticated", False):
            return self.none()
        return self.ready().filter(owner=user)

    def uploads_of(self, user: Any) -> DatasetQuerySet:
        """``user``'s uploads in progress."""
        if not getattr(user, "is_authenticated", False):
            return self.none()
        return self.filter(owner=user, state=State.UPLOADING)


class Dataset(models.Model):
    """Columns of equal length, one ``.npy`` file each, with min/max summaries of every column
    but x; or an image (``kind``), one 2-D ``.npy`` file of ``length`` rows of ``width`` pixels
    with its pyramid (``datasets.rasters``). An upload in progress is a ``Dataset`` in state ``uploading``: nothing lists or
    opens it as a dataset until it is ``ready``.

    ``columns`` lists, in order, ``{"name", "dtype", "unit"}``: ``dtype`` is what the file holds
    (``int64`` for datetimes), ``unit`` the datetime64 unit (``"ms"``...) or null.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200)
    state = models.CharField(max_length=16, choices=State.choices, default=State.UPLOADING)
    length = models.BigIntegerField(default=0, help_text="Rows.")
    columns = models.JSONField(default=list)
    x_column = models.CharField(max_length=100)
    x_min = models.FloatField(null=True, blank=True)
    x_max = models.FloatField(null=True, blank=True)
    x_sorted = models.BooleanField(default=False, help_text="Whether x never decreases from row to row.")
    require_sorted_x = models.BooleanField(default=False, help_text="The upload asked that x be sorted.")
    bytes = models.BigIntegerField(default=0, help_text="Bytes on disk (reserved, while uploading).")
    chunk_bytes = models.PositiveIntegerField(default=0, help_text="The upload's chunk size.")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.COLUMNS,
                            help_text="Columns, or an image: one 2-D column of ``length`` rows of ``width`` pixels.")
    width = models.BigIntegerField(default=0, help_text="An image's pixels a row (0 for columns).")
    extent = models.JSONField(null=True, blank=True, help_text="An image's [x0, x1, y0, y1]: the edges of its pixels.")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = DatasetQuerySet.as_manager()

    class Meta:
        ordering = ["-updated"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], condition=Q(state="ready"),
                                               name="dataset_name_unique_per_owner")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_ready(self) -> bool:
        return self.state == State.READY

    @property
    def is_image(self) -> bool:
        return self.kind == Kind.IMAGE

    @property
    def values_per_row(self) -> int:
        """Values one row of a column holds: an image's width, else 1."""
        return self.width if self.is_image else 1

    @property
    def column_names(self) -> list[str]:
        return [column["name"] for column in self.columns]

    def column_index(self, name: str) -> int:
        """Which column ``name`` is (KeyError if none)."""
        for index, column in enumerate(self.columns):
            if column["name"] == name:
                return index
        raise KeyError(name)

    def stored_dtype(self, name: str) -> np.dtype:
        """What the column's file holds (little-endian; int64 for datetimes)."""
        return np.dtype(self.columns[self.column_index(name)]["dtype"]).newbyteorder("<")

    def declared_dtype(self, name: str) -> str:
        """The column's dtype as uploaded: ``float64``, ``datetime64[ms]``..."""
        column = self.columns[self.column_index(name)]
        return f"datetime64[{column['unit']}]" if column.get("unit") else column["dtype"]

    @property
    def summarized_columns(self) -> list[str]:
        """The columns with min/max summaries: every one but x (none of an image: it has a pyramid)."""
        if self.is_image:
            return []
        return [name for name in self.column_names if name != self.x_column]


class UploadChunk(models.Model):
    """A chunk of an upload that has arrived whole (its checksum matched)."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="chunks")
    column = models.PositiveSmallIntegerField()
    offset = models.BigIntegerField(help_text="Byte offset in the column.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["dataset", "column", "offset"], name="upload_chunk_unique")]
