"""Loading and dumping Bokeh documents: the one place that validates what users send.

A document is valid when Bokeh's own deserializer can build it. What is stored is what Bokeh
serializes back from that, so every stored document is canonical Bokeh JSON with binary arrays.

Before Bokeh reads anything a user sent (a document, or a change to one), ``prepare`` checks it
in one pass that never recurses: how deeply it nests, that its values are plain JSON that any
database stores, that its models have known types, and that each array's dtype and shape fit its
bytes. It decodes inline base64 arrays itself, under the size limit, so Bokeh never gunzips
what a user sent.
"""

from __future__ import annotations

import base64
import json
import math
import re
import uuid
import zlib
from collections.abc import Iterable
from typing import Any

# Every Bokeh model class registers itself when its module is imported; bokeh.plotting brings in
# the rest (Figure, GMap, DocumentConfig, ...), so that any document a script can make loads here.
import bokeh.models  # noqa: F401
import bokeh.plotting  # noqa: F401
from bokeh.core.json_encoder import serialize_json
from bokeh.core.serialization import Buffer, Serialized
from bokeh.document import Document as BokehDocument
from bokeh.model import Model
from bokeh.util.serialization import BINARY_ARRAY_TYPES
from django.conf import settings

from bokehsite import wire
from bokehsite.errors import ApiError, PayloadTooLarge
from documents.exceptions import InvalidDocument, UnknownModelType

_REQUIRED_KEYS = ("roots",)

# The deepest a document or a change may nest arrays and objects. Bokeh reads and writes them
# recursively; real documents stay well below (a grid of tabs holding ten nested layouts: 100).
MAX_NESTING = wire.MAX_NESTING
# Integers a document may hold: anything larger is no number Bokeh or a browser can use, and
# overflows where Bokeh converts it to a float.
MAX_INTEGER = 2**64
# Bytes per item of each dtype Bokeh writes as binary; other arrays are lists ("object").
_BINARY_DTYPES = {dtype.name: dtype.itemsize for dtype in BINARY_ARRAY_TYPES}
_TYPED_ARRAY_DTYPES = {name: size for name, size in _BINARY_DTYPES.items() if name != "bool"}
_MAX_DIMENSIONS = 32  # as NumPy
# Text no database column stores (PostgreSQL refuses both): NUL, and halves of surrogate pairs.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Longest error detail: a refusal quotes what it refuses, which may be huge.
_MAX_DETAIL = 300


def load(doc_json: Any, buffers: list[Buffer], *, field: str = "doc") -> BokehDocument:
    """Build a Bokeh document from its JSON and buffers, or raise ``InvalidDocument``."""
    if not isinstance(doc_json, dict):
        raise InvalidDocument("must be a Bokeh document JSON object", field=field)
    missing = [key for key in _REQUIRED_KEYS if key not in doc_json]
    if missing:
        raise InvalidDocument(f"is not a Bokeh document: missing {', '.join(map(repr, missing))}", field=field)
    if not isinstance(doc_json["roots"], list):
        raise InvalidDocument("is not a Bokeh document: 'roots' must be a list", field=field)
    for key in ("title", "version"):
        if not isinstance(doc_json.get(key, ""), str):
            raise InvalidDocument(f"is not a Bokeh document: {key!r} must be a string", field=field)
    if not isinstance(doc_json.get("callbacks", {}), dict):
        raise InvalidDocument("is not a Bokeh document: 'callbacks' must map event names to lists of callbacks",
                              field=field)
    doc_json, buffers = prepare(doc_json, buffers, field=field)
    doc_json = {**doc_json, "title": doc_json.get("title", ""), "version": doc_json.get("version", "")}
    try:
        return wire.load_document(doc_json, buffers)
    except Exception as e:  # Bokeh refusing what a user sent, whichever way it does
        raise InvalidDocument(f"Bokeh cannot load it: {describe(e)}", field=field) from None


