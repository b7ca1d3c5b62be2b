"""Images from the client: 2-D arrays too large for a document (a raster, a spectrogram), uploaded
in chunks as datasets are (``bokehsite.client.datasets``), row after row, row 0 at the bottom.

``Session.upload_image`` and ``Session.append_image`` call these; ``server_source(image, "image",
reduce="mean")`` draws one.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING, Any

import numpy as np
from bokeh.core.serialization import Buffer

from bokehsite import wire
from bokehsite.client import datasets as dataset_api

if TYPE_CHECKING:
    from bokehsite.client.session import Session

COLUMN = "image"
# The slowest pyramid build an image's finish allows for (bytes of the image a second).
FINISH_BYTES_PER_SECOND = 20e6


class Image(dataset_api.Dataset):
    """An image stored on the server: ``shape`` (rows, pixels a row), ``dtype``, ``extent``
    (x0, x1, y0, y1: the outer edges of its pixels), and what a ``Dataset`` has."""

    @property
    def shape(self) -> tuple[int, int]:
        return self.info["length"], self.info["width"]

    @property
    def dtype(self) -> str:
        return self.columns[COLUMN]

    @property
    def extent(self) -> tuple[float, float, float, float]:
        return tuple(self.info["extent"])

    def append(self, rows: Any) -> Image:
        """``Session.append_image`` for this image."""
        self.info = append(self.session, self.id, rows).info
        return self

    def __repr__(self) -> str:
        return f"Image(name={self.name!r}, shape={self.shape}, dtype={self.dtype!r}, extent={self.extent})"

    def _repr_html_(self) -> str:
        rows, width = self.shape
        x0, x1, y0, y1 = self.extent
        return (f"<div class='bokehsite-dataset'><strong>{escape(self.name)}</strong>: an image of {rows:,} x "
                f"{width:,} {escape(self.dtype)} pixels over x {x0:g} to {x1:g}, y {y0:g} to {y1:g}, "
                f"{self.bytes / 1e6:,.1f} MB on the server</div>")


def wrap(session: Session, info: dict[str, Any]) -> dataset_api.Dataset:
    """A ``Dataset``, or an ``Image`` if it is one."""
    return (Image if info.get("kind") == "image" else dataset_api.Dataset)(session, info)


def _edges(coordinate: np.ndarray, name: str) -> tuple[float, float]:
    """The outer edges of pixels whose centres are ``coordinate`` (evenly spaced, increasing)."""
    values = np.asarray(coordinate, dtype=np.float64)
    if len(values) == 1:
        return float(values[0]) - 0.5, float(values[0]) + 0.5
    step = (values[-1] - values[0]) / (len(values) - 1)
    if not step > 0:
        raise ValueError(f"the coordinate {name!r} must be increasing or decreasing")
    return float(values[0] - step / 2), float(values[-1] + step / 2)


def as_image(array: Any, x: Sequence[float] | None,
             y: Sequence[float] | None) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A 2-D array with row 0 at the bottom, and its extent, from a NumPy array (extent from ``x``
    and ``y``, default one unit a pixel) or an xarray ``DataArray`` with two dims (y, then x),
    whose coordinates are its pixels' centres (a decreasing y, as rasters often have, is flipped)."""
    if type(array).__module__.split(".")[0] == "xarray":
        import xarray  # only if the caller has xarray (the client's "parquet" extra)

        if not isinstance(array, xarray.DataArray) or array.ndim != 2:
            raise TypeError("an image is a 2-D NumPy array or an xarray DataArray with two dims")
        y_dim, x_dim = array.dims
        values = np.asarray(array.values)
        edges = {}
        for dim, given in ((x_dim, x), (y_dim, y)):
            if given is not None:
                edges[dim] = tuple(given)
            elif dim in array.coords:
                coordinate = np.asarray(array.coords[dim].values, dtype=np.float64)
                if len(coordinate) > 1 and coordinate[-1] < coordinate[0]:
                    coordinate = coordinate[::-1]
                    values = values[::-1] if dim == y_dim else values[:, ::-1]
                edges[dim] = _edges(coordinate, str(dim))
            else:
                edges[dim] = (0.0, float(array.sizes[dim]))
        x, y = edges[x_dim], edges[y_dim]
        array = values
    values = np.asarray(array)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"an image is a non-empty 2-D array, not of shape {values.shape}")
    if values.dtype.kind not in "biuf":
        raise TypeError(f"an image holds numbers, not {values.dtype}")
    if values.dtype.kind == "f" and values.dtype.itemsize < 4:
        values = values.astype(np.float32)
    rows, width = values.shape
    x0, x1 = (0.0, float(width)) if x is None else (float(x[0]), float(x[1]))
    y0, y1 = (0.0, float(rows)) if y is None else (float(y[0]), float(y[1]))
    if not (x1 > x0 and y1 > y0):
        raise ValueError("the extent must have x1 > x0 and y1 > y0")
    return np.ascontiguousarray(values), (x0, x1, y0, y1)


def upload(session: Session, name: str, array: Any, *, x: Sequence[float] | None = None,
           y: Sequence[float] | None = None) -> Image:
    """Upload ``array`` as the image ``name``; see ``Session.upload_image``."""
    values, extent = as_image(array, x, y)
    rows, width = values.shape
    start = {"name": name, "columns": [{"name": COLUMN, "dtype": values.dtype.name, "length": rows}],
             "image": {"width": width, "extent": list(extent)}}
    # Finishing builds the pyramid in the request: about a second per 100 MB here, so wait
    # longer than for other answers rather than ask again while it is being built.
    info = dataset_api.send_upload(session, start, dataset_api.ArrayColumns({COLUMN: values}),
                                   finish_timeout=60.0 + values.nbytes / FINISH_BYTES_PER_SECOND)
    return Image(session, info)


def append(session: Session, name_or_id: Any, rows: Any) -> Image:
    """Append rows on top of an image; see ``Session.append_image``."""
    values = np.asarray(rows)
    if values.ndim != 2:
        raise ValueError(f"rows appended to an image are a 2-D array, not of shape {values.shape}")
    info = name_or_id.info if hasattr(name_or_id, "info") else dataset_api.find(session, name_or_id)
    if info.get("kind") != "image":
        raise ValueError(f"{info['name']!r} is not an image")
    if values.shape[1] != info["width"]:
        raise ValueError(f"the image is {info['width']} pixels wide; the rows are {values.shape[1]}")
    image_id = info["id"]
    body = wire.pack({"columns": [{"name": COLUMN, "dtype": values.dtype.name}]},
                     [Buffer("0", dataset_api.raw(values))])
    info = session._request("POST", f"api/datasets/{image_id}/rows/", data=body, content_type=wire.CONTENT_TYPE).json()
    return Image(session, info)
