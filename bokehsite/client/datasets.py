"""Datasets from the client: columns too large for a document, uploaded as raw binary in chunks.

``Session.upload_dataset``, ``datasets``, ``dataset``, ``append_dataset`` and ``delete_dataset``
call these. An upload survives dropped connections and server restarts: after a failure the
client asks the server which chunks it has and sends the rest. Columns come from NumPy arrays,
a pandas DataFrame, or (``bokehsite.client.arrow``) a Parquet file or an Arrow table.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import sys
import time
from html import escape
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

import numpy as np
from bokeh.core.serialization import Buffer
from tqdm import tqdm

from bokehsite import wire
from bokehsite.client.exceptions import ServerError, ServerUnreachable

if TYPE_CHECKING:
    from bokehsite.client.session import Session

# How long an upload keeps trying while the server does not answer (or answers 5xx), from the
# last chunk that went through.
RETRY_SECONDS = 60.0
# Answers that say "try again": a restarting server or proxy, a database that is down.
TRANSIENT_STATUSES = (502, 503, 504)
# Chunks in flight at once, each on a connection of its own: while the server hashes, writes and
# syncs one, the next is on the wire. Each holds a copy of a chunk in memory.
PARALLEL_CHUNKS = 2


class Dataset:
    """A dataset stored on the server: ``id``, ``name``, ``length`` (rows), ``columns`` (each
    column's dtype, by name, in order), ``x`` (the x column), ``x_range``, ``x_sorted``,
    ``bytes`` (on disk); ``session`` is the session it came from."""

    def __init__(self, session: Session, info: dict[str, Any]):
        self.session = session
        self.info = info

    @property
    def id(self) -> str:
        return self.info["id"]

    @property
    def name(self) -> str:
        return self.info["name"]

    @property
    def length(self) -> int:
        return self.info["length"]

    @property
    def columns(self) -> dict[str, str]:
        return {column["name"]: column["dtype"] for column in self.info["columns"]}

    @property
    def x(self) -> str:
        return self.info["x"]

    @property
    def x_range(self) -> tuple[float | None, float | None]:
        return self.info["x_min"], self.info["x_max"]

    @property
    def x_sorted(self) -> bool:
        return self.info["x_sorted"]

    @property
    def bytes(self) -> int:
        return self.info["bytes"]

    def refresh(self) -> Dataset:
        """Read the dataset's description again (after appends from elsewhere)."""
        self.info = self.session._request("GET", f"api/datasets/{self.id}/").json()
        return self

    def append(self, columns: Any) -> Dataset:
        """``Session.append_dataset`` for this dataset."""
        self.info = append(self.session, self.id, columns).info
        return self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dataset) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"Dataset(name={self.name!r}, length={self.length}, columns={self.columns!r})"

    def _repr_html_(self) -> str:
        """In a notebook: what the dataset holds, as a small table."""
        rows = "".join(f"<tr><td><code>{escape(name)}</code>{' (x)' if name == self.x else ''}</td>"
                       f"<td>{escape(dtype)}</td></tr>" for name, dtype in self.columns.items())
        low, high = self.x_range
        extent = f", x from {low:g} to {high:g}" if low is not None and high is not None else ""
        return (f"<div class='bokehsite-dataset'><strong>{escape(self.name)}</strong>: {self.length:,} rows, "
                f"{self.bytes / 1e6:,.1f} MB on the server{escape(extent)}{'' if self.x_sorted else ', x unsorted'}"
                f"<table><tr><th>column</th><th>dtype</th></tr>{rows}</table></div>")


# --- columns -----------------------------------------------------------------------------------


