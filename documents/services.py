"""What can be done to documents. Views and consumers call these; none of them sees a request."""

from __future__ import annotations

import uuid
from typing import Any

from bokeh.core.serialization import Buffer
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet

from documents import bokeh_io
from documents.exceptions import DocumentNotFound, TitleTaken
from documents.models import Document, Visibility

User = AbstractBaseUser | AnonymousUser

# Columns too big for a metadata query; only content endpoints load them.
CONTENT_FIELDS = ("doc", "buffers")


def owned_documents(user: User) -> QuerySet[Document]:
    """The documents ``user`` owns, without their content."""
    if not user.is_authenticated:
        return Document.objects.none()
    return Document.objects.filter(owner=user).defer(*CONTENT_FIELDS)


def readable_documents(user: User) -> QuerySet[Document]:
    """Every document ``user`` may view: their own and the published ones."""
    published = Document.objects.filter(visibility=Visibility.PUBLIC)
    if not user.is_authenticated:
        return published
    return Document.objects.filter(owner=user) | published


def get_readable(user: User, document_id: uuid.UUID | str, *, content: bool = False) -> Document:
    return _get(readable_documents(user), document_id, content)


def get_writable(user: User, document_id: uuid.UUID | str, *, content: bool = False) -> Document:
    return _get(owned_documents(user), document_id, content)


def _get(queryset: QuerySet[Document], document_id: uuid.UUID | str, content: bool) -> Document:
    if content:
        queryset = queryset.defer(None)
    try:
        return queryset.get(pk=document_id)
    except (Document.DoesNotExist, ValueError):
        raise DocumentNotFound("no such document") from None


def create_document(owner: AbstractBaseUser, title: str, doc_json: Any, buffers: list[Buffer]) -> Document:
    """Store a new document from Bokeh's serialized JSON and its buffers.

    Raises:
        InvalidDocument: Bokeh cannot load the JSON; nothing is stored.
        TitleTaken: the owner already has a document with this title.
    """
    doc_json, buffers = bokeh_io.canonical(doc_json, buffers)
    document = Document(owner=owner, title=title)
    document.set_content(doc_json, buffers)
    _save_with_title(document, force_insert=True)
    return document


def replace_document(document: Document, doc_json: Any, buffers: list[Buffer]) -> Document:
    """Replace a document's whole content; its version goes up by one.

    Raises:
        InvalidDocument: Bokeh cannot load the JSON; the stored document is unchanged.
    """
    doc_json, buffers = bokeh_io.canonical(doc_json, buffers)
    document.set_content(doc_json, buffers)
    document.version = F("version") + 1
    document.save(update_fields=["doc", "buffers", "version", "updated"])
    document.refresh_from_db(fields=["version", "updated"])
    return document


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


def load_bokeh_document(document: Document):
    """The stored document as a live Bokeh ``Document``."""
    return bokeh_io.load(document.doc, document.buffer_list())

