"""A document at any version, and the one step that applies a change through Bokeh.

Version V of a document is the newest snapshot at or before V with the changes after it applied
(``base``, ``build``). ``at`` is the one way to read a version, in whichever form the caller
needs (Bokeh's JSON, a bundle, a Bokeh document). Each process keeps the current version of
recently changed documents in memory (``live``), which the log's writer (``documents.log``)
advances change by change with ``apply_checked``; a read of the current version that is not a
stored snapshot comes from it. Earlier versions are rebuilt from the database, a run of streams
at a time.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import numpy as np
from bokeh.core.serialization import Buffer, Serialized
from bokeh.document import Document as BokehDocument
from bokeh.models import ColumnDataSource
from django.conf import settings

from bokehsite import wire
from bokehsite.errors import ApiError
from documents import bokeh_json
from documents.exceptions import DocumentNotFound, HistoryTruncated, InvalidPatch
from documents.models import Document, Event, EventKind, Snapshot

# --- one change ----------------------------------------------------------------------------------


def change_size(content: Any, buffers: Iterable[Buffer]) -> int:
    """Bytes of a logged change (or a replacing document): its compact JSON and its buffers."""
    return len(json.dumps(content, separators=(",", ":"))) + sum(memoryview(b.data).nbytes for b in buffers)


def apply_checked(doc: BokehDocument, event: Event, *, field: str = "patch") -> None:
    """Apply a change through Bokeh as storing it does, checking that the document stays storable.

    Raises:
        InvalidPatch: Bokeh cannot apply it, or it nests the document too deep (``field`` names
            it); ``doc`` may then hold part of it.
    """
    try:
        event.apply_to(doc)
        if bokeh_json.links_models(event.patch):
            bokeh_json.storable(doc, InvalidPatch, field)
    except ApiError:
        raise
    except Exception as e:  # Bokeh refusing what a user sent, whichever way it does
        raise InvalidPatch(f"Bokeh cannot apply it: {bokeh_json.describe(e)}", field=field) from None


# --- rebuilding a version ------------------------------------------------------------------------


def current_version(document_id: uuid.UUID) -> int:
    """Raises DocumentNotFound when the document is gone (deleted while someone followed it)."""
    version = Document.objects.filter(pk=document_id).values_list("version", flat=True).first()
    if version is None:
        raise DocumentNotFound("no such document: it was deleted")
    return version


def base(document_id: uuid.UUID, version: int | None = None) -> tuple[Snapshot, list[Event]]:
    """The newest snapshot at or before ``version`` (default: the newest), and the changes from it
    up to ``version`` (default: all), in order.

    Raises:
        HistoryTruncated: the history no longer holds ``version`` (or holds it with a gap).
    """
    snapshots = Snapshot.objects.filter(document_id=document_id).order_by("-version")
    events = Event.objects.filter(document_id=document_id).order_by("version")
    if version is not None:
        snapshots, events = snapshots.filter(version__lte=version), events.filter(version__lte=version)
    snapshot = snapshots.first()
    if snapshot is None:
        raise HistoryTruncated(version or 0)
    events = list(events.filter(version__gt=snapshot.version))
    last = events[-1].version if events else snapshot.version
    if ([e.version for e in events] != list(range(snapshot.version + 1, last + 1))
            or any(e.kind == EventKind.REPLACE for e in events) or (version is not None and last != version)):
        raise HistoryTruncated(version or last)  # pruned, or replaced while we read
    return snapshot, events


def build(snapshot: Snapshot, events: Iterable[Event] = ()) -> BokehDocument:
    """The snapshot's version as a new Bokeh document, with ``events`` (the changes after it, in
    order) applied.

    A run of changes that each only stream to the same columns of one source (with the same
    rollover) is applied as one stream of them all, which ends in the same state: a long
    streamed history rebuilds with one of Bokeh's stream calls instead of hundreds.
    """
    doc = bokeh_json.load(snapshot.doc, snapshot.buffer_list())
    run: list[Event] = []
    shape = None
    for event in events:
        event_shape = _stream_shape(event)
        if run and (shape is None or event_shape != shape):
            _apply_run(doc, run, shape)
            run = []
        if not run:
            shape = event_shape
        run.append(event)
    if run:
        _apply_run(doc, run, shape)
    return doc


class Content:
    """A document at one version, in the form it was found in; each form is made when asked for.

    Its buffers may be views of stored bytes: read them while the ``Content`` is in use, and do
    not change them. One ``Content`` serves one read.
    """

    def __init__(self, version: int, *, doc_json: dict[str, Any] | None = None, buffers: list[Buffer] | None = None,
                 bundle: bytes | None = None, document: BokehDocument | None = None):
        self.version = version
        self._json = (doc_json, buffers or []) if doc_json is not None else None
        self._bundle = bundle
        self._document = document

    def json(self) -> tuple[dict[str, Any], list[Buffer]]:
        """Bokeh's document JSON and the buffers it refers to."""
        if self._json is None:
            if self._bundle is not None:
                header, buffers = wire.unpack(self._bundle, views=True)
                self._json = header["doc"], buffers
            else:
                self._json = bokeh_json.dump(self._document)
        return self._json

    def bundle(self) -> bytes:
        """The document as the API and the plot page receive it."""
        if self._bundle is None:
            doc_json, buffers = self.json()
            self._bundle = wire.pack({"doc": doc_json}, buffers)
        return self._bundle

    def document(self) -> BokehDocument:
        """A Bokeh document of its own (its arrays are not views of stored bytes)."""
        if self._document is None:
            doc_json, buffers = self.json()
            self._document = bokeh_json.load(doc_json, [Buffer(b.id, bytes(b.data)) for b in buffers])
        return self._document


