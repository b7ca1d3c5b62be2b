"""Loading and dumping Bokeh documents: the one place that validates what users send.

A document is valid when Bokeh's own deserializer can build it. What is stored is what Bokeh
serializes back from that, so every stored document is canonical Bokeh JSON with binary arrays.
"""

from __future__ import annotations

import json
from typing import Any

# Every Bokeh model class registers itself when its module is imported; bokeh.plotting brings in
# the rest (Figure, GMap, DocumentConfig, ...), so that any document a script can make loads here.
import bokeh.models  # noqa: F401
import bokeh.plotting  # noqa: F401
from bokeh.core.json_encoder import serialize_json
from bokeh.core.serialization import Buffer, DeserializationError, Serialized
from bokeh.document import Document as BokehDocument
from bokeh.model import Model

from bokehsite import wire
from documents.exceptions import InvalidDocument, UnknownModelType

_REQUIRED_KEYS = ("roots",)


def load(doc_json: Any, buffers: list[Buffer], *, field: str = "doc") -> BokehDocument:
    """Build a Bokeh document from its JSON and buffers, or raise ``InvalidDocument``."""
    if not isinstance(doc_json, dict):
        raise InvalidDocument("must be a Bokeh document JSON object", field=field)
    missing = [key for key in _REQUIRED_KEYS if key not in doc_json]
    if missing:
        raise InvalidDocument(f"is not a Bokeh document: missing {', '.join(map(repr, missing))}", field=field)
    if not isinstance(doc_json["roots"], list):
        raise InvalidDocument("is not a Bokeh document: 'roots' must be a list", field=field)
    for obj in wire.model_objects(doc_json):
        name = obj.get("name")
        if name not in Model.model_class_reverse_map:
            raise UnknownModelType(f"unknown Bokeh model type {name!r}", field=field)
    # from_json writes into the dict it is given; keep the caller's intact.
    doc_json = {**doc_json, "title": doc_json.get("title", ""), "version": doc_json.get("version", "")}
    try:
        return BokehDocument.from_json(Serialized(doc_json, list(buffers)))
    except (DeserializationError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise InvalidDocument(f"Bokeh cannot load it: {describe(e)}", field=field) from None


def dump(document: BokehDocument) -> tuple[dict[str, Any], list[Buffer]]:
    """Bokeh's JSON for ``document`` and the buffers it refers to; numeric columns are binary."""
    serialized = wire.document_json(document)
    # Bokeh leaves Buffer objects in the content; store plain JSON with {"id": ...} references.
    return json.loads(serialize_json(serialized.content)), serialized.buffers


def canonical(doc_json: Any, buffers: list[Buffer]) -> tuple[dict[str, Any], list[Buffer]]:
    """Validate a document and return its canonical form, ready to store."""
    return dump(load(doc_json, buffers))


def describe(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"missing key {error.args[0]!r}"
    return str(error) or type(error).__name__
