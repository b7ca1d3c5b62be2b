"""What the documents domain tells the rest of the site, once it is committed.

``streaming.broadcast`` listens, so that this app never imports the websocket app, and
``documents.thumbnails`` listens, so that the actions never wait for a drawing. A change to
who may see a document (its owner, visibility, secret link, collaborators, or the document
deleted) is announced as ``accounts.signals.access_changed``.
"""

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import Signal, receiver

from accounts.signals import announce
from documents.models import Collaborator, Document, EmbedToken

# changes: list[documents.changes.Change], consecutive versions of one document, in order.
changes_committed = Signal()

# document_id: a document whose whole content was just stored: created, imported, replaced (a
# push) or restored.
content_stored = Signal()

# Saving only these fields of a document changes nothing about who may see it.
_CONTENT_FIELDS = frozenset({"title", "version", "updated"})


@receiver([post_save, post_delete], sender=Document, dispatch_uid="documents.document_access")
def _document_changed(sender: Any, instance: Document, created: bool = False, update_fields: Any = None,
                      **kwargs: Any) -> None:
    if created or (update_fields and set(update_fields) <= _CONTENT_FIELDS):
        return
    announce(documents=[instance.pk])


@receiver([post_save, post_delete], sender=Collaborator, dispatch_uid="documents.collaborator_access")
def _collaborator_changed(sender: Any, instance: Collaborator, **kwargs: Any) -> None:
    announce(documents=[instance.document_id])


@receiver([post_save, post_delete], sender=EmbedToken, dispatch_uid="documents.embed_token_access")
def _embed_token_changed(sender: Any, instance: EmbedToken, created: bool = False, **kwargs: Any) -> None:
    if not created:  # revoked, changed or deleted (the admin, too): open embeds look again
        announce(documents=[instance.document_id])
