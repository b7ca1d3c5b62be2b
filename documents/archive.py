"""A whole account's documents as one zip: what it holds, and writing it.

The zip holds ``manifest.json`` (what it is, who exported it and when, and each document's
metadata) and, for each document, ``documents/<id>/document.json``: Bokeh's document JSON at
its current version (``documents.exports``). With the history it also holds the document's log
as bundles (``bokehsite.wire``): ``documents/<id>/snapshots/<V>.bundle`` (the whole document at
V, and when it was written) and ``documents/<id>/events/<V>.bundle`` (the change from V - 1 to V,
with its kind, author, time and size). Large datasets are not part of it.

Reading one back (``read_account``) checks everything before anything is stored: the paths, the
sizes it unpacks to, the manifest, and every document through Bokeh as an upload is checked.
When the zip carries history, each document's history is replayed through Bokeh too (every
change applied to the newest snapshot before it, as a rebuild would), and the import stores it
as it was: the same versions, kinds, times and sizes. The exporting account's changes become the
importing user's; anyone else's keep no author. Without history, an import stores each
document's current version as a new document.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import IO, Any

from bokeh.core.serialization import Buffer
from django.conf import settings
from django.utils import timezone

from bokehsite import wire
from bokehsite.errors import PayloadTooLarge
from documents import bokeh_json, exports, replay
from documents.changes import PatchRequest
from documents.exceptions import InvalidArchive, InvalidDocument, InvalidPatch
from documents.models import Document, Event, EventKind, Snapshot

FORMAT = "bokehsite-account"
FORMAT_VERSION = 1


def write_account(documents: list[Document], out: IO[bytes], *, username: str, with_history: bool = False) -> None:
    """Write ``documents`` (one user's) as a zip to ``out``, one document at a time."""
    entries: list[dict[str, Any]] = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for document in documents:
            folder = f"documents/{document.id}"
            content = replay.at(document.id)
            with archive.open(f"{folder}/document.json", "w", force_zip64=True) as member:
                for chunk in exports.json_chunks(*content.json()):
                    member.write(chunk)
            entry = {"id": str(document.id), "title": document.title, "visibility": document.visibility,
                     "version": content.version, "created": document.created.isoformat(),
                     "updated": document.updated.isoformat(), "document": f"{folder}/document.json"}
            if with_history:
                entry["history"] = _write_history(archive, document, folder)
            entries.append(entry)
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "exported": timezone.now().isoformat(),
                    "username": username, "history": with_history, "documents": entries}
        archive.writestr("manifest.json", json.dumps(manifest, indent=1))


def _write_history(archive: zipfile.ZipFile, document: Document, folder: str) -> dict[str, Any]:
    snapshots = Snapshot.objects.filter(document=document).order_by("version")
    versions = []
    for snapshot in snapshots.iterator(chunk_size=20):
        bundle = wire.update_payload(snapshot.to_bundle(), created=snapshot.created.isoformat())
        archive.writestr(f"{folder}/snapshots/{snapshot.version}.bundle", bundle)
        versions.append(snapshot.version)
    events = Event.objects.filter(document=document).select_related("author").order_by("version")
    logged = 0
    for event in events.iterator(chunk_size=500):
        header = {"version": event.version, "kind": event.kind, "patch": event.patch, "created": event.created.isoformat(),
                  "author": event.author.username if event.author else None, "restored_from": event.restored_from,
                  "size": event.size}
        archive.writestr(f"{folder}/events/{event.version}.bundle", wire.pack(header, event.buffer_list()))
        logged += 1
    return {"snapshots": versions, "events": logged}


# --- reading -----------------------------------------------------------------------------------

MAX_ENTRIES = 100_000
CONFLICT_CHOICES = ("rename", "skip", "replace")


@dataclass
class IncomingHistory:
    """A document's history from a zip, replayed through Bokeh: unsaved snapshots and events
    (``document`` not set), and when each was made."""

    version: int
    created: datetime | None
    updated: datetime | None
    snapshots: list[Snapshot]
    events: list[Event]
    times: dict[tuple[str, int], datetime]  # ("snapshot" | "event", version) -> when it was made


@dataclass
class Incoming:
    """One document of a zip, checked by Bokeh and ready to store."""

    title: str
    doc_json: dict[str, Any]
    buffers: list[Buffer]
    history: IncomingHistory | None = None


