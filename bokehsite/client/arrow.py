"""Columns of an Arrow table or a Parquet file for ``Session.upload_dataset``, read a piece at a time.

A piece is one column of one Parquet row group (or of one chunk of a table). An upload sends a
column's bytes in chunks of the server's size, which need not line up with pieces: a chunk is cut
from the pieces it overlaps, and only the last two pieces read are kept, so the client holds about
two pieces however large the file. A chunk the server still misses after a failure is read again
from its pieces.

pyarrow is an optional extra (``pip install bokehsite[parquet]``): only such sources import this.
"""

from __future__ import annotations

import math
import os
from bisect import bisect_right
from collections import OrderedDict
from itertools import accumulate
from typing import Any

import numpy as np

try:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
except ImportError as e:  # pragma: no cover - depends on what is installed
    raise ImportError("uploading an Arrow table or a Parquet file needs pyarrow: "
                      "pip install 'bokehsite[parquet]'") from e

from bokehsite.client.datasets import dtype_name, raw

# Pieces kept between reads: the one the last chunk ended in and the one before it, so that
# chunks read in order decode each piece once.
KEPT_PIECES = 2

STORED_TYPES = "bool, integers, float32, float64, timestamps and dates"


def numpy_dtype(name: str, arrow_type: pa.DataType) -> np.dtype:
    """The NumPy dtype a column of ``arrow_type`` is stored as; TypeError for what datasets cannot store."""
    if pa.types.is_boolean(arrow_type):
        return np.dtype(bool)
    if pa.types.is_integer(arrow_type):
        return np.dtype(str(arrow_type))  # int8 ... uint64: Arrow and NumPy name them alike
    if pa.types.is_float32(arrow_type):
        return np.dtype(np.float32)
    if pa.types.is_float64(arrow_type):
        return np.dtype(np.float64)
    if pa.types.is_timestamp(arrow_type):
        # Arrow holds timestamps in UTC whatever their zone, which only labels them: the unit stays.
        return np.dtype(f"datetime64[{arrow_type.unit}]")
    if pa.types.is_date32(arrow_type):
        return np.dtype("datetime64[D]")
    if pa.types.is_date64(arrow_type):
        return np.dtype("datetime64[ms]")
    raise TypeError(f"column {name!r} is of Arrow type {arrow_type}: datasets store {STORED_TYPES}; "
                    f"drop the column or cast it first")


class ArrowColumns:
    """The columns of a ``pyarrow.Table`` or ``RecordBatch``, or of a Parquet file (a path or a
    ``pyarrow.parquet.ParquetFile``), as the raw bytes an upload sends."""

    def __init__(self, source: Any):
        self._file: pq.ParquetFile | None = None
        self._table: pa.Table | None = None
        self._owns_file = isinstance(source, (str, os.PathLike))
        if self._owns_file:
            source = pq.ParquetFile(source, memory_map=True)  # pages read in place, not copied
        if isinstance(source, pq.ParquetFile):
            self._file = source
            schema, metadata = source.schema_arrow, source.metadata
            self.length = metadata.num_rows
            starts = _starts(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups))
            self._starts = {name: starts for name in schema.names}
        else:
            if isinstance(source, pa.RecordBatch):
                source = pa.Table.from_batches([source])
            if not isinstance(source, pa.Table):
                raise TypeError(f"an Arrow source is a pyarrow Table, RecordBatch or ParquetFile, "
                                f"not {type(source).__name__}")
            self._table, schema, self.length = source, source.schema, source.num_rows
            self._starts = {name: _starts(len(chunk) for chunk in source.column(name).chunks)
                            for name in schema.names}
        if len(set(schema.names)) != len(schema.names):
            raise ValueError(f"column names must differ: {schema.names}")
        self.dtypes = {field.name: numpy_dtype(field.name, field.type) for field in schema}
        self._check_nulls_known()
        self._kept: OrderedDict[tuple[str, int], memoryview] = OrderedDict()

    @property
    def spec(self) -> list[dict[str, Any]]:
        return [{"name": name, "dtype": dtype_name(np.empty(0, dtype)), "length": self.length}
                for name, dtype in self.dtypes.items()]

    def read(self, name: str, start: int, stop: int) -> bytes:
        """Bytes ``start`` to ``stop`` of the column ``name`` as stored (cut short at its end)."""
        itemsize = self.dtypes[name].itemsize
        starts = self._starts[name]
        stop = min(stop, starts[-1] * itemsize)
        out = bytearray()
        piece = bisect_right(starts, start // itemsize) - 1  # the last piece starting at or before start
        while piece < len(starts) - 1 and starts[piece] * itemsize < stop:
            low, high = starts[piece] * itemsize, starts[piece + 1] * itemsize
            if high > start:  # not an empty piece
                out += self._piece(name, piece)[max(start, low) - low:min(stop, high) - low]
            piece += 1
        return bytes(out)

    def close(self) -> None:
        self._kept.clear()
        if self._owns_file and self._file is not None:
            self._file.close()

    def _piece(self, name: str, index: int) -> memoryview:
        key = (name, index)
        if key in self._kept:
            self._kept.move_to_end(key)
            return self._kept[key]
        if self._file is not None:
            values = self._file.read_row_group(index, columns=[name]).column(0).combine_chunks()
        else:
            values = self._table.column(name).chunk(index)
        data = raw(self._numpy(name, index, values))
        self._kept[key] = data
        while len(self._kept) > KEPT_PIECES:
            self._kept.popitem(last=False)
        return data

    def _numpy(self, name: str, index: int, values: pa.Array) -> np.ndarray:
        if values.null_count:
            if not pa.types.is_floating(values.type):
                first = self._starts[name][index]
                raise ValueError(_nulls_message(name, values.null_count, f"rows {first} to {first + len(values) - 1}"))
            values = pc.fill_null(values, math.nan)
        array = values.to_numpy(zero_copy_only=False)
        dtype = self.dtypes[name]
        return array if array.dtype == dtype else array.astype(dtype)

    def _check_nulls_known(self) -> None:
        """Refuse before sending anything what is known to hold nulls where no NaN can stand."""
        stored_nulls = {name for name, dtype in self.dtypes.items() if dtype.kind != "f"}
        if self._table is not None:
            for name in stored_nulls:
                if self._table.column(name).null_count:
                    raise ValueError(_nulls_message(name, self._table.column(name).null_count, "the table"))
            return
        metadata = self._file.metadata
        names = self._file.schema_arrow.names
        for group in range(metadata.num_row_groups):
            row_group = metadata.row_group(group)
            for i in range(row_group.num_columns):  # the file's leaf columns; stored ones are flat
                column = row_group.column(i)
                name = column.path_in_schema
                stats = column.statistics
                if name in stored_nulls and name in names and stats is not None and stats.has_null_count \
                        and stats.null_count:
                    raise ValueError(_nulls_message(name, stats.null_count, f"row group {group}"))


def _starts(lengths: Any) -> list[int]:
    """The row each piece starts at, and the row after the last."""
    return [0, *accumulate(lengths)]


def _nulls_message(name: str, count: int, where: str) -> str:
    return (f"column {name!r} has {count} null value(s) in {where}: only float columns may hold nulls "
            f"(they are stored as NaN); fill or drop them first")