def as_columns(columns: Any) -> dict[str, np.ndarray]:
    """A dict of one-dimensional arrays from a dict of array-likes or a pandas DataFrame (its
    columns; ``df.reset_index()`` first to keep the index). Timezone-aware datetimes become UTC."""
    if type(columns).__module__.split(".")[0] == "pandas":
        import pandas as pd  # only if the caller has pandas: the client does not need it

        if not isinstance(columns, pd.DataFrame):
            raise TypeError(f"columns must be a dict of arrays or a pandas DataFrame, not {type(columns).__name__}")
        out = {}
        for name in columns.columns:
            series = columns[name]
            if isinstance(series.dtype, pd.DatetimeTZDtype):
                series = series.dt.tz_convert("UTC").dt.tz_localize(None)
            out[name] = series.to_numpy()
        columns = out
    if not isinstance(columns, Mapping):
        raise TypeError(f"columns must be a dict of arrays or a pandas DataFrame, not {type(columns).__name__}")
    arrays = {}
    for name, values in columns.items():
        if not isinstance(name, str):
            raise TypeError(f"column names are strings, not {name!r}")
        array = np.asarray(values)
        if array.ndim != 1:
            raise ValueError(f"column {name!r} must be one-dimensional, not of shape {array.shape}")
        arrays[name] = array
    return arrays


def dtype_name(values: np.ndarray) -> str:
    """How the server names the dtype of ``values`` (``float64``, ``datetime64[ms]``...)."""
    return str(values.dtype) if values.dtype.kind == "M" else values.dtype.name


def raw(values: np.ndarray) -> memoryview:
    """The bytes the server stores for ``values``: little-endian, datetimes as int64."""
    if values.dtype.kind in "biufM":
        values = values.astype(values.dtype.newbyteorder("<"), copy=False)
        if values.dtype.kind == "M":
            values = values.view("<i8")
    return memoryview(np.ascontiguousarray(values)).cast("B")


# --- uploads -----------------------------------------------------------------------------------


