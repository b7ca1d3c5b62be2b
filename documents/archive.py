"""A whole account's documents as one zip: what it holds, and writing it.

The zip holds ``manifest.json`` (what it is, who exported it and when, and each document's
metadata) and, for each document, ``documents/<id>/document.json``: Bokeh's document JSON at
its current version (``documents.exports``). With the history it also holds the document's log
as bundles (``bokehsite.wire``): ``documents/<id>/snapshots/<V>.bundle`` (the whole document at
V) and ``documents/<id>/events/<V>.bundle`` (the change from V - 1 to V, with its kind, author
and time). Large datasets are not part of it.

Reading one back (``read_account``) checks everything before anything is stored: the paths, the
sizes it unpacks to, the manifest, and every document through Bokeh as an upload is checked.
An import restores each document's current version; the history in the zip is not restored.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, Any

from bokeh.core.serialization import Buffer
from django.conf import settings
from django.utils import timezone

from bokehsite import wire
from bokehsite.errors import PayloadTooLarge
from documents import bokeh_io, exports, history
from documents.exceptions import InvalidArchive
from documents.models import Document, Event, Snapshot

FORMAT = "bokehsite-account"
FORMAT_VERSION = 1


def write_account(documents: list[Document], out: IO[bytes], *, username: str, with_history: bool = False) -> None:
    """Write ``documents`` (one user's) as a zip to ``out``, one document at a time."""
    entries: list[dict[str, Any]] = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for document in documents:
            folder = f"documents/{document.id}"
            version, bundle = history.current_bundle(document.id)
            header, buffers = wire.unpack(bundle)
            with archive.open(f"{folder}/document.json", "w", force_zip64=True) as member:
                for chunk in exports.json_chunks(header["doc"], buffers):
                    member.write(chunk)
            entry = {"id": str(document.id), "title": document.title, "visibility": document.visibility,
                     "version": version, "created": document.created.isoformat(),
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
        archive.writestr(f"{folder}/snapshots/{snapshot.version}.bundle", snapshot.to_bundle())
        versions.append(snapshot.version)
    events = Event.objects.filter(document=document).select_related("author").order_by("version")
    logged = 0
    for event in events.iterator(chunk_size=500):
        header = {"version": event.version, "kind": event.kind, "patch": event.patch, "created": event.created.isoformat(),
                  "author": event.author.username if event.author else None, "restored_from": event.restored_from}
        archive.writestr(f"{folder}/events/{event.version}.bundle", wire.pack(header, event.buffer_list()))
        logged += 1
    return {"snapshots": versions, "events": logged}


# --- reading -----------------------------------------------------------------------------------

MAX_ENTRIES = 100_000
CONFLICT_CHOICES = ("rename", "skip", "replace")


@dataclass
class Incoming:
    """One document of a zip, checked by Bokeh and ready to store."""

    title: str
    doc_json: dict[str, Any]
    buffers: list[Buffer]


def read_account(data: bytes) -> list[Incoming]:
    """Every document of an account zip, each checked as an upload is, before anything is stored.

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
        doc_json, buffers = bokeh_io.canonical(json_of(entry["document"]), [], field=f"documents[{i}]")
        incoming.append(Incoming(title, doc_json, buffers))
    return incoming
