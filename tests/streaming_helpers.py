"""Building Bokeh changes, and comparing documents, for the streaming tests."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from bokeh.core.serialization import Buffer, Serializer
from bokeh.document import Document as BokehDocument
from bokeh.document.events import ColumnsStreamedEvent
from bokeh.model import Model

from bokehsite.client import wire


def stream_patch(doc: BokehDocument, source_id: str, x: list[float], y: list[float], rollover=None) -> tuple[dict, list[Buffer]]:
    """A PATCH-DOC that appends to a source, with binary arrays, as a client sends it."""
    source = doc.get_model_by_id(source_id)
    event = ColumnsStreamedEvent(doc, source, "data", {"x": np.asarray(x, float), "y": np.asarray(y, float)}, rollover)
    serializer = Serializer(references=doc.models)
    encoded = serializer.encode(event)
    buffers = serializer.buffers
    return {"events": [wire.binary_event(encoded, buffers)]}, buffers


def plain(patch: dict, buffers: list[Buffer]) -> tuple[dict, list[Buffer]]:
    """The patch as it travels: JSON with {"id": ...} buffer references."""
    header, unpacked = wire.unpack(wire.pack({"patch": patch}, buffers))
    return header["patch"], unpacked


def _normal(value: Any) -> Any:
    if isinstance(value, Model):
        return ("model", value.id)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def state(doc: BokehDocument) -> dict[str, Any]:
    """Everything that makes up a document, comparable across processes and array types."""
    return {
        "title": doc.title,
        "roots": sorted(root.id for root in doc.roots),
        "models": {
            model.id: (type(model).__name__, _normal(model.properties_with_values(include_defaults=True)))
            for model in doc.models
        },
    }
