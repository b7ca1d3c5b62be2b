"""The document websocket protocol: every message, its fields, the path, the window, close codes.

The server (``streaming.consumers``, ``streaming.broadcast``, ``streaming.flow``), the Python
client (``bokehsite.client``) and the benchmarks build and parse messages with this module only; the
page's JavaScript mirrors it in ``static/bokehsite/protocol.js``, and a test checks that both
agree. Like ``bokehsite.wire`` it needs neither Django nor a network library.

A text frame carries one message as a JSON object; a binary frame carries a bundle
(``bokehsite.wire``) whose header is the message and whose buffers are the arrays its patches
refer to. Every message has a ``type``. Each message class below is one ``type``: build it with
its constructor, send it with ``encode()``, and read what arrives with ``decode()``, which
checks every field and raises ``ProtocolError`` naming the first that is wrong.

Messages a server sends to one connection only (``hello``, ``ack``, ``error``, ``pong``, and
answers to per-viewer requests) are built the same way as those broadcast to every viewer of a
document (``patches``, ``snapshot``); ``SENDERS`` says who may send each.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from bokeh.core.serialization import Buffer

from bokehsite import wire

# Where a document's websocket is, under the server's root URL.
PATH = "ws/documents/{document_id}/"
# The header an app host's connections carry the host key in (``appserver.hosts``).
APP_HOST_HEADER = "X-Bokehsite-App-Host"
# Where a document's own page (``Document.page``, an app's template) takes the frame's parts.
PAGE_HEAD_MARK = "<!--bokehsite:head-->"
PAGE_BODY_MARK = "<!--bokehsite:body-->"
# How many versions a server sends past what a client has confirmed (``applied``), unless the
# server's ``hello`` says otherwise.
DEFAULT_WINDOW = 64
# Longest ``id`` or ``key`` a client may give a request.
MAX_NAME_LENGTH = 100
# The largest message a server accepts unless its ``hello`` says otherwise: Daphne's default.
DEFAULT_MAX_MESSAGE = 1024 * 1024

SERVER, CLIENT = "server", "client"
SENDERS = (SERVER, CLIENT)


class Close(enum.IntEnum):
    """Close codes: 4000 plus the HTTP status the refusal would have had."""

    UNAUTHORIZED = 4401  # the API token or frame token does not check out
    NOT_FOUND = 4404  # no such document, or not one this connection may see
    TOO_MANY_CONNECTIONS = 4429  # past a connection limit (per account, address or process)
    UNAVAILABLE = 4503  # the server cannot serve it now (its database is down): reconnect later


# After these a client does not reconnect: the same credentials would be refused again.
FINAL_CLOSES = frozenset({Close.UNAUTHORIZED, Close.NOT_FOUND, Close.TOO_MANY_CONNECTIONS})
# The error code of a change the server could not store for now (its database is down); nothing
# is wrong with the change, and it may be sent again as it is.
UNAVAILABLE = "unavailable"
# The error code of a connection refused past a connection limit; its ``limit`` member says which
# ("per_user", "per_address" or "per_process") and ``maximum`` how many connections that allows.
TOO_MANY_CONNECTIONS = "too_many_connections"


def path(document_id: object) -> str:
    """The websocket's path, from the server's root: ``/ws/documents/<id>/``."""
    return "/" + PATH.format(document_id=document_id)


def url(root_url: str, document_id: object) -> str:
    """The websocket URL of a document on the server at ``root_url`` (``http://host/...``)."""
    scheme, rest = root_url.split("://", 1)
    base = rest if rest.endswith("/") else rest + "/"
    return f"{'wss' if scheme == 'https' else 'ws'}://{base}{PATH.format(document_id=document_id)}"


class ProtocolError(ValueError):
    """A message that is not one: ``code`` is the machine code, ``detail`` the sentence, ``field``
    the member at fault (or None)."""

    def __init__(self, detail: str, *, code: str = "bad_message", field: str | None = None, id: Any = None):
        super().__init__(detail)
        self.code, self.detail, self.field = code, detail, field
        self.id = id  # the refused request's id, when it had a readable one


# --- the kinds of value a field holds ---------------------------------------------------------


def _integer(value: Any, least: int) -> bool:
    return type(value) is int and value >= least


# What no stored text may hold (PostgreSQL refuses both): NUL, and halves of UTF-16 surrogate pairs.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _name(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= MAX_NAME_LENGTH and not _UNSTORABLE.search(value)


def _item(value: Any) -> bool:
    if not (isinstance(value, dict) and _integer(value.get("version"), 1)):
        return False
    if value.get("own") is True:
        return True
    return isinstance(value.get("patch"), dict) and _name(value.get("key", ""))


@dataclass(frozen=True)
class Kind:
    """What a field may hold: a check, and how the README and error messages describe it."""

    name: str
    check: Callable[[Any], bool]
    describe: str


KINDS = {kind.name: kind for kind in (
    Kind("version", lambda v: _integer(v, 0), "a version number (an integer of 0 or more)"),
    Kind("version|null", lambda v: v is None or _integer(v, 0), "a version number or null"),
    Kind("count", lambda v: _integer(v, 1), "a whole number of 1 or more"),
    Kind("role", lambda v: v in ("read", "write"), '"read" or "write"'),
    Kind("id", lambda v: v is None or _integer(v, 0) or _name(v),
         f"a request id: an integer of 0 or more, or a string of at most {MAX_NAME_LENGTH} characters"),
    Kind("name", _name, f"a string of at most {MAX_NAME_LENGTH} characters"),
    Kind("name|null", lambda v: v is None or _name(v), f"null or a string of at most {MAX_NAME_LENGTH} characters"),
    Kind("text", lambda v: isinstance(v, str), "a string"),
    Kind("number", lambda v: type(v) in (int, float) and math.isfinite(v), "a finite number"),
    Kind("object", lambda v: isinstance(v, dict), "a JSON object"),
    Kind("items", lambda v: isinstance(v, list) and all(map(_item, v)),
         'a list of {"version", "patch", "key"?} or {"version", "own": true} items'),
)}


def member(kind: str, placeholder: str, *, optional: bool = False, json_name: str | None = None, default: Any = None) -> Any:
    """A message field: its kind (``KINDS``), how the README shows its value, whether a message may
    leave it out, and its JSON name when that is not a Python name (``from``)."""
    assert kind in KINDS, kind
    metadata = {"kind": kind, "placeholder": placeholder, "optional": optional, "json": json_name}
    if optional:
        return dataclasses.field(default=default, metadata=metadata)
    return dataclasses.field(metadata=metadata)


# --- messages ----------------------------------------------------------------------------------

MESSAGES: dict[str, type[Message]] = {}


class Message:
    """Base of every message. Subclasses are frozen dataclasses named by ``type=`` and ``sender=``."""

    TYPE: ClassVar[str]
    SENDER: ClassVar[str]
    # Always sent as a bundle, even without buffers (what carries document content).
    BINARY: ClassVar[bool] = False

    def __init_subclass__(cls, *, type: str, sender: str, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        assert sender in SENDERS and type not in MESSAGES
        cls.TYPE, cls.SENDER = type, sender
        MESSAGES[type] = cls

    @classmethod
    def fields(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if "kind" in f.metadata]

    def to_json(self) -> dict[str, Any]:
        """The message as its JSON object, ``type`` first; optional fields left unset are left out."""
        data: dict[str, Any] = {"type": self.TYPE}
        for f in self.fields():
            value = getattr(self, f.name)
            if f.metadata["optional"] and value is None:
                continue
            data[f.metadata["json"] or f.name] = value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Message:
        """The message in ``data`` (a JSON object of this type), every field checked."""
        values = {}
        for f in cls.fields():
            name = f.metadata["json"] or f.name
            if name not in data:
                if f.metadata["optional"]:
                    continue
                raise ProtocolError(f"a {cls.TYPE!r} message needs {name!r}", field=name)
            kind = KINDS[f.metadata["kind"]]
            if not kind.check(data[name]):
                raise ProtocolError(f"{name!r} must be {kind.describe}", field=name)
            values[f.name] = data[name]
        return cls(**values)

    def encode(self, buffers: Iterable[Buffer] = ()) -> str | bytes:
        """A text frame, or a binary frame (a bundle) when the message has buffers."""
        buffers = list(buffers)
        if buffers or self.BINARY:
            return wire.pack(self.to_json(), buffers)
        return json.dumps(self.to_json(), separators=(",", ":"))


@dataclass(frozen=True)
class Hello(Message, type="hello", sender=SERVER):
    """Sent on connect. `max_message` is the largest message, in bytes, the server accepts (`BOKEHSITE_MAX_BODY_BYTES`); a client splits its changes to fit."""

    version: int = member("version", "V")
    role: str = member("role", '"write" or "read"')
    window: int = member("count", "W")
    max_message: int | None = member("count", "M", optional=True)

    @property
    def message_limit(self) -> int:
        """The largest message, in bytes, this server accepts (a server that does not say accepts
        Daphne's default)."""
        return self.max_message or DEFAULT_MAX_MESSAGE


@dataclass(frozen=True)
class Sync(Message, type="sync", sender=CLIENT):
    """"I have version V" (or `null`: nothing). The server sends what is missing, then every new change."""

    version: int | None = member("version|null", "V")


@dataclass(frozen=True)
class Patches(Message, type="patches", sender=SERVER):
    """Takes the client from A to B. An item is `{"version", "patch"}`, or `{"version", "own": true}` for a change that came from this connection (never echoed); an item of a change sent with a `key` carries it."""

    BINARY = True

    start: int = member("version", "A", json_name="from")
    version: int = member("version", "B")
    items: list[dict[str, Any]] = member("items", "[...]")

    @staticmethod
    def frame(start: int, version: int, changes: Iterable[tuple[dict[str, Any], Iterable[Buffer]]]) -> bytes:
        """Versions ``start + 1`` to ``version`` as a binary frame, from each change's item and buffers."""
        return changes_frame(Patches(start, version, []).to_json(), changes)


@dataclass(frozen=True)
class Snapshot(Message, type="snapshot", sender=SERVER):
    """The whole document, when the history no longer holds what the client misses, after a replace, or for `sync` with `null`."""

    BINARY = True

    version: int = member("version", "V")
    doc: dict[str, Any] = member("object", "...")

    @staticmethod
    def frame(version: int, bundle: bytes | memoryview) -> bytes:
        """The snapshot of a stored document bundle, as a binary frame, without parsing its doc."""
        return wire.update_payload(bundle, type=Snapshot.TYPE, version=version)


@dataclass(frozen=True)
class Applied(Message, type="applied", sender=CLIENT):
    """What the client has applied, at least every W/2 versions (flow control)."""

    version: int = member("version", "V")


@dataclass(frozen=True)
class Patch(Message, type="patch", sender=CLIENT):
    """A change (needs the write role). A change whose `key` the log already has is not applied again; the answer is its version."""

    id: int | str | None = member("id", "N")
    patch: dict[str, Any] = member("object", "{...}")
    key: str | None = member("name", "K", optional=True)
    base_version: int | None = member("version|null", "V", optional=True)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Message:
        if not isinstance(data.get("patch"), dict):  # answered as the REST API answers it
            raise ProtocolError('must be a PATCH-DOC object: {"events": [event, ...]}', code="invalid_patch", field="patch")
        return super().from_json(data)


@dataclass(frozen=True)
class Ack(Message, type="ack", sender=SERVER):
    """The change was stored as version V. A client may send more changes before the first is acknowledged; they are stored in the order sent, and each is answered by its `id`."""

    id: int | str | None = member("id", "N")
    version: int = member("version", "V")


@dataclass(frozen=True)
class Error(Message, type="error", sender=SERVER):
    """The message was refused; nothing was stored, and the connection stays open unless it is refused as a whole (then it closes with 4401, 4404, 4429 past a connection limit: `too_many_connections`, with the `limit` and its `maximum`, or 4503 while the server's database is down). A change refused with `unavailable` may be sent again."""

    code: str = member("name", "CODE")
    detail: str = member("text", "SENTENCE")
    field: str | None = member("name|null", "NAME")
    id: int | str | None = member("id", "N", optional=True)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_envelope(cls, envelope: Mapping[str, Any], id: int | str | None = None) -> Error:
        """The error message for an HTTP error body (``{"error", "detail", "field", ...}``)."""
        rest = {k: v for k, v in envelope.items() if k not in ("error", "detail", "field", "fields")}
        return cls(envelope["error"], envelope["detail"], envelope.get("field"), id, rest)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "id": self.id, **self.extra}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Message:
        message = super().from_json(data)
        known = {"type", *(f.name for f in cls.fields())}
        return dataclasses.replace(message, extra={k: v for k, v in data.items() if k not in known})


@dataclass(frozen=True)
class Role(Message, type="role", sender=SERVER):
    """What the connection may do changed while it was open (access was changed): from now on it may only read, or also write. A connection that loses all access gets an `error` instead and is closed with 4401 or 4404."""

    role: str = member("role", '"write" or "read"')


@dataclass(frozen=True)
class Ping(Message, type="ping", sender=CLIENT):
    """Liveness: the server answers `pong` with the same `id`."""

    id: int | str | None = member("id", "N", optional=True)


@dataclass(frozen=True)
class Pong(Message, type="pong", sender=SERVER):
    """The answer to `ping`."""

    id: int | str | None = member("id", "N", optional=True)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, "id": self.id}


