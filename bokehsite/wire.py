"""The bokehsite bundle: Bokeh's own JSON plus raw binary buffers in one body.

Layout (all integers big-endian)::

    b"BKS1" | u32 header length | header (UTF-8 JSON) | buffer 0 | buffer 1 | ...

The header is an object. Its ``"buffers"`` member lists ``[id, byte_length]`` for each buffer,
in the order their bytes follow the header. Everything else in it is the payload: for a
document, ``"doc"`` is exactly what Bokeh's ``Document.to_json()`` produces, where every array
is ``{"type": "bytes", "data": {"id": ...}}`` pointing at one of the buffers. Nothing is
base64-encoded or compressed, so a million float64 values cost 8 MB on the wire and no
parsing on either side.

This module is shared by the client and the server; it needs only Bokeh and NumPy.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping
from numbers import Real
from typing import Any

import numpy as np
from bokeh.core.json_encoder import serialize_json
from bokeh.core.serialization import Buffer, Deserializer, Serialized
from bokeh.document import Document
from bokeh.model import Model
from bokeh.models import ColumnDataSource
from bokeh.models.callbacks import Callback
from bokeh.util.serialization import make_id

MAGIC = b"BKS1"
CONTENT_TYPE = "application/vnd.bokehsite.bundle"
_HEAD = struct.Struct(">4sI")

# How deeply JSON may nest. A document or a change holds at most MAX_NESTING levels of arrays and
# objects (the server refuses deeper ones where it validates them, ``documents.bokeh_json``); the
# message or body around one adds a few. Reading refuses anything deeper, so that nothing
# recursive (json, Bokeh's serializer and deserializer) ever meets deeper data.
MAX_NESTING = 200
MAX_MESSAGE_NESTING = MAX_NESTING + 10


class BundleError(ValueError):
    """The bytes are not a well-formed bundle."""


class JSONError(ValueError):
    """Text that is not strict JSON, or that nests deeper than ``MAX_MESSAGE_NESTING``."""


def loads(text: str | bytes) -> Any:
    """Strict JSON (no NaN or Infinity), nested at most ``MAX_MESSAGE_NESTING`` levels.

    Raises:
        JSONError: what is wrong, in a sentence.
    """
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except JSONError:
        raise
    except RecursionError:
        raise JSONError(f"nested more than {MAX_MESSAGE_NESTING} levels deep") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, an integer too long to convert
        raise JSONError(str(e)) from None
    if nesting_exceeds(value, MAX_MESSAGE_NESTING):
        raise JSONError(f"nested more than {MAX_MESSAGE_NESTING} levels deep")
    return value


def _refuse_constant(name: str) -> Any:
    raise JSONError(f"{name} is not JSON; Bokeh writes it as {{\"type\": \"number\", \"value\": \"nan\"}} and the like")


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests arrays and objects more than ``limit`` levels deep (without recursing)."""
    stack = [(value, 1)] if isinstance(value, (dict, list, tuple)) else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list, tuple)))
    return False


def pack(payload: Mapping[str, Any], buffers: Iterable[Buffer] = ()) -> bytes:
    """Encode ``payload`` (which may hold Bokeh ``Buffer`` objects) and its buffers."""
    buffers = list(buffers)
    header = dict(payload)
    header["buffers"] = [[b.id, memoryview(b.data).nbytes] for b in buffers]
    # serialize_json writes each Buffer object as a {"id": ...} reference.
    head = serialize_json(header).encode()
    return b"".join([_HEAD.pack(MAGIC, len(head)), head, *(memoryview(b.data).cast("B") for b in buffers)])


def replace_payload(bundle: bytes | memoryview, payload: Mapping[str, Any]) -> bytes:
    """A bundle with ``payload`` in place of the payload of ``bundle``, and the same buffers."""
    view, head_len = _split(bundle)
    old = _parse_header(view, head_len)
    head = serialize_json({**payload, "buffers": old.get("buffers", [])}).encode()
    return b"".join([_HEAD.pack(MAGIC, len(head)), head, view[_HEAD.size + head_len:]])