def at(document_id: uuid.UUID, version: int | None = None) -> Content:
    """The document at ``version`` (default: the current one).

    Raises:
        DocumentNotFound: the document is gone.
        HistoryTruncated: the history no longer holds ``version``.
    """
    if version is None:
        version = current_version(document_id)
        snapshot = Snapshot.objects.filter(document_id=document_id, version=version).first()
        if snapshot is None:
            # Changes were logged since the newest snapshot: this process's live copy has them.
            current = live(document_id)
            with current.lock:
                current.catch_up()
                return Content(current.version, bundle=current.bundle())
        return Content(version, doc_json=snapshot.doc, buffers=_views_of(snapshot))
    snapshot, events = base(document_id, version)
    if not events:
        return Content(version, doc_json=snapshot.doc, buffers=_views_of(snapshot))
    streamed = _streamed_json(snapshot, events)
    if streamed is not None:
        return Content(version, doc_json=streamed[0], buffers=streamed[1])
    return Content(version, document=build(snapshot, events))


def _views_of(snapshot: Snapshot) -> list[Buffer]:
    """The snapshot's buffers as views of the bytes the database gave: nothing copied."""
    return wire.unpack(snapshot.buffers, views=True)[1] if snapshot.buffers else []


# --- the current version, in memory ----------------------------------------------------------------