@dataclass(frozen=True)
class View(Message, type="view", sender=CLIENT):
    """Asks for a view of a source backed by a dataset (`source` is its model id) over the plot's visible range, at its size in pixels; any connection may ask, readers too. The server answers this connection alone with `view_data` of the same `id`. A request for a source replaces any earlier one for it not yet answered, which is then dropped."""

    id: int | str | None = member("id", "N")
    source: str = member("name", "ID")
    x0: float = member("number", "X0")
    x1: float = member("number", "X1")
    width: int = member("count", "W")
    height: int = member("count", "H")
    y0: float | None = member("number", "Y0", optional=True)
    y1: float | None = member("number", "Y1", optional=True)


@dataclass(frozen=True)
class ViewData(Message, type="view_data", sender=SERVER):
    """The view asked for by `view` `id` (sent again, with the same `id`, when rows appended to the dataset reach it): `data` holds columns whose arrays are buffers. `kind` is `raw` (the rows themselves), `line` (each pixel column's first, last, lowest and highest point), `lines` (that for each of many series: `data.xs` and `data.ys` hold one array a series, `data.series` their names), `image` (counts of points per pixel, `data.image`, over `x0`..`x1` by `y0`..`y1`; for many series, how many series pass through each pixel) or `raster` (a window of an image dataset, `data.image`, a 2-D array whose row 0 is at the bottom, covering exactly `x0`..`x1` by `y0`..`y1`: the visible range snapped out to whole pixels of the pyramid level it was cut from, at most one array pixel per screen pixel; the stored pixels themselves at 1:1 or closer; empty, with `x0` = `x1`, when the range misses the image); `rows` is how many rows the range holds (of each series; for `raster`, image pixels). With `fixed`, `data.image` holds the means of a 1-byte image as 16-bit steps: each pixel is `low + step * value`. It is this viewer's alone: never stored, never sent to anyone else."""

    BINARY = True

    id: int | str | None = member("id", "N")
    source: str = member("name", "ID")
    kind: str = member("name", '"raw", "line", "lines", "image" or "raster"')
    data: dict[str, Any] = member("object", "{...}")
    rows: int = member("version", "R")
    x0: float | None = member("number", "X0", optional=True)
    x1: float | None = member("number", "X1", optional=True)
    y0: float | None = member("number", "Y0", optional=True)
    y1: float | None = member("number", "Y1", optional=True)
    fixed: dict[str, float] | None = member("object", '{"low": L, "step": S}', optional=True)


