"""Views of sources of kind "lines" (many of a dataset's columns against its x): which columns a
source may draw, their extent, and the ``view_data`` message of a view (``datasets.series``
computes it). ``datasets.viewing`` hands sources of this kind here."""

from __future__ import annotations

from typing import Any

import numpy as np
from bokeh.core.serialization import Buffer

from bokehsite import protocol, wire
from datasets import series, storage
from datasets.models import Dataset
from datasets.viewing import Backing, InvalidView, _ms_per_unit, _pieces


def default_columns(dataset: Dataset) -> list[str]:
    """Every column but x that holds numbers (not datetimes), in order."""
    return [c["name"] for c in dataset.columns if c["name"] != dataset.x_column and not c.get("unit")]


def backing_of(dataset: Dataset, x: str, y: Any, *, field: str) -> Backing:
    """``dataset``'s columns ``y`` (a list of names) drawn against ``x``; refused unless they can be."""
    if not isinstance(y, list) or not 0 < len(y) <= protocol.MAX_SERIES or not all(isinstance(n, str) for n in y):
        raise InvalidView(f"a lines view draws a list of 1 to {protocol.MAX_SERIES} column names", field=field)
    if x != dataset.x_column:
        raise InvalidView(f"a lines view draws columns against the dataset's x column ({dataset.x_column!r})", field=field)
    drawable = set(default_columns(dataset))
    unknown = [name for name in y if name not in drawable]
    if unknown:
        shown = ", ".join(repr(n[:protocol.MAX_NAME_LENGTH]) for n in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise InvalidView(f"the dataset has no column of numbers other than x called {shown}", field=field)
    if not dataset.x_sorted:
        raise InvalidView("a lines view needs a dataset whose x is sorted", field=field)
    return Backing(dataset, "lines", x, y[0], ys=tuple(y))


def extent(backing: Backing) -> tuple[float, float, float, float]:
    """x0, x1, y0, y1 over every series (synchronous; reads the summaries' top levels)."""
    dataset = backing.dataset
    if dataset.length == 0 or dataset.x_min is None:
        return 0.0, 1.0, 0.0, 1.0
    columns = storage.open_columns(dataset)
    low, high = np.inf, -np.inf
    for name in backing.ys:
        levels = storage.summary_levels(dataset, name)
        if levels:
            top = levels[-1]
            mins, maxs = np.asarray(top["min"], np.float64), np.asarray(top["max"], np.float64)
        else:
            mins = maxs = np.asarray(columns[name], np.float64)
        mins, maxs = mins[np.isfinite(mins)], maxs[np.isfinite(maxs)]
        if len(mins):
            low, high = min(low, float(mins.min())), max(high, float(maxs.max()))
    y0, y1 = (low, high) if low <= high else (0.0, 1.0)
    x_scale = _ms_per_unit(dataset, backing.x) or 1.0
    x0, x1 = dataset.x_min * x_scale, dataset.x_max * x_scale
    return x0, (x1 if x1 > x0 else x0 + 1.0), y0, (y1 if y1 > y0 else y0 + 1.0)


def compute(backing: Backing, request: protocol.View) -> tuple[protocol.ViewData, list[Buffer]]:
    """The view ``request`` asks for (synchronous and CPU-bound): ``lines`` or a density ``image``."""
    dataset = backing.dataset
    columns = storage.open_columns(dataset)
    x_scale = _ms_per_unit(dataset, backing.x)
    x0, x1 = (request.x0, request.x1) if x_scale is None else (request.x0 / x_scale, request.x1 / x_scale)
    ys = [columns[name] for name in backing.ys]
    levels = [storage.summary_levels(dataset, name) for name in backing.ys]
    view = series.view(columns[backing.x], ys, levels, x0, x1, request.y0, request.y1, request.width, request.height,
                       threads=_pieces)
    buffers: list[Buffer] = []
    if view.image is not None:
        data: dict[str, Any] = {"image": wire.ndarray(view.image, buffers)}
        kind = "image"
    else:
        encoded: dict[int, dict[str, Any]] = {}  # an x shared by every series travels once
        data = {"xs": [encoded.get(id(xs)) or encoded.setdefault(id(xs), wire.ndarray(
                           xs if x_scale is None else xs * x_scale, buffers)) for xs in view.xs],
                "ys": [wire.ndarray(ys, buffers) for ys in view.ys], "series": list(backing.ys)}
        kind = "lines"
    return protocol.ViewData(request.id, request.source, kind, data, view.rows,
                             request.x0, request.x1, request.y0, request.y1), buffers
