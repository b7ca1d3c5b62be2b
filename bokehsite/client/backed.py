"""Sources backed by a dataset on the server: ``server_source`` gives a normal Bokeh
``ColumnDataSource`` that holds a first view of the dataset and a mark naming it; every viewer's
page then asks the server for the view of its own visible range, at its own size in pixels.

The stored document never holds the dataset's rows, only that first view; Python sessions and
followers see the source as stored.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from bokeh.core.serialization import Deserializer, Serialized
from bokeh.document import Document
from bokeh.models import ColumnDataSource, DataRange1d, GlyphRenderer, Plot, Range1d

from bokehsite import protocol

# The size a first view is computed for, in pixels: about a plot's; viewers ask for their own.
FIRST_VIEW_WIDTH, FIRST_VIEW_HEIGHT = 1200, 600


def server_source(dataset: Any, kind: str = "line", *, x: str | None = None, y: str | list[str] | None = None,
                  reduce: str | None = None) -> ColumnDataSource:
    """A ``ColumnDataSource`` showing ``dataset`` (a ``Dataset`` from ``Session.upload_dataset``
    or ``Session.dataset``), to draw as usual: ``p.line("x", "y", source=src)``.

    Args:
        kind: ``"line"`` (x sorted; each view keeps every pixel column's exact extremes),
            ``"points"`` (a scatter: a count of points per pixel while there are many, the
            points themselves when few are in view), ``"lines"`` (many columns against one x,
            sorted: draw with ``p.multi_line(xs="xs", ys="ys", source=src)``; each series' exact
            extremes while few points are in view, else an image of how many series pass
            through each pixel; ``"series"`` holds each line's column name) or ``"image"`` (an
            ``Image`` from ``Session.upload_image``: its columns are ``image``, ``x``, ``y``,
            ``dw`` and ``dh``, for ``p.image(image="image", x="x", y="y", dw="dw", dh="dh",
            source=src, color_mapper=...)``).
        x, y: the columns to draw (default: the dataset's x column and the first other one;
            for ``"lines"``, ``y`` is a list, by default every other column of numbers).
        reduce: for an image, how pixels smaller than a screen pixel are shown: ``"mean"``
            (default) or ``"max"`` (a single bright pixel stays visible).
    """
    if kind not in protocol.VIEW_KINDS:
        raise ValueError(f"kind must be one of {', '.join(protocol.VIEW_KINDS)}")
    if kind == "image":
        return _image_source(dataset, reduce or "mean")
    if reduce is not None:
        raise ValueError("'reduce' is for images (kind='image')")
    x = x or dataset.x
    if kind == "lines":
        return _lines_source(dataset, x, y)
    y = y or next((c for c in dataset.columns if c != x), None)
    if y is None or x not in dataset.columns or y not in dataset.columns:
        raise ValueError(f"the dataset has no columns {x!r} and {y!r} to draw (it has {', '.join(dataset.columns)})")
    header, buffers = dataset.session.dataset_view(dataset.id, kind=kind, x=x, y=y,
                                                   width=FIRST_VIEW_WIDTH, height=FIRST_VIEW_HEIGHT)
    extent = [header["x0"], header["x1"], header["y0"], header["y1"]]
    if header["kind"] == "image":  # a scatter too dense to send: the page asks for its own view
        data: dict[str, Any] = {x: [], y: []}
    else:
        data = decode_view(header, buffers)
    return ColumnDataSource(data=data, tags=[protocol.dataset_mark(dataset.id, kind, x, y, extent)])


def _image_source(image: Any, reduce: str) -> ColumnDataSource:
    if reduce not in protocol.IMAGE_REDUCTIONS:
        raise ValueError(f"reduce must be one of {', '.join(protocol.IMAGE_REDUCTIONS)}")
    if getattr(image, "info", {}).get("kind") != "image":
        raise ValueError("kind='image' draws an image (Session.upload_image)")
    header, buffers = image.session.dataset_view(image.id, kind="image", reduce=reduce, width=FIRST_VIEW_WIDTH,
                                                 height=FIRST_VIEW_HEIGHT)
    x0, x1, y0, y1 = header["x0"], header["x1"], header["y0"], header["y1"]
    data = {"image": [decode_view(header, buffers)["image"]], "x": [x0], "y": [y0], "dw": [x1 - x0], "dh": [y1 - y0]}
    return ColumnDataSource(data=data, tags=[protocol.dataset_mark(image.id, "image", "x", "y",
                                                                   list(image.info["extent"]), reduce=reduce)])


def _lines_source(dataset: Any, x: str, y: Any) -> ColumnDataSource:
    if y is None:
        y = [name for name, dtype in dataset.columns.items() if name != x and not dtype.startswith("datetime")]
    if isinstance(y, str) or not y:
        raise ValueError("y must be a list of columns for kind 'lines'")
    y = list(y)
    if len(y) > protocol.MAX_SERIES:
        raise ValueError(f"a lines source draws at most {protocol.MAX_SERIES} columns, not {len(y)}")
    unknown = [name for name in [x, *y] if name not in dataset.columns]
    if unknown:
        raise ValueError(f"the dataset has no columns {', '.join(map(repr, unknown[:5]))} to draw")
    header, buffers = dataset.session.dataset_view(dataset.id, kind="lines", x=x, y=y,
                                                   width=FIRST_VIEW_WIDTH, height=FIRST_VIEW_HEIGHT)
    extent = [header["x0"], header["x1"], header["y0"], header["y1"]]
    if header["kind"] == "image":  # too many points to send: the page asks for its own view
        data: dict[str, Any] = {"xs": [], "ys": [], "series": []}
    else:
        data = decode_view(header, buffers)
    return ColumnDataSource(data=data, tags=[protocol.dataset_mark(dataset.id, "lines", x, y, extent)])


def pin_ranges(doc: Document) -> None:
    """Give every plot that draws a backed source fixed ranges over its dataset's extent, in place
    of ranges that fit themselves to the data: a view would otherwise move the range it was
    computed for."""
    for plot in doc.select({"type": Plot}):
        marks = [mark for renderer in plot.select({"type": GlyphRenderer})
                 if isinstance(renderer.data_source, ColumnDataSource)
                 and (mark := protocol.read_mark(renderer.data_source.tags)) and mark.get("extent")]
        if not marks:
            continue
        extents = [mark["extent"] for mark in marks]
        x0, x1 = min(e[0] for e in extents), max(e[1] for e in extents)
        y0, y1 = min(e[2] for e in extents), max(e[3] for e in extents)
        images = all(mark["kind"] == "image" for mark in marks)  # an image fills its extent exactly
        pad = 0.0 if images else (y1 - y0) * 0.05 or 1.0
        if isinstance(plot.x_range, DataRange1d):
            plot.x_range = Range1d(x0, x1 if x1 > x0 else x0 + 1)
        if isinstance(plot.y_range, DataRange1d):
            plot.y_range = Range1d(y0 - pad, y1 + pad)


def decode_view(header: dict[str, Any], buffers: list) -> dict[str, Any]:
    """The columns of a ``view_data`` message (or a first view) as NumPy arrays; an image's
    fixed-point means (``fixed``) as float32, as the page reads them."""
    data = Deserializer().deserialize(Serialized(header["data"], buffers))
    if fixed := header.get("fixed"):
        # in float64 whatever NumPy's promotion rules, as the page computes it, then float32
        data["image"] = (data["image"].astype(np.float64) * fixed["step"] + fixed["low"]).astype(np.float32)
    return data