def read_account(data: bytes, *, importer: Any = None) -> list[Incoming]:
    """Every document of an account zip, each checked as an upload is, before anything is stored;
    with its history when the zip carries it, every version replayed through Bokeh as a rebuild
    would (each change applied to the newest snapshot before it), so that nothing stored from it
    fails to rebuild later. Changes made by the exporting account become ``importer``'s; anyone
    else's keep no author.

    Raises:
        InvalidArchive: not such a zip (not a zip, no or a bad manifest, a path that leaves the
            zip, a member that is missing or not Bokeh's document JSON).
        PayloadTooLarge: what it holds unpacks to more than ``BOKEHSITE_MAX_BODY_BYTES``.
        InvalidDocument: a document Bokeh cannot load (``field`` names it).
    """
    limit = settings.BOKEHSITE_MAX_BODY_BYTES
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as e:
        raise InvalidArchive(f"not a zip file: {e}") from None
    if len(members) > MAX_ENTRIES:
        raise InvalidArchive(f"the zip has {len(members)} members; at most {MAX_ENTRIES} are read")
    names = {m.filename for m in members}
    for name in names:
        if name.startswith(("/", "\\")) or ".." in PurePosixPath(name.replace("\\", "/")).parts or ":" in name:
            raise InvalidArchive(f"the zip holds a path outside itself: {name[:200]!r}")
    if sum(m.file_size for m in members) > limit:
        raise PayloadTooLarge(f"the zip unpacks to more than the limit of {limit} bytes", field="archive")
    budget = [limit]

    def read(name: str) -> bytes:
        if name not in names:
            raise InvalidArchive(f"the zip has no {name[:200]!r}")
        try:
            with archive.open(name) as member:
                content = member.read(budget[0] + 1)  # the sizes it declares may lie
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as e:
            raise InvalidArchive(f"{name[:200]}: cannot be read: {e}") from None
        if len(content) > budget[0]:
            raise PayloadTooLarge(f"the zip unpacks to more than the limit of {limit} bytes", field="archive")
        budget[0] -= len(content)
        return content

    def json_of(name: str) -> Any:
        try:
            return wire.loads(read(name))
        except wire.JSONError as e:
            raise InvalidArchive(f"{name[:200]} is not valid JSON: {e}") from None

    manifest = json_of("manifest.json")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidArchive(f"manifest.json does not describe a {FORMAT} zip")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise InvalidArchive(f"manifest.json is format version {manifest.get('format_version')!r}; "
                             f"this server reads version {FORMAT_VERSION}")
    entries = manifest.get("documents")
    if not isinstance(entries, list):
        raise InvalidArchive("manifest.json has no list of documents")
    incoming, titles = [], set()
    for i, entry in enumerate(entries):
        where = f"manifest.json documents[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("title"), str) or not isinstance(entry.get("document"), str):
            raise InvalidArchive(f"{where} needs a title and a document")
        title = entry["title"].strip()
        if not title or len(title) > 200 or "\x00" in title:
            raise InvalidArchive(f"{where}: a title must be 1 to 200 characters, without NUL")
        if title in titles:
            raise InvalidArchive(f"{where}: two documents are titled {title[:200]!r}")
        titles.add(title)
        doc_json, buffers = bokeh_json.canonical(json_of(entry["document"]), [], field=f"documents[{i}]")
        logged = None
        if manifest.get("history") is True and "history" in entry:
            logged = _read_history(entry, i, names, read, importer=importer,
                                   exporter=manifest.get("username"))
        incoming.append(Incoming(title, doc_json, buffers, logged))
    return incoming


