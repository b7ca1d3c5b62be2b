"""What can be done to documents. Views and consumers call these; none of them sees a request."""

from __future__ import annotations

import uuid
from typing import Any

from bokeh.core.serialization import Buffer
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from bokehsite.client import wire
from documents import bokeh_io, live
from documents.exceptions import DocumentNotFound, TitleTaken
from documents.live import Change
from documents.models import Document, Event, Snapshot, Visibility

User = AbstractBaseUser | AnonymousUser

def owned_documents(user: User) -> QuerySet[Document]:
    """The documents ``user`` owns, without their content."""
    if not user.is_authenticated:
        return Document.objects.none()
    return Document.objects.filter(owner=user)


def readable_documents(user: User) -> QuerySet[Document]:
    """Every document ``user`` may view: their own and the published ones."""
    published = Document.objects.filter(visibility=Visibility.PUBLIC)
    if not user.is_authenticated:
        return published
    return Document.objects.filter(owner=user) | published


def get_readable(user: User, document_id: uuid.UUID | str) -> Document:
    return _get(readable_documents(user), document_id)


def get_writable(user: User, document_id: uuid.UUID | str) -> Document:
    return _get(owned_documents(user), document_id)


def _get(queryset: QuerySet[Document], document_id: uuid.UUID | str) -> Document:
    try:
        return queryset.get(pk=document_id)
    except (Document.DoesNotExist, ValueError):
        raise DocumentNotFound("no such document") from None


def connection_access(user: User, document_id: uuid.UUID | str) -> tuple[Document, str]:
    """The document a live connection opens, and its role: "write" or "read".

    Raises:
        DocumentNotFound: the user may not see it (or it does not exist).
    """
    document = get_readable(user, document_id)
    return document, "write" if user.is_authenticated and document.owner_id == user.pk else "read"


def current_version(document: Document) -> int:
    return Document.objects.values_list("version", flat=True).get(pk=document.pk)


def create_document(owner: AbstractBaseUser, title: str, doc_json: Any, buffers: list[Buffer]) -> Document:
    """Store a new document from Bokeh's serialized JSON and its buffers.

    Raises:
        InvalidDocument: Bokeh cannot load the JSON; nothing is stored.
        TitleTaken: the owner already has a document with this title.
    """
    doc_json, buffers = bokeh_io.canonical(doc_json, buffers)
    document = Document(owner=owner, title=title)
    with transaction.atomic():
        _save_with_title(document, force_insert=True)
        snapshot = Snapshot(document=document, version=document.version)
        snapshot.set_content(doc_json, buffers)
        snapshot.save()
    return document


def replace_document(
    document: Document, doc_json: Any, buffers: list[Buffer], *, author: Any = None, origin: str = ""
) -> Document:
    """Replace a document's whole content; its version goes up by one and viewers reload.

    Raises:
        InvalidDocument: Bokeh cannot load the JSON; the stored document is unchanged.
    """
    doc_json, buffers = bokeh_io.canonical(doc_json, buffers)
    live.replace(document, doc_json, buffers, author=author, origin=origin)
    document.refresh_from_db(fields=["version", "updated"])
    return document


def apply_patch(
    document: Document, patch: Any, buffers: list[Buffer], *,
    author: Any = None, origin: str = "", base_version: int | None = None,
) -> Change:
    """Apply a change (Bokeh's PATCH-DOC content) to a document; see ``documents.live.apply_patch``."""
    return live.apply_patch(document.id, patch, buffers, author=author, origin=origin, base_version=base_version)


def document_bundle(document: Document, version: int | None = None) -> tuple[int, bytes]:
    """The document as a bundle, at ``version`` (default: the current one), and that version.

    Raises:
        HistoryTruncated: the log no longer holds ``version``.
    """
    if version is None:
        return live.current_bundle(document.id)
    return version, live.bundle_at(document.id, version)


def events_after(document: Document, version: int, limit: int) -> list[Event]:
    """Up to ``limit`` changes after ``version``, in order.

    Raises:
        HistoryTruncated: the log no longer holds them; only a snapshot brings a reader up to date.
    """
    return live.log_after(document.id, version, limit)


def rename_document(document: Document, title: str) -> Document:
    """Raises TitleTaken if the owner has another document with this title."""
    document.title = title
    _save_with_title(document, update_fields=["title", "updated"])
    return document


def _save_with_title(document: Document, **save_kwargs: Any) -> None:
    try:
        with transaction.atomic():
            document.save(**save_kwargs)
    except IntegrityError:
        taken = Document.objects.filter(owner_id=document.owner_id, title=document.title).exclude(pk=document.pk)
        if taken.exists():
            raise TitleTaken(f"you already have a document titled {document.title!r}", field="title") from None
        raise


def delete_document(document: Document) -> None:
    document.delete()


def load_bokeh_document(document: Document, version: int | None = None):
    """The stored document (at ``version``, default the current one) as a new Bokeh ``Document``."""
    header, buffers = wire.unpack(document_bundle(document, version)[1])
    return bokeh_io.load(header["doc"], buffers)

