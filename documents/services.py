"""What can be done to documents. Views and consumers call these; none of them sees a request."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from bokeh.core.serialization import Buffer
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet

from bokehsite.client import wire
from bokehsite.errors import ApiError
from documents import bokeh_io, live
from documents.access import RoleName, allows, role_for
from documents.exceptions import DocumentNotFound, Forbidden, TitleTaken, UserNotFound
from documents.live import Change
from documents.models import Collaborator, Document, Event, Role, Snapshot, Visibility

User = AbstractBaseUser | AnonymousUser

def owned_documents(user: User) -> QuerySet[Document]:
    """The documents ``user`` owns."""
    if not user.is_authenticated:
        return Document.objects.none()
    return Document.objects.filter(owner=user)


def shared_documents(user: User) -> QuerySet[Document]:
    """The documents other people share with ``user`` as a collaborator."""
    if not user.is_authenticated:
        return Document.objects.none()
    return Document.objects.filter(collaborators__user=user).exclude(owner=user)


def readable_documents(user: User) -> QuerySet[Document]:
    """Every document ``user`` may view without a secret link: their own, the shared, the public.

    Staff may view every document (see ``documents.access``).
    """
    if user.is_authenticated and user.is_staff:
        return Document.objects.all()
    published = Document.objects.filter(visibility=Visibility.PUBLIC)
    if not user.is_authenticated:
        return published
    return Document.objects.filter(Q(owner=user) | Q(collaborators__user=user) | Q(visibility=Visibility.PUBLIC)).distinct()


def get_document(user: User, document_id: uuid.UUID | str, need: RoleName = "read", *,
                 key: str | None = None) -> Document:
    """The document, if ``user`` has at least the role ``need`` on it; ``document.role`` is their role.

    Raises:
        DocumentNotFound: no such document, or ``user`` may not know it exists.
        Forbidden: ``user`` may view it but not do what ``need`` requires.
    """
    try:
        document = Document.objects.select_related("owner").get(pk=document_id)
    except (Document.DoesNotExist, ValueError, ValidationError):
        raise DocumentNotFound("no such document") from None
    role = role_for(user, document, key=key)
    if role is None:
        raise DocumentNotFound("no such document")
    if not allows(role, need):
        what = "change" if need == "write" else "manage"
        raise Forbidden(f"you may view this document but not {what} it")
    document.role = role
    return document


def get_readable(user: User, document_id: uuid.UUID | str, *, key: str | None = None) -> Document:
    """The document if ``user`` may view it, else ``DocumentNotFound``."""
    return get_document(user, document_id, "read", key=key)


def get_writable(user: User, document_id: uuid.UUID | str, *, key: str | None = None) -> Document:
    """The document if ``user`` may change its content (owner or write collaborator).

    Raises DocumentNotFound if they may not see it, Forbidden if they may only view it.
    """
    return get_document(user, document_id, "write", key=key)


def get_owned(user: User, document_id: uuid.UUID | str, *, key: str | None = None) -> Document:
    """The document if ``user`` owns it (to rename, delete, publish or share it).

    Raises DocumentNotFound if they may not see it, Forbidden if they may but do not own it.
    """
    return get_document(user, document_id, "owner", key=key)


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
    _broadcast_on_commit([live.replace(document, doc_json, buffers, author=author, origin=origin)])
    document.refresh_from_db(fields=["version", "updated"])
    return document


def apply_patch(
    document: Document, patch: Any, buffers: list[Buffer], *,
    author: Any = None, origin: str = "", key: str = "", base_version: int | None = None,
) -> Change:
    """Apply a change (Bokeh's PATCH-DOC content) to a document and tell its viewers.

    See ``documents.live.PatchRequest`` for the arguments.

    Raises:
        InvalidPatch: Bokeh cannot apply it; nothing is stored.
        VersionConflict: ``base_version`` is not the current version.
    """
    request = live.PatchRequest(patch, buffers, author=author, origin=origin, key=key, base_version=base_version)
    change = live.apply_patch(document.id, request)
    _broadcast_on_commit([change])
    live.fold_if_due(document.id)
    return change


def apply_patches(document: Document, requests: list[live.PatchRequest]) -> list[Change | ApiError]:
    """Apply changes in one transaction, each accepted or refused alone; see ``live.apply_patches``.

    Telling viewers is the caller's part (``streaming.broadcast``), so that it can be done from
    the event loop; then it calls ``fold_if_due``.
    """
    return live.apply_patches(document.id, requests)


def fold_if_due(document: Document) -> None:
    """Fold the document's log into a snapshot if it has grown enough; see ``live.fold_if_due``."""
    live.fold_if_due(document.id)


def _broadcast_on_commit(changes: list[Change]) -> None:
    from streaming import broadcast  # the one module that knows the channel layer

    transaction.on_commit(lambda: broadcast.changes_accepted(changes))


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


def current_version(document: Document) -> int:
    return Document.objects.values_list("version", flat=True).get(pk=document.pk)


def connection_role(document: Document) -> str:
    """What a live connection with ``document.role`` may do: "write" (send changes) or "read"."""
    return "write" if allows(document.role, "write") else "read"


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


# --- sharing ---------------------------------------------------------------------------------


def set_visibility(document: Document, visibility: str) -> Document:
    """Make ``document`` private, public or secret-link; a secret link gets a key if it has none."""
    document.visibility = Visibility(visibility)
    fields = ["visibility", "updated"]
    if document.visibility == Visibility.SECRET and not document.secret_key:
        document.secret_key = secrets.token_urlsafe(32)
        fields.append("secret_key")
    document.save(update_fields=fields)
    return document


def publish(document: Document) -> Document:
    """Make ``document`` public: anyone may view it, without logging in."""
    return set_visibility(document, Visibility.PUBLIC)


def unpublish(document: Document) -> Document:
    """Make ``document`` private again (a secret link stops working too)."""
    return set_visibility(document, Visibility.PRIVATE)


def regenerate_secret_link(document: Document) -> Document:
    """Give ``document`` a new secret-link key, revoking the old link, and make it secret-link."""
    document.secret_key = secrets.token_urlsafe(32)
    document.visibility = Visibility.SECRET
    document.save(update_fields=["secret_key", "visibility", "updated"])
    return document


def collaborators(document: Document) -> QuerySet[Collaborator]:
    return document.collaborators.select_related("user")


def share(document: Document, username: str, role: str) -> Collaborator:
    """Give the user ``username`` the role ``role`` ("read" or "write") on ``document``.

    Raises:
        UserNotFound: there is no such user (or it is the owner, who needs no sharing).
    """
    try:
        user = get_user_model().objects.get(username=username, is_active=True)
    except get_user_model().DoesNotExist:
        raise UserNotFound(f"no user called {username!r}", field="username") from None
    if user.pk == document.owner_id:
        raise UserNotFound(f"{username!r} owns this document", field="username")
    collaborator, _ = Collaborator.objects.update_or_create(document=document, user=user, defaults={"role": Role(role)})
    return collaborator


def unshare(document: Document, username: str) -> None:
    """Take away every role the user ``username`` had on ``document``.

    Raises:
        UserNotFound: ``username`` is not a collaborator on it.
    """
    deleted, _ = Collaborator.objects.filter(document=document, user__username=username).delete()
    if not deleted:
        raise UserNotFound(f"{username!r} is not a collaborator on this document", field="username")


def get_for_frame(grant) -> Document:
    """The document a frame token grants (``documents.frames.FrameGrant``); ``document.role`` is its role.

    Raises DocumentNotFound if the document is gone.
    """
    try:
        document = Document.objects.select_related("owner").get(pk=grant.document_id)
    except Document.DoesNotExist:
        raise DocumentNotFound("no such document") from None
    document.role = grant.role
    return document