class LiveDocument:
    """A Bokeh document at ``version``, kept by this process, with what folding needs to know.

    Hold ``lock`` while using it. The writer (``documents.log``) changes ``doc`` and ``version``
    as it stores changes, and sets ``doc`` to None when it must be rebuilt.
    """

    def __init__(self, document_id: uuid.UUID):
        self.document_id = document_id
        self.lock = threading.RLock()
        self.doc: BokehDocument | None = None
        self.version = 0
        self.snapshot_version = 0
        self.snapshot_size = 0
        self.log_size = 0  # bytes of events since the snapshot
        # Another process writes it too (an app session: its page here, its app worker's sync
        # there): catch up from the log before each write, rather than lose the race and reload.
        self.shared = False
        self._bundle: tuple[int, bytes] | None = None

    def load(self) -> None:
        """Rebuild from the newest snapshot and the events after it."""
        for attempt in range(3):
            try:
                snapshot, events = base(self.document_id)
                break
            except HistoryTruncated:
                if attempt == 2 or not Document.objects.filter(pk=self.document_id).exists():
                    raise DocumentNotFound("no such document") from None
        self.doc = build(snapshot, events)
        self.snapshot_version, self.snapshot_size = snapshot.version, snapshot.size
        self.version = events[-1].version if events else snapshot.version
        self.log_size = sum(e.size for e in events)
        self._bundle = None if events else (snapshot.version, snapshot.to_bundle())

    def catch_up(self) -> None:
        """Apply the events that other writers appended since ``version``."""
        if self.doc is None:
            return self.load()
        for event in Event.objects.filter(document_id=self.document_id, version__gt=self.version).order_by("version"):
            if event.version != self.version + 1 or event.kind == EventKind.REPLACE:
                return self.load()  # history pruned under us, or replaced: start again from a snapshot
            event.apply_to(self.doc)
            self.version = event.version
            self.log_size += event.size
            self.shared = True

    def bundle(self) -> bytes:
        """The document at ``version`` as a bundle (cached until the next change)."""
        if self._bundle is None or self._bundle[0] != self.version:
            doc_json, buffers = bokeh_json.dump(self.doc)
            self._bundle = (self.version, wire.pack({"doc": doc_json}, buffers))
        return self._bundle[1]


class _Cache:
    """The live documents of this process, least recently used dropped first."""

    def __init__(self) -> None:
        self._documents: OrderedDict[uuid.UUID, LiveDocument] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, document_id: uuid.UUID) -> LiveDocument:
        with self._lock:
            document = self._documents.get(document_id)
            if document is None:
                document = self._documents[document_id] = LiveDocument(document_id)
            self._documents.move_to_end(document_id)
            while len(self._documents) > settings.BOKEHSITE_LIVE_DOCUMENTS:
                self._documents.popitem(last=False)
            return document

    def discard(self, document_id: uuid.UUID) -> None:
        with self._lock:
            self._documents.pop(document_id, None)


live_documents = _Cache()


def live(document_id: uuid.UUID) -> LiveDocument:
    """This process's live document, loaded (not caught up: take its lock, then ``catch_up``).
    Call with nothing locked."""
    document = live_documents.get(document_id)
    with document.lock:
        if document.doc is None:
            document.load()
    return document


def source_tags(document_id: uuid.UUID, source_id: str) -> list | None:
    """The Bokeh ``tags`` of model ``source_id`` in the current document, or None when it has no
    such ColumnDataSource."""
    current = live(document_id)
    with current.lock:
        current.catch_up()
        model = current.doc.get_model_by_id(source_id) if isinstance(source_id, str) else None
        return list(model.tags) if isinstance(model, ColumnDataSource) else None


# --- runs of streams -------------------------------------------------------------------------------


def _stream_shape(event: Event) -> tuple | None:
    """(source id, attribute, rollover, columns with their dtypes) if ``event`` is exactly one
    stream of 1-D binary arrays; None for anything else."""
    if event.kind != EventKind.PATCH or not isinstance(event.patch, dict) or len(event.patch.get("events") or ()) != 1:
        return None
    change = event.patch["events"][0]
    if not isinstance(change, dict) or change.get("kind") != "ColumnsStreamed" or not isinstance(change.get("model"), dict):
        return None
    data = change.get("data")
    if not isinstance(data, dict) or data.get("type") != "map":
        return None
    columns = []
    for name, value in data.get("entries") or ():
        if not (isinstance(value, dict) and value.get("type") == "ndarray" and value.get("order") == "little"
                and isinstance(value.get("shape"), list) and len(value["shape"]) == 1
                and isinstance(value.get("array"), dict) and isinstance(value["array"].get("data"), dict)):
            return None
        columns.append((name, value.get("dtype")))
    if len({name for name, _ in columns}) != len(columns):
        return None
    return (change["model"].get("id"), change.get("attr"), change.get("rollover"), tuple(columns))


