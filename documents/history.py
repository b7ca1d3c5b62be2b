"""A document's history: its snapshots and change log, the live copies that validate changes, and
folding and pruning.

Each process keeps the current Bokeh document of recently changed documents in memory, so
a change is validated by applying it to a live ``bokeh.document.Document`` instead of
rebuilding the document from the database. The database stays the truth: a change is accepted
by one transaction that bumps ``Document.version`` from the version the live document is at
(``UPDATE ... WHERE version = V``) and appends the event. A process whose live document is
behind (another process wrote in between) finds that UPDATE matching nothing, catches up from
the log and tries again, so writers on any number of processes apply changes in one order.

Version V of a document is the newest snapshot at or before V with the events after it applied
(``Snapshot.build``, ``Event.apply_to``). Storing goes through ``documents.services``, which
broadcasts what this module commits.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections import OrderedDict
from typing import Any

from bokeh.core.serialization import Buffer
from bokeh.document import Document as BokehDocument
from bokeh.models import ColumnDataSource
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bokehsite import wire
from bokehsite.errors import ApiError, ServerFault
from documents import bokeh_json
from documents.changes import Change, PatchRequest
from documents.exceptions import DocumentNotFound, HistoryTruncated, InvalidPatch, VersionConflict
from documents.models import Document, Event, EventKind, Snapshot

logger = logging.getLogger(__name__)

# A log smaller than this replays in moments; folding it sooner would cost more than it saves.
FOLD_MIN_LOG_BYTES = 1024 * 1024


def replay_base(document_id: uuid.UUID, version: int | None = None) -> tuple[Snapshot, list[Event]]:
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
        for attempt in range(3):
            try:
                snapshot, events = replay_base(self.document_id)
                break
            except HistoryTruncated:
                if attempt == 2 or not Document.objects.filter(pk=self.document_id).exists():
                    raise DocumentNotFound("no such document") from None
        self.doc = snapshot.build(events)
        self.snapshot_version, self.snapshot_size = snapshot.version, snapshot.size
        self.version = events[-1].version if events else snapshot.version
        self.log_size = sum(e.size for e in events)
        self._bundle = None if events else (snapshot.version, snapshot.to_bundle())

    def catch_up(self) -> None:
        """Apply the events that other writers appended since ``version``."""
        for event in Event.objects.filter(document_id=self.document_id, version__gt=self.version).order_by("version"):
            if event.version != self.version + 1 or event.kind == EventKind.REPLACE:
                return self.load()  # history pruned under us, or replaced: start again from a snapshot
            event.apply_to(self.doc)
            self.version = event.version
            self.log_size += event.size

    def bundle(self) -> bytes:
        """The document at ``version`` as a bundle (cached until the next change)."""
        if self._bundle is None or self._bundle[0] != self.version:
            doc_json, buffers = bokeh_json.dump(self.doc)
            self._bundle = (self.version, wire.pack({"doc": doc_json}, buffers))
        return self._bundle[1]

    def should_fold(self) -> bool:
        return (
            self.version - self.snapshot_version >= settings.BOKEHSITE_SNAPSHOT_EVERY
            or self.log_size > max(self.snapshot_size, FOLD_MIN_LOG_BYTES)
        )


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


# --- storing -----------------------------------------------------------------------------------


def store(document_id: uuid.UUID, requests: list[PatchRequest]) -> list[Change | ApiError]:
    """Accept changes in order, in one transaction: apply each through Bokeh and log it.

    Each change is accepted or refused on its own: the outcome list holds, for each request, its
    ``Change`` or the ``ApiError`` (``InvalidPatch``, ``VersionConflict``) that refused it, and a
    refused change leaves nothing behind. Storing several changes in one transaction pays for
    one commit (one fsync) instead of one each.

    Raises:
        DocumentNotFound: the document is gone.
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
                live_documents.discard(document_id)
                raise DocumentNotFound("no such document: it was deleted")
            live.load()  # another process wrote first: start again from what it stored
        live.log_size += sum(e.size for e in events)
    return outcomes


def _logged_keys(document_id: uuid.UUID, keys: list[str]) -> dict[str, int]:
    """The versions of the changes with these keys that the log holds."""
    if not keys:
        return {}
    return dict(Event.objects.filter(document_id=document_id, key__in=keys).values_list("key", "version"))