def dump(document: BokehDocument) -> tuple[dict[str, Any], list[Buffer]]:
    """Bokeh's JSON for ``document`` and the buffers it refers to; numeric columns are binary."""
    return _plain(wire.document_json(document))


def _plain(serialized: Serialized[Any]) -> tuple[dict[str, Any], list[Buffer]]:
    # Bokeh leaves Buffer objects in the content; store plain JSON with {"id": ...} references.
    return json.loads(serialize_json(serialized.content)), serialized.buffers


def canonical(doc_json: Any, buffers: list[Buffer], *, field: str = "doc") -> tuple[dict[str, Any], list[Buffer]]:
    """Validate a document and return its canonical form, ready to store."""
    return _plain(storable(load(doc_json, buffers, field=field), InvalidDocument, field))


def storable(document: BokehDocument, invalid: type[ApiError], field: str) -> Serialized[Any]:
    """The document serialized, if what Bokeh writes nests at most ``MAX_NESTING`` levels deep.

    Bokeh writes each model in full where it first meets it, so models linked in a chain nest as
    deep as the chain is long, however shallow each piece was when it came.

    Raises:
        invalid: Bokeh cannot serialize it, or writes it too deep.
    """
    try:
        serialized = wire.document_json(document)
    except RecursionError:
        serialized = None
    except Exception as e:
        raise invalid(f"Bokeh cannot serialize the document: {describe(e)}", field=field) from None
    if serialized is None or wire.nesting_exceeds(serialized.content, MAX_NESTING):
        raise invalid(f"makes the document nest more than {MAX_NESTING} levels deep (models linked in a chain)",
                      field=field)
    return serialized


def links_models(patch: Any) -> bool:
    """Whether a change may link models to one another (adds a root, or sets a value that holds a
    model), which can make the document nest deeper."""
    stack = []
    for event in patch["events"]:
        if event["kind"] == "RootAdded":
            return True
        stack.extend(value for key, value in event.items() if key != "model")
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            kind = node.get("type")
            if kind == "bytes":  # its {"id": ...} names a buffer, not a model
                continue
            if kind in ("object", "ref") or (kind is None and "id" in node):
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def describe(error: Exception) -> str:
    if isinstance(error, KeyError):
        text = f"missing key {error.args[0]!r}"
    else:
        text = str(error) or type(error).__name__
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "..."


# --- what users send, before Bokeh reads it --------------------------------------------------------


def prepare(content: Any, buffers: Iterable[Buffer], *, field: str,
            invalid: type[ApiError] = InvalidDocument) -> tuple[Any, list[Buffer]]:
    """Check a document or a change (``content``, whose arrays may refer to ``buffers``) before
    Bokeh reads it, and decode its inline base64 arrays into buffers.

    Returns a copy of ``content`` in which every inline array refers to a buffer instead, and
    the buffers it refers to.

    Raises:
        invalid (``InvalidDocument`` or ``InvalidPatch``), naming where the problem is;
        UnknownModelType: a document uses a model type this Bokeh does not have;
        PayloadTooLarge: its inline arrays decode to more than ``BOKEHSITE_MAX_BODY_BYTES``.
    """
    return _Reader(field, invalid, buffers).read(content)