def update_payload(bundle: bytes | memoryview, **members: Any) -> bytes:
    """A bundle with ``members`` added to the payload of ``bundle``, and the same buffers."""
    view, head_len = _split(bundle)
    header = _parse_header(view, head_len)
    head = serialize_json({**header, **members}).encode()
    return b"".join([_HEAD.pack(MAGIC, len(head)), head, view[_HEAD.size + head_len:]])


def _split(data: bytes | memoryview) -> tuple[memoryview, int]:
    view = memoryview(data).cast("B")
    if len(view) < _HEAD.size:
        raise BundleError("body too short to be a bundle")
    magic, head_len = _HEAD.unpack_from(view)
    if magic != MAGIC:
        raise BundleError(f"bundle must start with {MAGIC!r}")
    if _HEAD.size + head_len > len(view):
        raise BundleError("header length runs past the end of the body")
    return view, head_len


def _parse_header(view: memoryview, head_len: int) -> dict[str, Any]:
    try:
        header = loads(bytes(view[_HEAD.size:_HEAD.size + head_len]))
    except JSONError as e:
        raise BundleError(f"header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise BundleError("header must be a JSON object")
    return header


def unpack(data: bytes | memoryview, *, views: bool = False) -> tuple[dict[str, Any], list[Buffer]]:
    """Decode a bundle into its header and its buffers.

    Buffers come out as ``bytes``: Bokeh's deserializer reinterprets only ``bytes`` as array data.
    With ``views``, as memoryviews of ``data`` instead, copying nothing: for what only reads them.
    """
    view, head_len = _split(data)
    header = _parse_header(view, head_len)
    start = _HEAD.size + head_len
    index = header.pop("buffers", [])
    if not isinstance(index, list):
        raise BundleError("'buffers' must be a list of [id, byte_length] pairs")
    buffers = []
    offset = start
    for item in index:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], int) and item[1] >= 0):
            raise BundleError("'buffers' must be a list of [id, byte_length] pairs")
        buffer_id, length = item
        if offset + length > len(view):
            raise BundleError(f"buffer {buffer_id!r} runs past the end of the body")
        piece = view[offset:offset + length]
        buffers.append(Buffer(buffer_id, piece if views else bytes(piece)))
        offset += length
    if offset != len(view):
        raise BundleError(f"{len(view) - offset} bytes follow the last buffer")
    return header, buffers


def document_json(doc: Document) -> Serialized[Any]:
    """Serialize ``doc`` with every numeric column as a binary buffer."""
    serialized = doc.to_json(deferred=True)
    binary_columns(serialized)
    return serialized


def load_document(doc_json: dict[str, Any], buffers: Iterable[Buffer] = ()) -> Document:
    """Bokeh's ``Document.from_json``, keeping what it drops: the document's own JavaScript
    callbacks (``doc.js_on_event(DocumentReady, CustomJS(...))``), which ``to_json`` writes as
    ``"callbacks"`` and BokehJS runs."""
    buffers = list(buffers)
    # from_json writes into the dict it is given; keep the caller's intact.
    doc = Document.from_json(Serialized({**doc_json}, buffers))
    callbacks = doc_json.get("callbacks")
    if callbacks:
        decoded = Deserializer(list(doc.models)).deserialize(Serialized(callbacks, buffers))
        if not isinstance(decoded, dict):
            raise ValueError("'callbacks' must map event names to lists of callbacks")
        for event, event_callbacks in decoded.items():
            if not (isinstance(event, str) and isinstance(event_callbacks, list)
                    and all(isinstance(callback, Callback) for callback in event_callbacks)):
                raise ValueError("'callbacks' must map event names to lists of callbacks (CustomJS)")
            doc.js_on_event(event, *event_callbacks)
    return doc


