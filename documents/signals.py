"""What the documents domain tells the rest of the site, once it is committed.

``streaming.broadcast`` listens, so that this app never imports the websocket app, and
``documents.thumbnails`` listens, so that the actions never wait for a drawing. A change to
who may see a document (its owner, visibility, secret link, collaborators, the groups it is shared
with and their members, or the document deleted) is announced as ``accounts.signals.access_changed``.
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import Signal, receiver

from accounts.signals import announce
from documents.models import Collaborator, Document, EmbedToken, GroupShare

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


@receiver([post_save, post_delete], sender=GroupShare, dispatch_uid="documents.group_share_access")
def _group_share_changed(sender: Any, instance: GroupShare, **kwargs: Any) -> None:
    announce(documents=[instance.document_id])


@receiver(m2m_changed, sender=get_user_model().groups.through, dispatch_uid="documents.group_member_access")
def _group_members_changed(sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, **kwargs: Any) -> None:
    """Users joined or left groups (``user.groups`` or ``group.user_set``; the admin too): their
    connections look again at what their groups are shared."""
    if action not in ("post_add", "post_remove", "pre_clear"):
        return
    if not reverse:  # user.groups changed
        announce(users=[instance.pk])
    elif action == "pre_clear":  # group.user_set.clear(): its members, before they are gone
        announce(users=list(instance.user_set.values_list("pk", flat=True)))
    else:
        announce(users=pk_set or ())


@receiver([post_save, post_delete], sender=EmbedToken, dispatch_uid="documents.embed_token_access")
def _embed_token_changed(sender: Any, instance: EmbedToken, created: bool = False, **kwargs: Any) -> None:
    if not created:  # revoked, changed or deleted (the admin, too): open embeds look again
        announce(documents=[instance.document_id])