class _Reader:
    def __init__(self, field: str, invalid: type[ApiError], buffers: Iterable[Buffer]):
        self.field = field
        self.invalid = invalid
        self.buffers = list(buffers)
        self.sizes = {b.id: memoryview(b.data).nbytes for b in self.buffers}
        self.limit = settings.BOKEHSITE_MAX_BODY_BYTES
        self.decoded = 0  # bytes of inline arrays decoded so far

    def read(self, content: Any) -> tuple[Any, list[Buffer]]:
        top: list[Any] = [None]
        # Each container is copied into its place in its parent's copy, in document order.
        stack: list[tuple[Any, Any, Any, tuple[Any, ...]]] = [(content, top, 0, (self.field,))]
        while stack:
            node, parent, key, path = stack.pop()
            if not _is_container(node):
                parent[key] = self.scalar(node, path)
                continue
            if len(path) > MAX_NESTING:
                self.fail(path, f"nests more than {MAX_NESTING} levels deep")
            if isinstance(node, dict):
                node = self.typed(node, path)
                copy: Any = dict.fromkeys(node)
                for k in node:
                    if not isinstance(k, str):
                        self.fail(path, f"has a key that is not a string ({type(k).__name__})")
                    self.text(k, path)
                items = node.items()
            else:
                copy = [None] * len(node)
                items = enumerate(node)
            parent[key] = copy
            children = []
            for k, value in items:
                if _is_container(value):
                    children.append((value, copy, k, path + (k,)))
                else:
                    copy[k] = self.scalar(value, path + (k,))
            stack.extend(reversed(children))
        return top[0], self.buffers

    def fail(self, path: tuple[Any, ...], problem: str) -> None:
        raise self.invalid(f"{_where(path)} {problem}", field=self.field)

    def text(self, value: str, path: tuple[Any, ...]) -> None:
        if "\x00" in value or (not value.isascii() and _UNSTORABLE.search(value)):
            self.fail(path, "holds text with NUL or an unpaired surrogate, which cannot be stored")

    def scalar(self, value: Any, path: tuple[Any, ...]) -> Any:
        if isinstance(value, str):
            self.text(value, path)
        elif value is None or isinstance(value, bool):
            pass
        elif isinstance(value, int):
            if not -MAX_INTEGER <= value <= MAX_INTEGER:
                self.fail(path, "is an integer beyond ±2**64")
        elif isinstance(value, float):
            if not math.isfinite(value):
                self.fail(path, 'is not a finite number; write NaN and infinities as Bokeh does: '
                                '{"type": "number", "value": "nan"}')
        else:
            self.fail(path, f"is not a JSON value ({type(value).__name__})")
        return value

    # --- Bokeh's typed representations ({"type": ...}) -----------------------------------------

    def typed(self, node: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
        """``node`` checked where Bokeh gives it meaning, with inline bytes decoded."""
        kind = node.get("type")
        if kind is None:
            if "id" in node:  # a reference to a model
                self.string(node, "id", path)
            return node
        if not isinstance(kind, str):
            self.fail(path + ("type",), "must be a string")
        if kind == "bytes":
            return self.bytes(node, path)
        if kind in ("ndarray", "typed_array"):
            return self.array(node, path)
        if kind == "object":
            self.model(node, path)
        elif kind == "ref":
            self.string(node, "id", path)
        return node

    def string(self, node: dict[str, Any], key: str, path: tuple[Any, ...]) -> None:
        if not isinstance(node.get(key), str):
            self.fail(path + (key,), "must be a string")

    def model(self, node: dict[str, Any], path: tuple[Any, ...]) -> None:
        name = node.get("name")
        if not isinstance(name, str):
            self.fail(path + ("name",), "must be a model type name (a string)")
        if name not in Model.model_class_reverse_map:
            unknown = UnknownModelType if self.invalid is InvalidDocument else self.invalid
            raise unknown(f"unknown Bokeh model type {name[:100]!r} at {_where(path)}", field=self.field)
        if "id" in node:
            self.string(node, "id", path)
        if not isinstance(node.get("attributes", {}), dict):
            self.fail(path + ("attributes",), "must be an object")

    def bytes(self, node: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
        """Bytes as a reference to a buffer; inline base64 (of gzip, as Bokeh writes it) becomes one."""
        data = node.get("data")
        where = path + ("data",)
        if isinstance(data, Buffer):  # a serializer's own output, handed over in Python
            if data.id not in self.sizes:
                self.buffers.append(data)
                self.sizes[data.id] = memoryview(data.data).nbytes
            return {**node, "data": {"id": data.id}}
        if isinstance(data, dict):
            if set(data) != {"id"} or not isinstance(data["id"], str):
                self.fail(where, 'must be a buffer reference {"id": ID} or base64 text')
            return node
        if not isinstance(data, str):
            self.fail(where, 'must be a buffer reference {"id": ID} or base64 text')
        buffer = Buffer(f"inline-{uuid.uuid4().hex}", self.gunzip(data, where))
        self.buffers.append(buffer)
        self.sizes[buffer.id] = len(buffer.data)
        return {**node, "data": {"id": buffer.id}}

    def gunzip(self, text: str, path: tuple[Any, ...]) -> bytes:
        room = self.limit - self.decoded
        too_large = PayloadTooLarge(
            f"{_where(path)}: the arrays decode to more than the limit of {self.limit} bytes", field=self.field)
        # gzip never grows data by half: base64 this long cannot decode within the limit.
        if len(text) // 4 * 3 > 2 * room + 1024:
            raise too_large
        try:
            compressed = base64.b64decode(text, validate=True)
        except ValueError:
            self.fail(path, "is not base64 text")
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip only
        try:
            data = inflater.decompress(compressed, room + 1)
        except zlib.error:
            self.fail(path, "is base64 but not of gzip data (Bokeh gzips inline arrays)")
        if len(data) > room:
            raise too_large
        if not inflater.eof or inflater.unused_data:
            self.fail(path, "is not one whole gzip stream")
        self.decoded += len(data)
        return data

    def array(self, node: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
        """An ndarray or typed array whose dtype, order and shape fit its bytes."""
        kind, dtype, array = node["type"], node.get("dtype"), node.get("array")
        binary = _BINARY_DTYPES if kind == "ndarray" else _TYPED_ARRAY_DTYPES
        if node.get("order") not in ("little", "big"):
            self.fail(path + ("order",), 'must be "little" or "big"')
        shape = node.get("shape")
        if kind == "ndarray" and not (isinstance(shape, list) and len(shape) <= _MAX_DIMENSIONS
                                      and all(type(n) is int and 0 <= n <= MAX_INTEGER for n in shape)):
            self.fail(path + ("shape",), f"must be a list of at most {_MAX_DIMENSIONS} sizes (integers of 0 or more)")
        if not isinstance(dtype, str):
            self.fail(path + ("dtype",), "must be a string")
        if isinstance(array, dict) and array.get("type") == "bytes":
            if dtype not in binary:
                self.fail(path + ("dtype",), f"must be one of {', '.join(sorted(binary))} for binary data")
            array = self.bytes(array, path + ("array",))
            size = self.sizes.get(array["data"]["id"])
            if size is not None:  # else Bokeh says which buffer is missing
                items, rest = divmod(size, binary[dtype])
                if rest:
                    self.fail(path, f"has {size} bytes, not a whole number of {dtype} items")
                if kind == "ndarray" and math.prod(shape) != items:
                    self.fail(path + ("shape",), f"is {shape}, but the data holds {items} {dtype} items")
            return {**node, "array": array}
        allowed = {*binary, "object"} if kind == "ndarray" else binary
        if dtype not in allowed:
            self.fail(path + ("dtype",), f"must be one of {', '.join(sorted(allowed))}")
        return node


def _is_container(value: Any) -> bool:
    return isinstance(value, (dict, list, tuple))


def _where(path: tuple[Any, ...]) -> str:
    """``doc.roots[0].attributes`` for ("doc", "roots", 0, "attributes"); a deep one shortened."""
    if len(path) > 16:
        return f"{_where(path[:8])}...{_where(('',) + path[-6:])}"
    text = str(path[0])
    for key in path[1:]:
        if isinstance(key, int):
            text += f"[{key}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            text += f".{key}"
        else:
            text += f"[{key[:50]!r}]"
    return text
