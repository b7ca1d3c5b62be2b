from __future__ import annotations

import json
import secrets
import uuid
from urllib.parse import urlencode

from bokeh.core.serialization import Buffer, Serialized
from bokeh.document import Document as BokehDocument
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.urls import reverse

from accounts.secrets import is_active as secret_is_active
from bokehsite import wire


class Visibility(models.TextChoices):
    PRIVATE = "private", "Private"
    PUBLIC = "public", "Public"
    SECRET = "secret", "Secret link"


class Kind(models.TextChoices):
    PLOT = "plot", "Plot"
    # An app's live session (``appserver``): a viewer's own, ended with the session.
    SESSION = "session", "App session"


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
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PLOT, editable=False)
    # The document's own page, when it has one (an app's template, rendered): the frame draws
    # each root where the page placed it, and the page's parts around (``documents.frames``).
    page = models.TextField(blank=True, default="", editable=False)
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
    """The whole document at one version: Bokeh's document JSON and the buffers it refers to.
    ``documents.replay`` rebuilds later versions from it."""

    doc = models.JSONField(help_text="Bokeh document JSON; arrays refer to binary buffers by id.")
    stored_size = models.PositiveBigIntegerField(default=0, help_text="Bytes of JSON and buffers, as the storage quota counts them.")

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
        self.stored_size = len(json.dumps(doc_json, separators=(",", ":"))) + len(self.buffers)

    def to_bundle(self) -> bytes:
        """The document as the API and the plot page receive it."""
        return wire.replace_payload(self.buffers, {"doc": self.doc})


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


class GroupShare(models.Model):
    """A group of users the owner shares a document with: each member has ``role`` on it (the
    strongest of this and any other role they have)."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="group_shares")
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="document_shares")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.READ)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created"]
        constraints = [models.UniqueConstraint(fields=["document", "group"], name="group_share_unique_per_document")]

    def __str__(self) -> str:
        return f"{self.group} ({self.role})"


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
        return secret_is_active(self)