def _streamed_parts(run: list[Event]) -> dict[str, list[bytes]]:
    """Each column's streamed bytes, change by change, of a run of streams of one shape."""
    parts: dict[str, list[bytes]] = {name: [] for name, _ in run[0].patch["events"][0]["data"]["entries"]}
    for event in run:
        buffers = {b.id: b.data for b in event.buffer_list()}
        for name, value in event.patch["events"][0]["data"]["entries"]:
            parts[name].append(buffers[value["array"]["data"]["id"]])
    return parts


def _apply_run(doc: BokehDocument, run: list[Event], shape: tuple | None) -> None:
    if len(run) == 1 or shape is None:
        for event in run:
            event.apply_to(doc)
        return
    # Streaming a, then b (keeping the last `rollover` rows each time) leaves what streaming a + b does.
    first = run[0].patch["events"][0]
    dtypes = dict(shape[3])
    parts = _streamed_parts(run)
    entries, merged = [], []
    for name, value in first["data"]["entries"]:
        buffer = Buffer(f"run.{name}", b"".join(parts[name]))
        merged.append(buffer)
        rows = len(buffer.data) // np.dtype(dtypes[name]).itemsize
        entries.append([name, {**value, "array": {"type": "bytes", "data": {"id": buffer.id}}, "shape": [rows]}])
    patch = {"events": [{**first, "data": {"type": "map", "entries": entries}}]}
    doc.apply_json_patch(Serialized(patch, merged))


def _streamed_json(snapshot: Snapshot, events: list[Event]) -> tuple[dict, list[Buffer]] | None:
    """The snapshot with ``events`` applied as Bokeh's JSON, when they only stream to binary
    columns of one source: the streamed bytes are appended to the snapshot's own arrays without
    building a Bokeh document. This reaches the state ``build`` reaches (each change was checked
    by Bokeh when it was stored), in a fraction of the time. None for any other changes."""
    shape = _stream_shape(events[0])
    if shape is None or any(_stream_shape(e) != shape for e in events[1:]):
        return None
    source_id, attr, rollover, columns = shape
    doc_json = snapshot.doc  # read for this call alone: ours to change
    source = next((m for m in wire.model_objects(doc_json) if m.get("id") == source_id), None)
    data = (source or {}).get("attributes", {}).get(attr)
    if not isinstance(data, dict) or data.get("type") != "map":
        return None
    stored = {name: value for name, value in data.get("entries") or () if isinstance(name, str)}
    buffers = {b.id: b for b in snapshot.buffer_list()}
    for name, dtype in columns:
        old = stored.get(name)
        if not (isinstance(old, dict) and old.get("type") == "ndarray" and old.get("dtype") == dtype
                and old.get("order") == "little" and isinstance(old.get("shape"), list) and len(old["shape"]) == 1
                and isinstance(old.get("array"), dict) and isinstance(old["array"].get("data"), dict)
                and old["array"]["data"].get("id") in buffers):
            return None
    appended = _streamed_parts(events)
    for name, dtype in columns:
        old = stored[name]
        itemsize = np.dtype(dtype).itemsize
        joined = b"".join([buffers[old["array"]["data"]["id"]].data, *appended[name]])
        rows = len(joined) // itemsize
        if rollover is not None and rows > rollover:  # as Bokeh's _stream keeps the last rows
            joined, rows = joined[(rows - rollover) * itemsize:], rollover
        buffer = Buffer(f"{source_id}.{attr}.{name}.streamed", joined)
        buffers[buffer.id] = buffer
        old["array"] = {"type": "bytes", "data": {"id": buffer.id}}
        old["shape"] = [rows]
    referenced = {node["data"]["id"] for node in _byte_nodes(doc_json)}
    return doc_json, [b for b in buffers.values() if b.id in referenced]


def _byte_nodes(node):
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("type") == "bytes" and isinstance(item.get("data"), dict):
                yield item
            stack.extend(v for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, (dict, list)))