def binary_columns(serialized: Serialized[Any]) -> None:
    """Turn plain numeric lists in ColumnDataSource data into ndarray buffers, in place.

    Bokeh writes a column given as a Python list as a JSON list; a column of a million numbers
    would then travel as text. Only flat lists of real numbers change; the user's own objects
    are never touched.
    """
    for obj in model_objects(serialized.content):
        if _is_column_source(obj.get("name")):
            _binary_map(obj.get("attributes", {}).get("data"), serialized.buffers)


def binary_event(event: dict[str, Any], buffers: list[Buffer]) -> dict[str, Any]:
    """The same for one serialized change event: streamed, replaced or assigned columns."""
    if event.get("kind") in ("ColumnsStreamed", "ColumnDataChanged"):
        _binary_map(event.get("data"), buffers)
    elif event.get("kind") == "ModelChanged" and event.get("attr") == "data":
        _binary_map(event.get("new"), buffers)
    return event


def _binary_map(data: Any, buffers: list[Buffer]) -> None:
    if isinstance(data, dict) and data.get("type") == "map":
        data["entries"] = [(key, _binary_column(value, buffers)) for key, value in data.get("entries", [])]


def _binary_column(value: Any, buffers: list[Buffer]) -> Any:
    array = _numeric_array(value)
    return value if array is None else ndarray(array, buffers)


def ndarray(array: np.ndarray, buffers: list[Buffer]) -> dict[str, Any]:
    """Bokeh's encoding of a NumPy array whose bytes travel as a buffer (appended to ``buffers``)."""
    array = np.ascontiguousarray(array)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    buffer = Buffer(make_id(), array.data if array.size else b"")
    buffers.append(buffer)
    return {
        "type": "ndarray",
        "array": {"type": "bytes", "data": buffer},
        "shape": list(array.shape),
        "dtype": array.dtype.name,
        "order": "little",
    }


def rename_buffers(content: Any, buffers: list[Buffer], prefix: str) -> tuple[Any, list[Buffer]]:
    """``content`` and ``buffers`` with every buffer id prefixed, so several can share a bundle."""
    names = {b.id: f"{prefix}{b.id}" for b in buffers}

    def rename(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("type") == "bytes" and isinstance(node.get("data"), dict) and node["data"].get("id") in names:
                return {**node, "data": {"id": names[node["data"]["id"]]}}
            return {k: rename(v) if isinstance(v, (dict, list)) else v for k, v in node.items()}
        return [rename(v) if isinstance(v, (dict, list)) else v for v in node]

    return rename(content), [Buffer(names[b.id], b.data) for b in buffers]


def model_objects(node: Any) -> Iterable[dict[str, Any]]:
    """Every ``{"type": "object", ...}`` model representation inside ``node``."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("type") == "object":
                yield item
            stack.extend(v for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, (dict, list)))


def _is_column_source(name: Any) -> bool:
    cls = Model.model_class_reverse_map.get(name) if isinstance(name, str) else None
    return cls is not None and issubclass(cls, ColumnDataSource)


_SPECIAL_NUMBERS = {"nan": float("nan"), "-inf": float("-inf"), "+inf": float("inf")}
_INT32 = np.iinfo(np.int32)


def _numeric_array(value: Any) -> np.ndarray | None:
    if not isinstance(value, list) or not value:
        return None
    numbers = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (Real, dict)):
            return None
        if isinstance(item, dict):  # Bokeh's {"type": "number", "value": "nan"} form
            if item.get("type") != "number" or item.get("value") not in _SPECIAL_NUMBERS:
                return None
            item = _SPECIAL_NUMBERS[item["value"]]
        numbers.append(item)
    if all(isinstance(n, int) for n in numbers) and _INT32.min <= min(numbers) and max(numbers) <= _INT32.max:
        return np.asarray(numbers, dtype="<i4")
    return np.asarray(numbers, dtype="<f8")
