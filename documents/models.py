from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from urllib.parse import urlencode

import numpy as np
from bokeh.core.serialization import Buffer, Serialized
from bokeh.document import Document as BokehDocument
from django.conf import settings
from django.db import models
from django.urls import reverse

from bokehsite import wire
from documents import bokeh_json


class Visibility(models.TextChoices):
    PRIVATE = "private", "Private"
    PUBLIC = "public", "Public"
    SECRET = "secret", "Secret link"


class Document(models.Model):
    """A stored Bokeh document.

    Its content lives in ``Snapshot`` rows and the ``Event`` log: the document at version V is
    the newest snapshot at or before V with the events after it applied. ``version`` counts
    content changes; every accepted change bumps it by one.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=200)
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.PRIVATE)
    # The key of the secret link; it grants reading only while visibility is "secret".
    secret_key = models.CharField(max_length=64, blank=True, default="", editable=False)
    version = models.PositiveIntegerField(default=1)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated"]
        constraints = [models.UniqueConstraint(fields=["owner", "title"], name="document_title_unique_per_owner")]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("documents:page", args=[self.id])

    def public_url(self) -> str:
        """The public link, as the old bokeh-server wrote it: the page with ``?public=true``."""
        return self.get_absolute_url() + "?public=true"

    def secret_url(self) -> str:
        return self.get_absolute_url() + "?" + urlencode({"key": self.secret_key})

    def set_visibility(self, visibility: str) -> None:
        """Make it private, public or secret-link (unsaved). The secret link's key lives only
        while the document is secret-link: leaving discards it and coming back makes a new one,
        so a link handed out before never works again."""
        self.visibility = Visibility(visibility)
        if self.visibility != Visibility.SECRET:
            self.secret_key = ""
        elif not self.secret_key:
            self.new_secret_key()

    def new_secret_key(self) -> None:
        """A new secret-link key (unsaved); the old link stops working."""
        self.secret_key = secrets.token_urlsafe(32)


class DocumentVersion(models.Model):
    """Something one version of a document has, with the binary buffers its Bokeh JSON refers to
    by id, packed as a bundle with an empty payload (see ``bokehsite.wire``)."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="%(class)ss")
    version = models.PositiveIntegerField()
    buffers = models.BinaryField(default=b"", help_text="The binary buffers that the JSON refers to by id.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
        constraints = [models.UniqueConstraint(fields=["document", "version"], name="%(class)s_version_unique")]

    def set_buffers(self, buffers: list[Buffer]) -> None:
        self.buffers = wire.pack({}, buffers)
        self._unpacked = list(buffers)  # spares unpacking them again to apply a change just made

    def buffer_list(self) -> list[Buffer]:
        unpacked = getattr(self, "_unpacked", None)
        if unpacked is not None:
            return list(unpacked)
        return wire.unpack(self.buffers)[1] if self.buffers else []


class Snapshot(DocumentVersion):
    """The whole document at one version: Bokeh's document JSON and the buffers it refers to."""

    doc = models.JSONField(help_text="Bokeh document JSON; arrays refer to binary buffers by id.")

    class Meta(DocumentVersion.Meta):
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"{self.document_id} @ {self.version}"

    @property
    def size(self) -> int:
        return len(self.buffers)

    def set_content(self, doc_json: dict, buffers: list[Buffer]) -> None:
        self.doc = doc_json
        self.set_buffers(buffers)

    def to_bundle(self) -> bytes:
        """The document as the API and the plot page receive it."""
        return wire.replace_payload(self.buffers, {"doc": self.doc})

    def build(self, events: Iterable[Event] = ()) -> BokehDocument:
        """This version as a Bokeh document, with ``events`` (the changes after it, in order) applied.

        A run of changes that each only stream to the same columns of one source (with the same
        rollover) is applied as one stream of them all, which ends in the same state: a long
        streamed history rebuilds with one of Bokeh's stream calls instead of hundreds.
        """
        doc = bokeh_json.load(self.doc, self.buffer_list())
        run: list[Event] = []
        for event in events:
            if run and not _same_stream(run[0], event):
                _apply_run(doc, run)
                run = []
            run.append(event)
        if run:
            _apply_run(doc, run)
        return doc

    def build_json(self, events: list[Event]) -> tuple[dict, list[Buffer]]:
        """This version with ``events`` applied, as Bokeh's document JSON and its buffers.

        When the changes only stream to binary columns of one source, the streamed bytes are
        appended to the snapshot's own arrays, without building a Bokeh document: the same state
        ``build`` reaches (each change was checked by Bokeh when it was stored), in a fraction
        of the time.
        """
        streamed = _streamed_json(self, events) if events else None
        if streamed is not None:
            return streamed
        return bokeh_json.dump(self.build(events))


class EventKind(models.TextChoices):
    PATCH = "patch", "Patch"
    REPLACE = "replace", "Replace"


class Event(DocumentVersion):
    """One accepted change: the change from ``version - 1`` to ``version``.

    A patch holds Bokeh's PATCH-DOC content (``{"events": [...]}``) with its binary buffers,
    whose ids are unique within the document's log. A replace says the whole document was
    replaced; the snapshot at the same version holds the new content.
    """

    kind = models.CharField(max_length=8, choices=EventKind.choices, default=EventKind.PATCH)
    patch = models.JSONField(null=True, blank=True)
    size = models.PositiveIntegerField(default=0, help_text="Bytes of JSON and buffers.")
    origin = models.CharField(max_length=100, blank=True, help_text="The connection the change came from.")
    key = models.CharField(max_length=100, blank=True, default="",
                           help_text="The client's own name for the change, so that a resend is not applied twice.")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # History: a replace that brought back an earlier version says which one.
    restored_from = models.PositiveIntegerField(null=True, blank=True,
                                                help_text="The version this replace restored, if it was a restore.")

    class Meta(DocumentVersion.Meta):
        ordering = ["version"]
        indexes = [models.Index(fields=["document", "key"], name="event_key")]

    def __str__(self) -> str:
        return f"{self.document_id} v{self.version} {self.kind}"

    @property
    def history_kind(self) -> str:
        """What the history calls this change: "change", "replace" or "restore"."""
        if self.kind == EventKind.PATCH:
            return "change"
        return "restore" if self.restored_from is not None else "replace"

    def apply_to(self, doc: BokehDocument) -> None:
        """Apply this change to ``doc``, which must be at ``version - 1``, through Bokeh."""
        doc.apply_json_patch(Serialized(self.patch, self.buffer_list()))


class Thumbnail(models.Model):
    """The small picture of a document that the document list shows, drawn in the background by
    ``documents.thumbnails``. An empty ``png`` says drawing that version failed."""

    document = models.OneToOneField(Document, on_delete=models.CASCADE, primary_key=True, related_name="thumbnail")
    version = models.PositiveIntegerField(help_text="The version drawn (or tried).")
    png = models.BinaryField(default=b"", help_text="PNG, about 320 pixels wide; empty when drawing failed.")
    drawn = models.DateTimeField(help_text="When it was drawn, or drawing failed.")

    def __str__(self) -> str:
        return f"{self.document_id} @ {self.version}"


class Role(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Write"


class Collaborator(models.Model):
    """A user the owner shares a document with: ``read`` lets them view it, ``write`` also change it."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="collaborators")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="collaborations")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.READ)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created"]
        constraints = [models.UniqueConstraint(fields=["document", "user"], name="collaborator_unique_per_document")]

    def __str__(self) -> str:
        return f"{self.user} ({self.role})"


# --- embeds ----------------------------------------------------------------------------------


class EmbedToken(models.Model):
    """Lets pages of the listed ``origins`` show one document read-only (``documents.embeds``), until
    it expires or its owner revokes it. Only a digest of its secret is stored, as for API tokens;
    the secret is in the snippet the owner puts in their pages, so it is as secret as those are."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="embed_tokens")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False, help_text="SHA-256 of the secret, hex.")
    origins = models.JSONField(default=list, help_text="The origins whose pages may show it, e.g. https://example.org.")
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField()
    revoked = models.DateTimeField(null=True, blank=True, help_text="When it was revoked; empty while it is valid.")

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or ', '.join(self.origins)})"

    @property
    def is_active(self) -> bool:
        from django.utils import timezone

        return self.revoked is None and self.expires > timezone.now()