def _apply_in_memory(live: LiveDocument, requests: list[PatchRequest], logged: dict[str, int]):
    """Apply what applies to the live document; the outcomes, and the events to insert.

    A change that fails fails alone, whatever it holds: the others are still applied and stored.
    """
    outcomes: list[Change | ApiError] = []
    events: list[Event] = []
    for request in requests:
        if request.key in logged:
            outcomes.append(Change(live.document_id, logged[request.key], EventKind.PATCH,
                                   origin=request.origin, key=request.key, resent=True))
            continue
        try:
            patch, buffers = request.validated()
            if request.base_version is not None and request.base_version != live.version:
                raise VersionConflict(request.base_version, live.version)
            version = live.version + 1
            patch, buffers = wire.rename_buffers(patch, buffers, f"{version}.")
            event = Event(document_id=live.document_id, version=version, kind=EventKind.PATCH, patch=patch,
                          origin=request.origin, key=request.key, author=request.author)
            event.set_buffers(buffers)
            _apply(live, event, events)
        except ApiError as refusal:
            outcomes.append(refusal)
            continue
        except Exception:  # our fault, not the change's: still, it fails alone
            logger.exception("storing a change failed")
            _restore(live, events)  # sure to hold only what was accepted
            outcomes.append(ServerFault())
            continue
        event.size = len(json.dumps(patch, separators=(",", ":"))) + sum(len(b.data) for b in buffers)
        events.append(event)
        live.version = version
        if request.key:
            logged[request.key] = version
        outcomes.append(Change(live.document_id, version, EventKind.PATCH, patch, buffers, request.origin, request.key))
    return outcomes, events


def _apply(live: LiveDocument, event: Event, accepted: list[Event]) -> None:
    """Apply a checked change through Bokeh, or leave the live document as it was and refuse it."""
    try:
        event.apply_to(live.doc)
        if bokeh_json.links_models(event.patch):
            bokeh_json.storable(live.doc, InvalidPatch, "patch")
    except Exception as e:  # Bokeh refusing what a user sent, whichever way it does
        _restore(live, accepted)  # it may have been applied in part
        if isinstance(e, ApiError):
            raise
        raise InvalidPatch(f"Bokeh cannot apply it: {bokeh_json.describe(e)}", field="patch") from None


def _restore(live: LiveDocument, accepted: list[Event]) -> None:
    """Rebuild the live document from the database, then re-apply the changes accepted so far."""
    live.load()
    for event in accepted:
        event.apply_to(live.doc)
        live.version = event.version


def replace(document: Document, doc_json: dict[str, Any], buffers: list[Buffer], *, author: Any = None, origin: str = "",
            restored_from: int | None = None) -> Change:
    """Replace the whole content (already validated and canonical) as a new version; a restore
    names the version it brought back (``restored_from``)."""
    live = live_documents.get(document.id)
    with live.lock:
        with transaction.atomic():
            current = Document.objects.select_for_update().filter(pk=document.id).first()
            if current is None:
                raise DocumentNotFound("no such document: it was deleted")
            version = current.version + 1
            Document.objects.filter(pk=document.id).update(version=version, updated=timezone.now())
            snapshot = Snapshot(document_id=document.id, version=version)
            snapshot.set_content(doc_json, buffers)
            snapshot.save()
            size = len(json.dumps(doc_json, separators=(",", ":"))) + snapshot.size
            Event.objects.create(document_id=document.id, version=version, kind=EventKind.REPLACE, origin=origin, author=author,
                                 restored_from=restored_from, size=size)
            change = Change(document.id, version, EventKind.REPLACE, origin=origin)
        live.doc = None  # rebuilt from the new snapshot on next use
        prune(document.id, version)
    return change


def fold_due(document_id: uuid.UUID) -> bool:
    live = live_documents.get(document_id)
    return live.doc is not None and live.should_fold()


def fold_if_due(document_id: uuid.UUID) -> None:
    """Fold the log into a snapshot if it has grown enough since the last one."""
    live = live_documents.get(document_id)
    with live.lock:
        if live.doc is not None and live.should_fold():
            fold(live)


