"""A whole account's documents as one zip: what it holds, and writing it.

The zip holds ``manifest.json`` (what it is, who exported it and when, and each document's
metadata) and, for each document, ``documents/<id>/document.json``: Bokeh's document JSON at
its current version (``documents.exports``). With the history it also holds the document's log
as bundles (``bokehsite.wire``): ``documents/<id>/snapshots/<V>.bundle`` (the whole document at
V) and ``documents/<id>/events/<V>.bundle`` (the change from V - 1 to V, with its kind, author
and time). Large datasets are not part of it.
"""

from __future__ import annotations

import json
import zipfile
from typing import IO, Any

from django.utils import timezone

from bokehsite import wire
from documents import exports, history
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