def _read_history(entry: dict[str, Any], i: int, names: set[str], read, *, importer: Any,
                  exporter: Any) -> IncomingHistory:
    """The history of the manifest's ``documents[i]``, checked and replayed (see ``read_account``)."""
    where = f"manifest.json documents[{i}]"
    listed = entry["history"]
    if not (isinstance(listed, dict) and isinstance(listed.get("snapshots"), list) and listed["snapshots"]
            and all(_is_version(v) for v in listed["snapshots"]) and _is_version(entry.get("version"))):
        raise InvalidArchive(f"{where}: its history needs a version and a list of snapshot versions")
    folder = str(PurePosixPath(entry["document"]).parent)
    prefix = f"{folder}/events/"
    event_names = {}
    for name in names:
        if name.startswith(prefix) and name.endswith(".bundle"):
            number = name[len(prefix):-len(".bundle")]
            if not (number.isdigit() and _is_version(int(number)) and str(int(number)) == number):
                raise InvalidArchive(f"{name[:200]}: not an event of the history (events/<version>.bundle)")
            event_names[int(number)] = name
    if listed.get("events") != len(event_names):
        raise InvalidArchive(f"{where}: the history lists {listed.get('events')!r} events; the zip holds {len(event_names)}")

    def bundle(name: str) -> tuple[dict[str, Any], list[Buffer]]:
        try:
            return wire.unpack(read(name))
        except wire.BundleError as e:
            raise InvalidArchive(f"{name[:200]} is not a bundle: {e}") from None

    def when(value: Any, name: str) -> datetime:
        try:
            moment = datetime.fromisoformat(value)
        except (TypeError, ValueError):
            moment = None
        if moment is None or moment.tzinfo is None:
            raise InvalidArchive(f"{name[:200]}: 'created' must be a time with its time zone")
        return moment

    created = when(entry["created"], where) if "created" in entry else None
    updated = when(entry["updated"], where) if "updated" in entry else None
    snapshot_versions = sorted(set(listed["snapshots"]))
    base, version = snapshot_versions[0], entry["version"]
    if snapshot_versions[-1] > version or (event_names and (min(event_names) < base or max(event_names) > version)):
        raise InvalidArchive(f"{where}: its history holds versions outside {base} to {version}")
    missing = [v for v in range(base + 1, version + 1) if v not in event_names]
    if missing:
        raise InvalidArchive(f"{where}: its history has no change for version {missing[0]}")
    times: dict[tuple[str, int], datetime] = {}
    snapshots: dict[int, Snapshot] = {}
    for v in snapshot_versions:
        name = f"{folder}/snapshots/{v}.bundle"
        header, buffers = bundle(name)
        doc_json, buffers = bokeh_json.canonical(header.get("doc"), buffers, field=f"documents[{i}].snapshots[{v}]")
        snapshot = Snapshot(version=v)
        snapshot.set_content(doc_json, buffers)
        snapshots[v] = snapshot
        if "created" in header:
            times["snapshot", v] = when(header["created"], name)
        elif v == 1 and created is not None:
            times["snapshot", v] = created
    events: list[Event] = []
    doc = None
    for v in range(base, version + 1):
        if v in snapshots:  # rebuilds start again from each snapshot: so does the check
            doc = replay.build(snapshots[v])
        if v not in event_names:
            continue
        field = f"documents[{i}].events[{v}]"
        header, buffers = bundle(event_names[v])
        kind, patch = header.get("kind"), header.get("patch")
        if header.get("version") != v or kind not in EventKind.values:
            raise InvalidArchive(f"{event_names[v][:200]}: needs version {v} and a kind, patch or replace")
        restored_from = header.get("restored_from")
        if restored_from is not None and not (_is_version(restored_from) and restored_from < v and kind == EventKind.REPLACE):
            raise InvalidArchive(f"{event_names[v][:200]}: 'restored_from' must be an earlier version, of a replace")
        event = Event(version=v, kind=kind, restored_from=restored_from,
                      author=importer if header.get("author") is not None and header.get("author") == exporter else None)
        times["event", v] = when(header.get("created"), event_names[v])
        if kind == EventKind.REPLACE:
            if v not in snapshots:
                raise InvalidArchive(f"{where}: version {v} replaced the document, and the zip has no snapshot of it")
            content, buffers = snapshots[v].doc, snapshots[v].buffer_list()
            event.size = header["size"] if _is_size(header.get("size")) else replay.change_size(content, buffers)
        else:
            try:
                patch, buffers = PatchRequest(patch, buffers).validated()
                if not all(str(b.id).startswith(f"{v}.") for b in buffers):  # ids unique within the log
                    patch, buffers = wire.rename_buffers(patch, buffers, f"{v}.")
                event.patch = patch
                event.set_buffers(buffers)
                if v != base:  # applied as storing it did
                    replay.apply_checked(doc, event, field=field)
            except InvalidPatch as e:
                raise InvalidDocument(e.detail, field=field) from None
            event.size = replay.change_size(patch, buffers)  # what it holds (the quota counts it), whatever the zip says
        events.append(event)
    return IncomingHistory(version, created, updated, list(snapshots.values()), events, times)


def _is_version(value: Any) -> bool:
    return type(value) is int and 1 <= value < 2**31


def _is_size(value: Any) -> bool:
    return type(value) is int and 0 <= value < 2**31
