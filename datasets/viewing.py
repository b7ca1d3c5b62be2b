"""What a viewer sees of a source backed by a dataset: the view of a range at a plot's size,
computed from the stored columns (``datasets.storage``, ``datasets.aggregation``) as the
``view_data`` message that carries it.

May a view be shown? The source is one of the document's, marked as backed by the dataset
(``bokehsite.protocol.read_mark``), and the document's owner may use that dataset: nobody reads a
dataset by naming it in a document of their own. Who may see the document is the caller's
business (``documents.access``).
"""

from __future__ import annotations

import math
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from bokeh.core.serialization import Buffer

from bokehsite import errors, protocol, wire
from bokehsite.errors import ApiError
from datasets import aggregation, rasters, storage
from datasets.models import Dataset
from documents import services

# The largest plot a view is computed for, in pixels a side.
MAX_PIXELS = 8192
# Datashader's pieces of one view are counted here, two at once (see ``aggregation.points_view``).
_pieces = ThreadPoolExecutor(max_workers=2, thread_name_prefix="view-pieces")
# Milliseconds (Bokeh's datetime axis unit) in one unit of a datetime64 column.
_MS_PER_UNIT = {"D": 86_400_000.0, "h": 3_600_000.0, "m": 60_000.0, "s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}


class InvalidView(ApiError):
    code = "invalid_view"


class UnknownSource(errors.NotFound):
    """No source of that id backed by a dataset this document may show."""

    code = "unknown_source"


def check(request: protocol.View, kind: str) -> None:
    """Refuse what no plot asks for: empty, inverted or overflowing ranges, absurd sizes."""
    for name in ("width", "height"):
        if getattr(request, name) > MAX_PIXELS:
            raise InvalidView(f"{name!r} must be at most {MAX_PIXELS} pixels", field=name)
    if not request.x1 > request.x0 or not math.isfinite(request.x1 - request.x0):
        raise InvalidView("'x1' must be greater than 'x0', by a finite amount", field="x1")
    if (request.y0 is None) != (request.y1 is None):
        raise InvalidView("'y0' and 'y1' go together", field="y1" if request.y1 is None else "y0")
    if request.y0 is not None and (not request.y1 > request.y0 or not math.isfinite(request.y1 - request.y0)):
        raise InvalidView("'y1' must be greater than 'y0', by a finite amount", field="y1")
    if kind in ("points", "lines", "image") and request.y0 is None:
        what = {"points": "points", "lines": "lines", "image": "an image"}[kind]
        raise InvalidView(f"a view of {what} needs the y range ('y0', 'y1')", field="y0")


@dataclass(frozen=True)
class Backing:
    """What a source shows of which dataset."""

    dataset: Dataset
    kind: str
    x: str
    y: str
    reduce: str | None = None  # an image's: "mean" or "max"
    ys: tuple[str, ...] = ()  # every column drawn, for kind "lines" (``datasets.series_views``)


def backing(document, source_id: str) -> Backing:
    """The dataset behind ``source_id`` of ``document``, as stored now (synchronous: it queries)."""
    mark = services.dataset_mark(document, source_id)
    if mark is None:
        raise UnknownSource(f"the document has no source {source_id!r} backed by a dataset", field="source")
    dataset = Dataset.objects.usable_by(document.owner).filter(pk=_uuid(mark[protocol.DATASET_MARK])).first()
    if dataset is None:
        raise UnknownSource("the dataset behind this source is gone, or not one its document may show", field="source")
    return backing_of(dataset, mark["kind"], mark["x"], mark["y"], field="source", reduce=mark.get("reduce"))


def backing_of(dataset: Dataset, kind: str, x: str, y: Any, *, field: str, reduce: str | None = None) -> Backing:
    """``dataset`` drawn as ``kind`` from columns ``x`` and ``y`` (a list of them for "lines");
    refused unless it can be."""
    if kind not in protocol.VIEW_KINDS:
        raise InvalidView(f"the kind of view must be one of {', '.join(protocol.VIEW_KINDS)}", field="kind")
    if (kind == "image") != dataset.is_image:
        raise InvalidView("an image dataset is drawn as an image ('image'), and only an image is", field="kind")
    if kind == "image":
        if reduce not in protocol.IMAGE_REDUCTIONS:
            raise InvalidView(f"'reduce' must be one of {', '.join(protocol.IMAGE_REDUCTIONS)}", field="reduce")
        return Backing(dataset, kind, x, y, reduce=reduce)
    if kind == "lines":
        from datasets import series_views

        return series_views.backing_of(dataset, x, y, field=field)
    if not isinstance(y, str):
        raise InvalidView("a line or points view draws one column, named by a string", field=field)
    if x != dataset.x_column or y == x or y not in dataset.column_names:
        raise InvalidView(f"a view draws the dataset's x column ({dataset.x_column!r}) against another of its "
                          f"columns ({', '.join(c for c in dataset.column_names if c != dataset.x_column)})", field=field)
    if kind == "line" and not dataset.x_sorted:
        raise InvalidView("a line view needs a dataset whose x is sorted", field=field)
    return Backing(dataset, kind, x, y)


def extent(backing: Backing) -> tuple[float, float, float, float]:
    """The dataset's extent on the plot's axes: x0, x1, y0, y1 (synchronous; reads summaries)."""
    dataset = backing.dataset
    if dataset.is_image:
        return tuple(dataset.extent)
    if backing.kind == "lines":
        from datasets import series_views

        return series_views.extent(backing)
    if dataset.length == 0 or dataset.x_min is None:
        return 0.0, 1.0, 0.0, 1.0
    levels = storage.summary_levels(dataset, backing.y)
    if levels:
        top = levels[-1]
        low, high = top["min"][np.isfinite(top["min"])], top["max"][np.isfinite(top["max"])]
    else:
        values = np.asarray(storage.open_columns(dataset)[backing.y], dtype=np.float64)
        low = high = values[np.isfinite(values)]
    y0, y1 = (float(low.min()), float(high.max())) if len(low) else (0.0, 1.0)
    x_scale, y_scale = _ms_per_unit(dataset, backing.x) or 1.0, _ms_per_unit(dataset, backing.y) or 1.0
    x0, x1 = dataset.x_min * x_scale, dataset.x_max * x_scale
    y0, y1 = y0 * y_scale, y1 * y_scale
    return x0, (x1 if x1 > x0 else x0 + 1.0), y0, (y1 if y1 > y0 else y0 + 1.0)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _ms_per_unit(dataset: Dataset, column: str) -> float | None:
    unit = dataset.columns[dataset.column_index(column)].get("unit")
    return _MS_PER_UNIT[unit] if unit else None


def compute(backing: Backing, request: protocol.View) -> tuple[protocol.ViewData, list[Buffer]]:
    """The view ``request`` asks for, as a message and its buffers (synchronous and CPU-bound)."""
    if backing.kind == "image":
        return image_view(backing, request)
    if backing.kind == "lines":
        from datasets import series_views

        return series_views.compute(backing, request)
    dataset = backing.dataset
    columns = storage.open_columns(dataset)
    x, y = columns[backing.x], columns[backing.y]
    x_scale, y_scale = _ms_per_unit(dataset, backing.x), _ms_per_unit(dataset, backing.y)
    x0, x1 = (request.x0, request.x1) if x_scale is None else (request.x0 / x_scale, request.x1 / x_scale)
    buffers: list[Buffer] = []

    def axis(values: np.ndarray, scale: float | None) -> dict[str, Any]:
        values = np.asarray(values, dtype=np.float64)
        return wire.ndarray(values if scale is None else values * scale, buffers)

    if backing.kind == "line":
        view = aggregation.line_view(x, y, storage.summary_levels(dataset, backing.y), x0, x1, request.width)
        data = {backing.x: axis(view.x, x_scale), backing.y: axis(view.y, y_scale)}
        message = protocol.ViewData(request.id, request.source, "raw" if view.raw else "line", data, view.rows,
                                    request.x0, request.x1, request.y0, request.y1)
        return message, buffers
    y0, y1 = (request.y0, request.y1) if y_scale is None else (request.y0 / y_scale, request.y1 / y_scale)
    view = aggregation.points_view(x, y, x0, x1, y0, y1, request.width, request.height,
                                   x_sorted=dataset.x_sorted, threads=_pieces)
    if view.image is None:
        data = {backing.x: axis(view.x, x_scale), backing.y: axis(view.y, y_scale)}
        return protocol.ViewData(request.id, request.source, "raw", data, view.rows,
                                 request.x0, request.x1, request.y0, request.y1), buffers
    data = {"image": wire.ndarray(view.image.astype(np.uint32, copy=False), buffers)}
    return protocol.ViewData(request.id, request.source, "image", data, view.rows,
                             request.x0, request.x1, request.y0, request.y1), buffers


def first_new_x(backing: Backing, old_length: int) -> float | None:
    """Where rows appended after ``old_length`` start on the x axis (None: anywhere, x unsorted)."""
    if not backing.dataset.x_sorted or old_length >= backing.dataset.length:
        return None
    value = float(storage.open_columns(backing.dataset)[backing.x][old_length])
    scale = _ms_per_unit(backing.dataset, backing.x)
    return value if scale is None else value * scale


def first_view(dataset: Dataset, *, kind: str, width: int, height: int, x: str | None = None, y: Any = None,
               x0: float | None = None, x1: float | None = None, y0: float | None = None,
               y1: float | None = None, reduce: str = "mean") -> tuple[protocol.ViewData, list[Buffer]]:
    """A view of ``dataset`` by itself (no document): over its whole extent unless a range is given."""
    if dataset.is_image:
        found = backing_of(dataset, kind, "x", "y", field="kind", reduce=reduce)
    else:
        x = x or dataset.x_column
        if kind == "lines" and y is None:
            from datasets import series_views

            y = series_views.default_columns(dataset)
        y = y or next((c for c in dataset.column_names if c != dataset.x_column), "")
        found = backing_of(dataset, kind, x, y, field="y")
    full = extent(found)
    request = protocol.View(0, str(dataset.pk), *(given if given is not None else default for given, default in
                                                   zip((x0, x1), full[:2])), width, height,
                            *(given if given is not None else default for given, default in zip((y0, y1), full[2:])))
    check(request, kind)
    return compute(found, request)


# --- images --------------------------------------------------------------------------------------


def image_view(backing: Backing, request: protocol.View) -> tuple[protocol.ViewData, list[Buffer]]:
    """The window of an image ``request`` asks for (``rasters.view``), as a ``raster`` view."""
    dataset = backing.dataset
    image = storage.open_columns(dataset)[dataset.column_names[0]]
    view = rasters.view(image, storage.image_levels(dataset), tuple(dataset.extent), request.x0, request.x1,
                        request.y0, request.y1, request.width, request.height, backing.reduce)
    buffers: list[Buffer] = []
    pixels, fixed = rasters.for_the_page(view.image, image.dtype)
    data = {"image": wire.ndarray(pixels, buffers)}
    return protocol.ViewData(request.id, request.source, "raster", data, view.pixels, view.x0, view.x1, view.y0,
                             view.y1, fixed), buffers


def first_new_y(backing: Backing, old_length: int) -> float:
    """Where rows appended to an image after ``old_length`` start on the y axis (they go on top)."""
    x0, x1, y0, y1 = backing.dataset.extent
    return y0 + (y1 - y0) / backing.dataset.length * old_length