# --- replaying runs of streams ---------------------------------------------------------------


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


def _same_stream(first: Event, event: Event) -> bool:
    shape = _stream_shape(first)
    return shape is not None and shape == _stream_shape(event)


def _apply_run(doc: BokehDocument, run: list[Event]) -> None:
    if len(run) == 1 or _stream_shape(run[0]) is None:
        for event in run:
            event.apply_to(doc)
        return
    # Streaming a, then b (keeping the last `rollover` rows each time) leaves what streaming a + b does.
    first = run[0].patch["events"][0]
    columns: dict[str, list[bytes]] = {name: [] for name, _ in first["data"]["entries"]}
    lengths = {name: 0 for name in columns}
    for event in run:
        buffers = {b.id: b.data for b in event.buffer_list()}
        for name, value in event.patch["events"][0]["data"]["entries"]:
            columns[name].append(bytes(buffers[value["array"]["data"]["id"]]))
            lengths[name] += value["shape"][0]
    entries, merged = [], []
    for (name, value), (column, parts) in zip(first["data"]["entries"], columns.items()):
        buffer = Buffer(f"run.{column}", b"".join(parts))
        merged.append(buffer)
        entries.append([name, {**value, "array": {"type": "bytes", "data": {"id": buffer.id}}, "shape": [lengths[column]]}])
    patch = {"events": [{**first, "data": {"type": "map", "entries": entries}}]}
    doc.apply_json_patch(Serialized(patch, merged))


def _streamed_json(snapshot: Snapshot, events: list[Event]) -> tuple[dict, list[Buffer]] | None:
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
    appended: dict[str, list[bytes]] = {name: [] for name, _ in columns}
    for event in events:
        event_buffers = {b.id: b.data for b in event.buffer_list()}
        for name, value in event.patch["events"][0]["data"]["entries"]:
            appended[name].append(bytes(event_buffers[value["array"]["data"]["id"]]))
    for name, dtype in columns:
        old = stored.get(name)
        if not (isinstance(old, dict) and old.get("type") == "ndarray" and old.get("dtype") == dtype
                and old.get("order") == "little" and isinstance(old.get("shape"), list) and len(old["shape"]) == 1
                and isinstance(old.get("array"), dict) and isinstance(old["array"].get("data"), dict)
                and old["array"]["data"].get("id") in buffers):
            return None
    for name, dtype in columns:
        old = stored[name]
        itemsize = np.dtype(dtype).itemsize
        joined = b"".join([bytes(buffers[old["array"]["data"]["id"]].data), *appended[name]])
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
