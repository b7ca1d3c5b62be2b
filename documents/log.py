"""The change log's writer: storing changes, replacing a document, folding the log into
snapshots and pruning it; and reading the log back in order.

A change is validated by applying it to this process's live copy of the document
(``replay.live``) instead of rebuilding the document from the database. The database stays the
truth: a change is accepted by one transaction that bumps ``Document.version`` from the version
the live document is at (``UPDATE ... WHERE version = V``) and appends the event. A process
whose live document is behind (another process wrote in between) finds that UPDATE matching
nothing, catches up from the log and tries again, so writers on any number of processes apply
changes in one order. Storing goes through ``documents.services``, which broadcasts what this
module commits.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from bokeh.core.serialization import Buffer
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from bokehsite import wire
from bokehsite.errors import ApiError, ServerFault
from documents import bokeh_json, quota, replay
from documents.changes import Change, PatchRequest
from documents.exceptions import DocumentNotFound, HistoryTruncated, VersionConflict
from documents.models import Document, Event, EventKind, Snapshot
from documents.replay import LiveDocument

logger = logging.getLogger(__name__)

# A log smaller than this replays in moments; folding it sooner would cost more than it saves.
FOLD_MIN_LOG_BYTES = 1024 * 1024


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
    live = replay.live(document_id)
    with live.lock:
        if live.doc is None or live.shared or any(r.base_version is not None for r in requests):
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
                        quota.charge_document(document_id, sum(e.size for e in events))
                        Event.objects.bulk_create(events)
            except BaseException:
                live.doc = None  # ahead of the database, or partly changed: rebuild on next use
                raise
            if claimed:
                break
            if not Document.objects.filter(pk=document_id).exists():
                replay.live_documents.discard(document_id)
                raise DocumentNotFound("no such document: it was deleted")
            live.shared = True
            live.load()  # another process wrote first: start again from what it stored
        live.log_size += sum(e.size for e in events)
    return outcomes


def _logged_keys(document_id: uuid.UUID, keys: list[str]) -> dict[str, int]:
    """The versions of the changes with these keys that the log holds."""
    if not keys:
        return {}
    # On the way of every change: a statement, not a query built each time (building it took
    # ten times as long as running it). Unordered: ordered by version, SQLite would walk every
    # event of the document (up to BOKEHSITE_HISTORY rows, buffers and all) instead of looking
    # the keys up in their index.
    quote = connection.ops.quote_name
    sql = (f"SELECT {quote('key')}, version FROM {Event._meta.db_table} "
           f"WHERE document_id = %s AND {quote('key')} IN ({', '.join(['%s'] * len(keys))})")
    with connection.cursor() as cursor:
        cursor.execute(sql, [Document._meta.pk.get_db_prep_value(document_id, connection), *keys])
        return dict(cursor.fetchall())


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
        event.size = replay.change_size(patch, buffers)
        events.append(event)
        live.version = version
        if request.key:
            logged[request.key] = version
        outcomes.append(Change(live.document_id, version, EventKind.PATCH, patch, buffers, request.origin, request.key))
    return outcomes, events


def _apply(live: LiveDocument, event: Event, accepted: list[Event]) -> None:
    """Apply a change through Bokeh, or leave the live document as it was and refuse it."""
    try:
        replay.apply_checked(live.doc, event)
    except ApiError:
        _restore(live, accepted)  # it may have been applied in part
        raise


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
    live = replay.live_documents.get(document.id)
    with live.lock:
        with transaction.atomic():
            current = Document.objects.select_for_update().filter(pk=document.id).first()
            if current is None:
                raise DocumentNotFound("no such document: it was deleted")
            version = current.version + 1
            Document.objects.filter(pk=document.id).update(version=version, updated=timezone.now())
            snapshot = Snapshot(document_id=document.id, version=version)
            snapshot.set_content(doc_json, buffers)
            quota.charge(current.owner_id, snapshot.stored_size)
            snapshot.save()
            Event.objects.create(document_id=document.id, version=version, kind=EventKind.REPLACE, origin=origin, author=author,
                                 restored_from=restored_from, size=replay.change_size(doc_json, buffers))
            change = Change(document.id, version, EventKind.REPLACE, origin=origin)
        live.doc = None  # rebuilt from the new snapshot on next use
        prune(document.id, version)
    return change


def fold_due(document_id: uuid.UUID) -> bool:
    live = replay.live_documents.get(document_id)
    return live.doc is not None and _should_fold(live)


def fold_if_due(document_id: uuid.UUID) -> None:
    """Fold the log into a snapshot if it has grown enough since the last one."""
    live = replay.live_documents.get(document_id)
    with live.lock:
        if live.doc is not None and _should_fold(live):
            fold(live)


def _should_fold(live: LiveDocument) -> bool:
    return (
        live.version - live.snapshot_version >= settings.BOKEHSITE_SNAPSHOT_EVERY
        or live.log_size > max(live.snapshot_size, FOLD_MIN_LOG_BYTES)
    )


def fold(live: LiveDocument) -> None:
    """Write the live document as a snapshot, then drop history past the retention window."""
    doc_json, buffers = bokeh_json.dump(live.doc)
    snapshot = Snapshot(document_id=live.document_id, version=live.version)
    snapshot.set_content(doc_json, buffers)
    with transaction.atomic():
        quota.charge_document(live.document_id, snapshot.stored_size, check=False)  # folding is never refused
        snapshot.save()
    live.snapshot_version, live.snapshot_size, live.log_size = live.version, snapshot.size, 0
    prune(live.document_id, live.version)


def prune(document_id: uuid.UUID, version: int) -> None:
    """Keep the versions in ``[version - BOKEHSITE_HISTORY, version]`` rebuildable, drop the rest."""
    oldest_kept = version - settings.BOKEHSITE_HISTORY
    base = Snapshot.objects.filter(document_id=document_id, version__lte=max(oldest_kept, 0)).order_by("-version").first()
    if base is None:
        return
    # The base version's own event stays: the history still says who made it, when and how.
    quota.delete_freeing(document_id, Snapshot.objects.filter(document_id=document_id, version__lt=base.version),
                         Event.objects.filter(document_id=document_id, version__lt=base.version))


# --- reading the log ---------------------------------------------------------------------------


def log_after(document_id: uuid.UUID, version: int, limit: int) -> list[Event]:
    """Up to ``limit`` events after ``version``, in order.

    Raises:
        HistoryTruncated: the log no longer holds the event after ``version``.
    """
    events = list(Event.objects.filter(document_id=document_id, version__gt=version).order_by("version")[:limit])
    current = replay.current_version(document_id)
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