# --- sources backed by a dataset ---------------------------------------------------------------

# A ColumnDataSource whose rows are a dataset on the server carries a mark among its Bokeh
# ``tags``: ``{"bokehsite_dataset": ID, "kind": "line" or "points", "x": COLUMN, "y": COLUMN,
# "extent": [X0, X1, Y0, Y1]}`` (the extent of the whole dataset, on the plot's axes). It holds a
# first view only; each viewer asks for its own (``view``). An image (kind ``"image"``) has
# ``"reduce": "mean" or "max"`` too (how its pixels are reduced), and its source's columns are
# ``image``, ``x``, ``y``, ``dw``, ``dh`` (x and y name those). A source of kind "lines" (many
# series against one x) names its columns as a list: ``"y": [COLUMN, ...]``, at most ``MAX_SERIES``.
DATASET_MARK = "bokehsite_dataset"
VIEW_KINDS = ("line", "points", "image", "lines")
IMAGE_REDUCTIONS = ("mean", "max")
MAX_SERIES = 4096


def dataset_mark(dataset_id: object, kind: str, x: str, y: str | list[str], extent: list[float] | None = None, *,
                 reduce: str | None = None) -> dict[str, Any]:
    """The tag that marks a source as backed by dataset ``dataset_id``, drawn as ``kind``."""
    assert kind in VIEW_KINDS, kind
    assert (reduce in IMAGE_REDUCTIONS) if kind == "image" else reduce is None, reduce
    return {DATASET_MARK: str(dataset_id), "kind": kind, "x": x, "y": list(y) if kind == "lines" else y,
            **({"reduce": reduce} if reduce is not None else {}),
            **({"extent": [float(e) for e in extent]} if extent is not None else {})}


