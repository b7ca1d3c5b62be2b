"""Live documents: applying changes through Bokeh, the event log, snapshots and history.

Each process keeps the current Bokeh document of recently changed documents in memory, so
a change is validated by applying it to a live ``bokeh.document.Document`` instead of
rebuilding the document from the database. The database stays the truth: a change is accepted
by one transaction that bumps ``Document.version`` from the version the live document is at
(``UPDATE ... WHERE version = V``) and appends the event. A process whose live document is
behind (another process wrote in between) finds that UPDATE matching nothing, catches up from
the log and tries again, so writers on any number of processes apply changes in one order.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from bokeh.core.serialization import Buffer, DeserializationError, Serialized
from bokeh.document import Document as BokehDocument
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bokehsite.client import wire
from bokehsite.errors import ApiError
from documents import bokeh_io
from documents.exceptions import HistoryTruncated, InvalidPatch, VersionConflict
from documents.models import Document, Event, EventKind, Snapshot

# The kinds of PATCH-DOC event a stored document accepts: changes to the document's state, and
# MessageSent, which carries a browser's UI events (ButtonClick, Tap, ...) to client sessions.
PATCH_EVENT_KINDS = frozenset({
    "ModelChanged", "ColumnDataChanged", "ColumnsStreamed", "ColumnsPatched", "TitleChanged", "RootAdded",
    "RootRemoved", "MessageSent",
})


# A log smaller than this replays in moments; folding it sooner would cost more than it saves.
FOLD_MIN_LOG_BYTES = 1024 * 1024


@dataclass
class Change:
    """An accepted change, as it is broadcast to viewers."""

    document_id: uuid.UUID
    version: int
    kind: str
    patch: dict[str, Any] | None = None
    buffers: list[Buffer] = field(default_factory=list)
    origin: str = ""
    key: str = ""


class LiveDocument:
    """A Bokeh document at ``version``, with what folding needs to know."""

    def __init__(self, document_id: uuid.UUID):
        self.document_id = document_id
        self.lock = threading.RLock()
        self.doc: BokehDocument | None = None
        self.version = 0
        self.snapshot_version = 0
        self.snapshot_size = 0
        self.log_size = 0  # bytes of events since the snapshot
        self._bundle: tuple[int, bytes] | None = None

    def load(self) -> None:
        """Rebuild from the newest snapshot and the events after it."""
        snapshot = Snapshot.objects.filter(document_id=self.document_id).order_by("-version").first()
        if snapshot is None:
            raise Document.DoesNotExist(f"document {self.document_id} has no content")
        self.doc = bokeh_io.load(snapshot.doc, snapshot.buffer_list())
        self.version = self.snapshot_version = snapshot.version
        self.snapshot_size = snapshot.size
        self.log_size = 0
        self._bundle = (snapshot.version, snapshot.to_bundle())
        self.catch_up()

    def catch_up(self) -> None:
        """Apply the events that other writers appended since ``version``."""
        for event in Event.objects.filter(document_id=self.document_id, version__gt=self.version).order_by("version"):
            if event.version != self.version + 1 or event.kind == EventKind.REPLACE:
                return self.load()  # history pruned under us, or replaced: start again from a snapshot
            _apply(self.doc, event.patch, event.buffer_list())
            self.version = event.version
            self.log_size += event.size

    def bundle(self) -> bytes:
        """The document at ``version`` as a bundle (cached until the next change)."""
        if self._bundle is None or self._bundle[0] != self.version:
            doc_json, buffers = bokeh_io.dump(self.doc)
            self._bundle = (self.version, wire.pack({"doc": doc_json}, buffers))
        return self._bundle[1]


class _Cache:
    """The live documents of this process, least recently used dropped first."""

    def __init__(self) -> None:
        self._documents: OrderedDict[uuid.UUID, LiveDocument] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, document_id: uuid.UUID) -> LiveDocument:
        with self._lock:
            live = self._documents.get(document_id)
            if live is None:
                live = self._documents[document_id] = LiveDocument(document_id)
            self._documents.move_to_end(document_id)
            while len(self._documents) > settings.BOKEHSITE_LIVE_DOCUMENTS:
                self._documents.popitem(last=False)
            return live

    def discard(self, document_id: uuid.UUID) -> None:
        with self._lock:
            self._documents.pop(document_id, None)


live_documents = _Cache()


def _live(document_id: uuid.UUID) -> LiveDocument:
    """The live document, caught up with the log. Call with nothing locked."""
    live = live_documents.get(document_id)
    with live.lock:
        if live.doc is None:
            live.load()
    return live


def _apply(doc: BokehDocument, patch: Any, buffers: list[Buffer]) -> None:
    doc.apply_json_patch(Serialized(patch, list(buffers)))


def _check_shape(patch: Any) -> list[dict[str, Any]]:
    if not isinstance(patch, dict) or not isinstance(patch.get("events"), list) or not patch["events"]:
        raise InvalidPatch("must be a PATCH-DOC object: {\"events\": [event, ...]} with at least one event", field="patch")
    for event in patch["events"]:
        kind = event.get("kind") if isinstance(event, dict) else None
        if kind not in PATCH_EVENT_KINDS:
            raise InvalidPatch(f"unsupported event kind {kind!r}; expected one of {', '.join(sorted(PATCH_EVENT_KINDS))}", field="patch")
    return patch["events"]


@dataclass
class PatchRequest:
    """A change asked for: Bokeh's PATCH-DOC content, whose arrays refer to ``buffers``.

    ``origin`` is the connection it came from, so that it is not echoed back there. ``key`` is
    the client's own name for it: a change whose key is already in the log is not applied again
    (a client resending after a dropped connection), and its version is returned. With
    ``base_version``, it applies only to that version (an optimistic write).
    """

    patch: Any
    buffers: list[Buffer] = field(default_factory=list)
    author: Any = None
    origin: str = ""
    key: str = ""
    base_version: int | None = None


def apply_patch(document_id: uuid.UUID, request: PatchRequest) -> Change:
    """Accept one change; see ``apply_patches``.

    Raises:
        InvalidPatch: Bokeh cannot apply it; nothing is stored.
        VersionConflict: ``base_version`` is not the current version.
    """
    (outcome,) = apply_patches(document_id, [request])
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def apply_patches(document_id: uuid.UUID, requests: list[PatchRequest]) -> list[Change | ApiError]:
    """Accept changes in order, in one transaction: apply each through Bokeh and log it.

    Each change is accepted or refused on its own: the outcome list holds, for each request, its
    ``Change`` or the ``ApiError`` (``InvalidPatch``, ``VersionConflict``) that refused it, and a
    refused change leaves nothing behind. Storing several changes in one transaction pays for
    one commit (one fsync) instead of one each.
    """
    live = _live(document_id)
    with live.lock:
        if any(r.base_version is not None for r in requests):
            live.catch_up()  # judge an optimistic write by what is stored, not by a stale copy
        keys = [r.key for r in requests if r.key]
        while True:
            # Read again after losing a race: the other process may have stored a resent change.
            logged = _logged_keys(document_id, keys)
            start = live.version
            try:
                outcomes, events = _apply_in_memory(live, requests, logged)
                with transaction.atomic():
                    claimed = Document.objects.filter(pk=document_id, version=start).update(
                        version=live.version, updated=timezone.now()
                    ) if events else 1
                    if claimed:
                        Event.objects.bulk_create(events)
            except BaseException:
                live.doc = None  # ahead of the database, or partly changed: rebuild on next use
                raise
            if claimed:
                break
            if not Document.objects.filter(pk=document_id).exists():
                raise Document.DoesNotExist(f"document {document_id} is gone")
            live.load()  # another process wrote first: start again from what it stored
        live.log_size += sum(e.size for e in events)
    return outcomes


def _logged_keys(document_id: uuid.UUID, keys: list[str]) -> dict[str, int]:
    """The versions of the changes with these keys that the log holds."""
    if not keys:
        return {}
    return dict(Event.objects.filter(document_id=document_id, key__in=keys).values_list("key", "version"))


def _apply_in_memory(live: LiveDocument, requests: list[PatchRequest], logged: dict[str, int]):
    """Apply what applies to the live document; the outcomes, and the events to insert."""
    outcomes: list[Change | ApiError] = []
    events: list[Event] = []
    for request in requests:
        if request.key in logged:
            version = logged[request.key]
            outcomes.append(Change(live.document_id, version, EventKind.PATCH, origin=request.origin, key=request.key))
            continue
        try:
            _check_shape(request.patch)
            if request.base_version is not None and request.base_version != live.version:
                raise VersionConflict(request.base_version, live.version)
            version = live.version + 1
            patch, buffers = wire.rename_buffers(request.patch, request.buffers, f"{version}.")
            try:
                _apply(live.doc, patch, buffers)
            except (DeserializationError, KeyError, TypeError, ValueError, AttributeError) as e:
                _restore(live, events)  # it may have been applied in part
                raise InvalidPatch(f"Bokeh cannot apply it: {bokeh_io.describe(e)}", field="patch") from None
        except ApiError as refusal:
            outcomes.append(refusal)
            continue
        size = len(json.dumps(patch, separators=(",", ":"))) + sum(len(b.data) for b in buffers)
        event = Event(document_id=live.document_id, version=version, kind=EventKind.PATCH, patch=patch, size=size,
                      origin=request.origin, key=request.key, author=request.author)
        event.set_buffers(buffers)
        events.append(event)
        live.version = version
        if request.key:
            logged[request.key] = version
        outcomes.append(Change(live.document_id, version, EventKind.PATCH, patch, buffers, request.origin, request.key))
    return outcomes, events


def _restore(live: LiveDocument, accepted: list[Event]) -> None:
    """Rebuild the live document from the database, then re-apply the changes accepted so far."""
    live.load()
    for event in accepted:
        _apply(live.doc, event.patch, event.buffer_list())
        live.version = event.version


def replace(document: Document, doc_json: dict[str, Any], buffers: list[Buffer], *, author: Any = None, origin: str = "") -> Change:
    """Replace the whole content (already validated and canonical) as a new version."""
    live = live_documents.get(document.id)
    with live.lock:
        with transaction.atomic():
            current = Document.objects.select_for_update().get(pk=document.id)
            version = current.version + 1
            Document.objects.filter(pk=document.id).update(version=version, updated=timezone.now())
            snapshot = Snapshot(document_id=document.id, version=version)
            snapshot.set_content(doc_json, buffers)
            snapshot.save()
            Event.objects.create(document_id=document.id, version=version, kind=EventKind.REPLACE, origin=origin, author=author)
            change = Change(document.id, version, EventKind.REPLACE, origin=origin)
        live.doc = None  # rebuilt from the new snapshot on next use
        prune(document.id, version)
    return change


def _should_fold(live: LiveDocument) -> bool:
    return (
        live.version - live.snapshot_version >= settings.BOKEHSITE_SNAPSHOT_EVERY
        or live.log_size > max(live.snapshot_size, FOLD_MIN_LOG_BYTES)
    )


def fold_if_due(document_id: uuid.UUID) -> None:
    """Fold the log into a snapshot if it has grown enough since the last one.

    Called after a change is stored and broadcast, so that viewers do not wait for it.
    """
    live = live_documents.get(document_id)
    with live.lock:
        if live.doc is not None and _should_fold(live):
            fold(live)


def fold(live: LiveDocument) -> None:
    """Write the live document as a snapshot, then drop history past the retention window."""
    doc_json, buffers = bokeh_io.dump(live.doc)
    snapshot = Snapshot(document_id=live.document_id, version=live.version)
    snapshot.set_content(doc_json, buffers)
    snapshot.save()
    live.snapshot_version, live.snapshot_size, live.log_size = live.version, snapshot.size, 0
    prune(live.document_id, live.version)


def prune(document_id: uuid.UUID, version: int) -> None:
    """Keep the versions in ``[version - BOKEHSITE_HISTORY, version]`` rebuildable, drop the rest."""
    oldest_kept = version - settings.BOKEHSITE_HISTORY
    base = Snapshot.objects.filter(document_id=document_id, version__lte=max(oldest_kept, 0)).order_by("-version").first()
    if base is None:
        return
    Snapshot.objects.filter(document_id=document_id, version__lt=base.version).delete()
    Event.objects.filter(document_id=document_id, version__lte=base.version).delete()


# --- reading ---------------------------------------------------------------------------------


def current_bundle(document_id: uuid.UUID) -> tuple[int, bytes]:
    """The current version of a document and the document as a bundle."""
    # Most reads come when no change has been logged since the newest snapshot: serve its stored
    # bytes as they are, without building a Bokeh document.
    version = Document.objects.values_list("version", flat=True).get(pk=document_id)
    snapshot = Snapshot.objects.filter(document_id=document_id, version=version).first()
    if snapshot is not None:
        return version, snapshot.to_bundle()
    live = _live(document_id)
    with live.lock:
        live.catch_up()
        return live.version, live.bundle()


def bundle_at(document_id: uuid.UUID, version: int) -> bytes:
    """The document as it was at ``version``.

    Raises:
        HistoryTruncated: the log no longer holds that version.
    """
    snapshot = Snapshot.objects.filter(document_id=document_id, version__lte=version).order_by("-version").first()
    if snapshot is None:
        raise HistoryTruncated(version)
    events = list(Event.objects.filter(document_id=document_id, version__gt=snapshot.version, version__lte=version))
    if [e.version for e in events] != list(range(snapshot.version + 1, version + 1)):
        raise HistoryTruncated(version)
    if not events:
        return snapshot.to_bundle()
    doc = bokeh_io.load(snapshot.doc, snapshot.buffer_list())
    for event in events:
        _apply(doc, event.patch, event.buffer_list())
    doc_json, buffers = bokeh_io.dump(doc)
    return wire.pack({"doc": doc_json}, buffers)


def log_after(document_id: uuid.UUID, version: int, limit: int) -> list[Event]:
    """Up to ``limit`` events after ``version``, in order.

    Raises:
        HistoryTruncated: the log no longer holds the event after ``version``.
    """
    events = list(Event.objects.filter(document_id=document_id, version__gt=version).order_by("version")[:limit])
    current = Document.objects.values_list("version", flat=True).get(pk=document_id)
    if version < current and (not events or events[0].version != version + 1):
        raise HistoryTruncated(version + 1)
    return events