def fold(live: LiveDocument) -> None:
    """Write the live document as a snapshot, then drop history past the retention window."""
    doc_json, buffers = bokeh_json.dump(live.doc)
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
    # The base version's own event stays: the history still says who made it, when and how.
    Event.objects.filter(document_id=document_id, version__lt=base.version).delete()


# --- reading ---------------------------------------------------------------------------------


def current_version(document_id: uuid.UUID) -> int:
    """Raises DocumentNotFound when the document is gone (deleted while someone followed it)."""
    version = Document.objects.filter(pk=document_id).values_list("version", flat=True).first()
    if version is None:
        raise DocumentNotFound("no such document: it was deleted")
    return version


def current_bundle(document_id: uuid.UUID) -> tuple[int, bytes]:
    """The current version of a document and the document as a bundle."""
    # Most reads come when no change has been logged since the newest snapshot: serve its stored
    # bytes as they are, without building a Bokeh document.
    version = current_version(document_id)
    snapshot = Snapshot.objects.filter(document_id=document_id, version=version).first()
    if snapshot is not None:
        return version, snapshot.to_bundle()
    live = _live(document_id)
    with live.lock:
        live.catch_up()
        return live.version, live.bundle()


def source_tags(document_id: uuid.UUID, source_id: str) -> list | None:
    """The Bokeh ``tags`` of model ``source_id`` in the current document, or None when it has no
    such ColumnDataSource."""
    live = _live(document_id)
    with live.lock:
        live.catch_up()
        model = live.doc.get_model_by_id(source_id) if isinstance(source_id, str) else None
        return list(model.tags) if isinstance(model, ColumnDataSource) else None


def bundle_at(document_id: uuid.UUID, version: int) -> bytes:
    """The document as it was at ``version``.

    Raises:
        HistoryTruncated: the log no longer holds that version.
    """
    _, doc_json, buffers = json_at(document_id, version)
    return wire.pack({"doc": doc_json}, buffers)


def json_at(document_id: uuid.UUID, version: int | None = None) -> tuple[int, dict, list[Buffer]]:
    """The document at ``version`` (default: the current one), that version, and the document as
    Bokeh's JSON and its buffers, without packing them into a bundle: what reads it whole (an
    export, which only reads the buffers) then holds one copy of its arrays.

    Raises:
        HistoryTruncated: the log no longer holds that version.
    """
    if version is None:
        version = current_version(document_id)
        snapshot = Snapshot.objects.filter(document_id=document_id, version=version).first()
        if snapshot is None:
            live = _live(document_id)
            with live.lock:
                live.catch_up()
                version, bundle = live.version, live.bundle()  # kept by the live document anyway
            header, buffers = wire.unpack(bundle, views=True)
            return version, header["doc"], buffers
        return version, snapshot.doc, _views_of(snapshot)
    snapshot, events = replay_base(document_id, version)
    if not events:
        return version, snapshot.doc, _views_of(snapshot)
    return version, *snapshot.build_json(events)


def _views_of(snapshot: Snapshot) -> list[Buffer]:
    """The snapshot's buffers as views of the bytes the database gave: nothing copied."""
    return wire.unpack(snapshot.buffers, views=True)[1] if snapshot.buffers else []


def log_after(document_id: uuid.UUID, version: int, limit: int) -> list[Event]:
    """Up to ``limit`` events after ``version``, in order.

    Raises:
        HistoryTruncated: the log no longer holds the event after ``version``.
    """
    events = list(Event.objects.filter(document_id=document_id, version__gt=version).order_by("version")[:limit])
    current = current_version(document_id)
    if version < current and (not events or events[0].version != version + 1):
        raise HistoryTruncated(version + 1)
    return events


def oldest_version(document_id: uuid.UUID) -> int:
    """The oldest version the history can still rebuild (its oldest snapshot); 0 if none."""
    return Snapshot.objects.filter(document_id=document_id).order_by("version").values_list("version", flat=True).first() or 0


def versions(document_id: uuid.UUID, *, before: int | None, limit: int) -> list[Event]:
    """Up to ``limit`` logged versions that are still rebuildable, newest first, below ``before``."""
    events = Event.objects.filter(document_id=document_id, version__gte=oldest_version(document_id))
    if before is not None:
        events = events.filter(version__lt=before)
    return list(events.select_related("author").defer("patch", "buffers").order_by("-version")[:limit])