class ArrayColumns:
    """Columns held as NumPy arrays, as the raw bytes an upload sends."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.spec = [{"name": key, "dtype": dtype_name(values), "length": len(values)} for key, values in arrays.items()]
        self._data = {key: raw(values) for key, values in arrays.items()}

    def read(self, name: str, start: int, stop: int) -> bytes:
        return bytes(self._data[name][start:stop])

    def close(self) -> None:
        self._data.clear()


def column_source(columns: Any) -> Any:
    """What an upload reads its chunks from: NumPy arrays, or the row groups of a Parquet file (a
    path) or the chunks of an Arrow table, a piece at a time (``bokehsite.client.arrow``)."""
    if isinstance(columns, (str, os.PathLike)) or type(columns).__module__.split(".")[0] == "pyarrow":
        from bokehsite.client.arrow import ArrowColumns  # pyarrow is an optional extra

        return ArrowColumns(columns)
    return ArrayColumns(as_columns(columns))


def upload(session: Session, name: str, columns: Any, *, x: str | None = None,
           require_sorted_x: bool = False) -> Dataset:
    """Upload ``columns`` as the dataset ``name``; see ``Session.upload_dataset``."""
    source = column_source(columns)
    try:
        info = send_upload(session, {"name": name, "columns": source.spec, "x": x,
                                     "require_sorted_x": require_sorted_x}, source)
    finally:
        source.close()
    return Dataset(session, info)


def send_upload(session: Session, start: dict[str, Any], source: Any, finish_timeout: float | None = None) -> dict[str, Any]:
    """Start the upload ``start`` describes, send every chunk from ``source`` and finish it (waiting
    up to ``finish_timeout`` seconds for that answer, if given); the dataset's description. An
    upload that fails is cancelled, so that nothing of it remains on the server."""
    started = session._request("POST", "api/datasets/uploads/", json=start).json()
    path = f"api/datasets/uploads/{started['id']}/"
    try:
        _send_all(session, path, started, source)
        timeout = session.timeout
        session.timeout = max(timeout, finish_timeout or 0.0)
        try:
            return _finish(session, path, start["name"])
        finally:
            session.timeout = timeout
    except BaseException:
        try:
            session._request("DELETE", path)
        except (ServerError, ServerUnreachable):
            pass
        raise


def _transient(error: Exception) -> bool:
    return isinstance(error, ServerUnreachable) or (
        isinstance(error, ServerError) and (error.status in TRANSIENT_STATUSES or error.code == "checksum_mismatch"))


def _send_all(session: Session, path: str, upload: dict[str, Any], source: Any) -> None:
    """Send every chunk the server does not have, asking it again after every failure."""
    chunk = upload["chunk_bytes"]
    total = sum(column["bytes"] for column in upload["columns"])
    status, deadline, pause = upload, None, 0.1
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=upload["name"],
              disable=not sys.stderr.isatty(), leave=False) as bar:
        while True:
            try:
                if status is None:
                    status = session._request("GET", path).json()
                bar.n = sum(column["received_bytes"] for column in status["columns"])
                bar.refresh()
                todo = [(column["name"], offset) for column in status["columns"] for offset in column["missing"]]
                if not todo:
                    return
                for sent in _send_chunks(session, path, source, chunk, todo):
                    bar.update(sent)
                    deadline, pause = None, 0.1
                status = None  # ask once more: the server's word on what it has is the one that counts
            except (ServerError, ServerUnreachable) as e:
                if not _transient(e):
                    raise
                deadline = deadline or time.monotonic() + RETRY_SECONDS
                if time.monotonic() > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
                status = None


def _send_chunks(session: Session, path: str, source: Any, chunk: int, todo: list[tuple[str, int]]) -> Iterator[int]:
    """Send the chunks ``todo``, ``PARALLEL_CHUNKS`` at once; yields each one's size as it is
    stored. The first failure is raised once the chunks in flight are done. Chunks are read from
    ``source`` here, one at a time (an Arrow source keeps the row groups it read last)."""

    def send(column: str, offset: int, piece: bytes) -> int:
        session._request("PUT", f"{path}chunks/", data=piece, content_type="application/octet-stream",
                         params={"column": column, "offset": offset, "sha256": hashlib.sha256(piece).hexdigest()})
        return len(piece)

    pending = iter(todo)
    with ThreadPoolExecutor(PARALLEL_CHUNKS, thread_name_prefix="bokehsite-upload") as pool:
        running = {pool.submit(send, *item, source.read(item[0], item[1], item[1] + chunk))
                   for item in itertools.islice(pending, PARALLEL_CHUNKS)}
        try:
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
                    for item in itertools.islice(pending, 1):
                        running.add(pool.submit(send, *item, source.read(item[0], item[1], item[1] + chunk)))
        finally:  # a failure (or the caller giving up): send no more, let those in flight end
            for future in running:
                future.cancel()


def _finish(session: Session, path: str, name: str) -> dict[str, Any]:
    deadline, pause = time.monotonic() + RETRY_SECONDS, 0.1
    while True:
        try:
            return session._request("POST", f"{path}finish/").json()
        except (ServerError, ServerUnreachable) as e:
            if isinstance(e, ServerError) and e.status == 404:
                # Finished by an earlier try whose answer was lost?
                found = session._request("GET", "api/datasets/", params={"name": name}).json()
                if found:
                    return found[0]
                raise
            if not _transient(e) or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


# --- datasets ----------------------------------------------------------------------------------


def find(session: Session, name_or_id: str) -> dict[str, Any]:
    """A dataset's description, by name or id."""
    from bokehsite.client.session import _is_uuid

    if _is_uuid(name_or_id):
        return session._request("GET", f"api/datasets/{name_or_id}/").json()
    found = session._request("GET", "api/datasets/", params={"name": name_or_id}).json()
    if not found:
        raise ServerError(session.root_url, 404, "not_found", f"no dataset called {name_or_id!r}")
    return found[0]


def append(session: Session, name_or_id: str, columns: Any) -> Dataset:
    """Append rows; see ``Session.append_dataset``."""
    arrays = as_columns(columns)
    dataset_id = find(session, name_or_id)["id"] if not hasattr(name_or_id, "id") else name_or_id.id
    spec = [{"name": key, "dtype": dtype_name(values)} for key, values in arrays.items()]
    body = wire.pack({"columns": spec}, [Buffer(str(i), raw(values)) for i, values in enumerate(arrays.values())])
    info = session._request("POST", f"api/datasets/{dataset_id}/rows/", data=body,
                            content_type=wire.CONTENT_TYPE).json()
    return Dataset(session, info)