def _column(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME_LENGTH


def _columns_of(kind: Any, y: Any) -> bool:
    if kind == "lines":
        return isinstance(y, list) and 0 < len(y) <= MAX_SERIES and all(_column(name) for name in y)
    return isinstance(y, str) and bool(y)


def read_mark(tags: Iterable[Any]) -> dict[str, Any] | None:
    """The dataset mark among a source's tags, if it has a well-formed one."""
    for tag in tags or ():
        if (isinstance(tag, dict) and DATASET_MARK in tag and tag.get("kind") in VIEW_KINDS
                and all(isinstance(tag.get(k), str) and tag.get(k) for k in (DATASET_MARK, "x"))
                and _columns_of(tag.get("kind"), tag.get("y"))
                and (tag.get("reduce") in IMAGE_REDUCTIONS if tag.get("kind") == "image" else "reduce" not in tag)):
            mark = {k: tag[k] for k in (DATASET_MARK, "kind", "x", "y", "reduce") if k in tag}
            extent = tag.get("extent")
            if (isinstance(extent, list) and len(extent) == 4 and all(KINDS["number"].check(e) for e in extent)
                    and extent[0] <= extent[1] and extent[2] <= extent[3]):
                mark["extent"] = extent
            return mark
    return None


# --- items of a patches message -----------------------------------------------------------------


def item(version: int, patch: dict[str, Any], key: str = "") -> dict[str, Any]:
    """One change in ``patches``; ``key`` is the sending client's name for it, if it gave one."""
    return {"version": version, "patch": patch, **({"key": key} if key else {})}


def own_item(version: int) -> dict[str, Any]:
    """A change the receiving connection sent itself: it has it already."""
    return {"version": version, "own": True}


def own_frame(start: int, version: int) -> bytes:
    """Versions ``start + 1`` to ``version``, all the receiving connection's own changes."""
    return Patches.frame(start, version, ((own_item(v), ()) for v in range(start + 1, version + 1)))


def changes_frame(header: Mapping[str, Any], changes: Iterable[tuple[dict[str, Any], Iterable[Buffer]]]) -> bytes:
    """The bundle of several changes: ``header`` with ``items``, one per change, and the changes'
    buffers one after another (each patch refers to its own by id). ``patches`` frames and the
    REST API's list of changes are both built here."""
    items: list[dict[str, Any]] = []
    buffers: list[Buffer] = []
    for change_item, change_buffers in changes:
        items.append(change_item)
        buffers.extend(change_buffers)
    return wire.pack({**header, "items": items}, buffers)


# --- reading -----------------------------------------------------------------------------------


def decode(data: str | bytes, *, sender: str, max_size: int | None = None) -> tuple[Message, list[Buffer]]:
    """The message in a frame from ``sender`` ("server" or "client"), and its buffers.

    Raises:
        ProtocolError: the frame is not a well-formed message that ``sender`` may send, or is
            longer than ``max_size`` bytes (code ``too_large``).
    """
    if max_size is not None and _size(data) > max_size:
        raise ProtocolError(f"the message is larger than the limit of {max_size} bytes", code="too_large")
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            header, buffers = wire.unpack(data)
        except wire.BundleError as e:
            raise ProtocolError(f"malformed bundle: {e}", code="malformed_bundle") from None
    else:
        try:
            header, buffers = wire.loads(data), []
        except wire.JSONError as e:
            raise ProtocolError(f"malformed JSON: {e}", code="malformed_json") from None
    if not isinstance(header, dict):
        raise ProtocolError("a message must be a JSON object", code="malformed_json")
    cls = MESSAGES.get(header.get("type")) if isinstance(header.get("type"), str) else None
    if cls is None or cls.SENDER != sender:
        expected = ", ".join(t for t, c in MESSAGES.items() if c.SENDER == sender)
        raise ProtocolError(f"unknown message type {header.get('type')!r}; expected one of {expected}",
                            code="unknown_message", field="type")
    try:
        return cls.from_json(header), buffers
    except ProtocolError as e:
        e.id = header.get("id") if KINDS["id"].check(header.get("id")) else None
        raise


def _size(data: str | bytes) -> int:
    if isinstance(data, str):
        return len(data.encode("utf-8", "surrogatepass")) if not data.isascii() else len(data)
    return memoryview(data).nbytes


# --- describing the protocol ----------------------------------------------------------------------


def spec() -> dict[str, Any]:
    """The protocol as plain data, to compare with ``protocol.js`` (see the tests)."""
    return {
        "path": PATH,
        "window": DEFAULT_WINDOW,
        "close": {code.name: int(code) for code in Close},
        "kinds": sorted(KINDS),
        "messages": {
            name: {
                "sender": cls.SENDER,
                "binary": cls.BINARY,
                "fields": {f.metadata["json"] or f.name: {"kind": f.metadata["kind"], "optional": f.metadata["optional"]}
                           for f in cls.fields()},
            }
            for name, cls in MESSAGES.items()
        },
    }


def markdown_table() -> str:
    """The README's table of messages, made from the classes above."""
    rows = ["| Direction | Message | Meaning |", "|---|---|---|"]
    for name, cls in MESSAGES.items():
        members = [f'"type": "{name}"']
        for f in cls.fields():
            json_name = f.metadata["json"] or f.name
            members.append(f'"{json_name}": {f.metadata["placeholder"]}{"?" if f.metadata["optional"] else ""}')
        direction = "server →" if cls.SENDER == SERVER else "→ server"
        meaning = " ".join((cls.__doc__ or "").split())
        rows.append(f"| {direction} | `{{{', '.join(members)}}}` | {meaning} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
