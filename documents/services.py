"""What can be done to documents: the actions. Views and consumers call these; none of them sees
a request or a socket. Who may call which is ``documents.access``'s to decide, before."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bokeh.core.serialization import Buffer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet

from bokehsite import metrics, protocol
from bokehsite.errors import ApiError
from documents import archive, bokeh_json, exports, images, log, quota, replay, signals
from documents.changes import Change, PatchRequest
from documents.exceptions import GroupShareNotFound, TitleTaken, UnknownGroup, UserNotFound
from documents.exceptions import ExportUnavailable
from documents.models import Collaborator, Document, Event, GroupShare, Kind, Role, Snapshot, Visibility

User = AbstractBaseUser | AnonymousUser
# No username holds NUL, and PostgreSQL cannot compare text with one.
NUL = "\x00"


def owned_documents(user: User) -> QuerySet[Document]:
    """The documents ``user`` owns."""
    if not user.is_authenticated:
        return Document.objects.none()
    return Document.objects.filter(owner=user, kind=Kind.PLOT)


def shared_documents(user: User) -> QuerySet[Document]:
    """The documents other people share with ``user``, as a collaborator or with a group of theirs."""
    if not user.is_authenticated:
        return Document.objects.none()
    shared = Q(collaborators__user=user) | Q(group_shares__group__user=user)
    return Document.objects.filter(pk__in=Document.objects.filter(shared).values("pk")).exclude(owner=user)


def create_document(owner: AbstractBaseUser, title: str, doc_json: Any, buffers: list[Buffer], *,
                    kind: str = Kind.PLOT, secret_key: str = "", canonical: bool = False, page: str = "") -> Document:
    """Store a new document from Bokeh's serialized JSON and its buffers (``secret_key``: it is
    seen through a secret link with this key, as an app session's is; ``canonical``: the JSON is
    already what Bokeh itself wrote, as an app process's is, and is stored as it is; ``page``: the
    document's own page, ``Document.page``).

    Raises:
        InvalidDocument: Bokeh cannot load the JSON; nothing is stored.
        TitleTaken: the owner already has a document with this title.
        StorageQuotaExceeded: it would pass the owner's storage quota (``documents.quota``).
    """
    if not canonical:
        doc_json, buffers = bokeh_json.canonical(doc_json, buffers)
    document = Document(owner=owner, title=title, kind=kind, page=page)
    if secret_key:
        document.visibility, document.secret_key = Visibility.SECRET, secret_key
    with transaction.atomic():
        _save_with_title(document, force_insert=True)
        snapshot = Snapshot(document=document, version=document.version)
        snapshot.set_content(doc_json, buffers)
        quota.charge(owner.pk, snapshot.stored_size)
        snapshot.save()
    _stored_on_commit(document)
    return document


def replace_document(
    document: Document, doc_json: Any, buffers: list[Buffer], *, author: Any = None, origin: str = ""
) -> Document:
    """Replace a document's whole content; its version goes up by one and viewers reload.

    Raises:
        InvalidDocument: Bokeh cannot load the JSON; the stored document is unchanged.
    """
    return _replace(document, *bokeh_json.canonical(doc_json, buffers), author=author, origin=origin)


def _replace(document: Document, doc_json: Any, buffers: list[Buffer], **recorded: Any) -> Document:
    """Store checked content as the document's new version, announced once committed."""
    _broadcast_on_commit([log.replace(document, doc_json, buffers, **recorded)])
    _stored_on_commit(document)
    document.refresh_from_db(fields=["version", "updated"])
    return document


def apply_changes(document: Document, requests: list[PatchRequest], *, fold: bool = True) -> list[Change | ApiError]:
    """Store changes to a document: the one way a change is stored, whether it came by REST or
    by websocket (``streaming.batching`` queues those in front of this).

    Each change is checked and applied through Bokeh, on its own: the outcome list holds, for
    each request in order, its ``Change`` or the ``ApiError`` that refused it (``InvalidPatch``,
    ``VersionConflict``), and a refused change leaves nothing behind. The accepted ones are
    committed in one transaction and broadcast once committed; then the log is folded into a
    snapshot if it has grown enough (unless ``fold`` is false: group commit folds with
    ``fold_if_due`` once its broadcast and answers are out).

    Raises:
        DocumentNotFound: the document was deleted.
        StorageQuotaExceeded: the changes would pass the owner's storage quota; none is stored.
    """
    quota.check(document.owner_id, sum(len(b.data) for r in requests for b in r.buffers))  # before any work
    outcomes = log.store(document.id, requests)
    # A resent change was broadcast when it was first stored.
    _broadcast_on_commit([o for o in outcomes if isinstance(o, Change) and not o.resent])
    if metrics.enabled():
        received = [r.received for r, o in zip(requests, outcomes) if isinstance(o, Change) and not o.resent]
        transaction.on_commit(lambda: metrics.changes_stored(received))
    if fold:
        log.fold_if_due(document.id)
    return outcomes


def fold_due(document: Document) -> bool:
    """Whether the document's log has grown enough to fold (what this process knows; no query)."""
    return log.fold_due(document.id)


def fold_if_due(document: Document) -> None:
    """Fold the document's log into a snapshot if it has grown enough."""
    log.fold_if_due(document.id)


def apply_patch(
    document: Document, patch: Any, buffers: list[Buffer], *,
    author: Any = None, origin: str = "", key: str = "", base_version: int | None = None,
) -> Change:
    """Store one change (Bokeh's PATCH-DOC content); see ``apply_changes`` and ``PatchRequest``.

    Raises:
        InvalidPatch: Bokeh cannot apply it; nothing is stored.
        VersionConflict: ``base_version`` is not the current version.
    """
    request = PatchRequest(patch, buffers, author=author, origin=origin, key=key, base_version=base_version)
    (outcome,) = apply_changes(document, [request])
    if isinstance(outcome, ApiError):
        raise outcome
    return outcome


def _broadcast_on_commit(changes: list[Change]) -> None:
    if changes:
        transaction.on_commit(lambda: signals.changes_committed.send(sender=Document, changes=changes))


def _stored_on_commit(document: Document) -> None:
    document_id = document.id
    transaction.on_commit(lambda: signals.content_stored.send(sender=Document, document_id=document_id))


def document_bundle(document: Document, version: int | None = None) -> tuple[int, bytes]:
    """The document as a bundle, at ``version`` (default: the current one), and that version.

    Raises:
        HistoryTruncated: the log no longer holds ``version``.
    """
    content = replay.at(document.id, version)
    return content.version, content.bundle()


def events_after(document: Document, version: int, limit: int) -> list[Event]:
    """Up to ``limit`` changes after ``version``, in order.

    Raises:
        HistoryTruncated: the log no longer holds them; only a snapshot brings a reader up to date.
    """
    return log.log_after(document.id, version, limit)


def dataset_mark(document: Document, source_id: str) -> dict[str, str] | None:
    """The dataset mark (``protocol.read_mark``) of source ``source_id`` of the document, if it
    has a source of that id backed by a dataset."""
    tags = replay.source_tags(document.id, source_id)
    return protocol.read_mark(tags) if tags is not None else None


def current_version(document: Document) -> int:
    """Raises DocumentNotFound if the document was deleted."""
    return replay.current_version(document.pk)


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
    return replay.at(document.id, version).document()


# --- sharing ---------------------------------------------------------------------------------


def set_visibility(document: Document, visibility: str) -> Document:
    """Make ``document`` private, public or secret-link. Leaving secret-link discards the key;
    making it secret-link again makes a new one (``Document.set_visibility``)."""
    document.set_visibility(visibility)
    document.save(update_fields=["visibility", "secret_key", "updated"])
    return document


def publish(document: Document) -> Document:
    """Make ``document`` public: anyone may view it, without logging in."""
    return set_visibility(document, Visibility.PUBLIC)


def unpublish(document: Document) -> Document:
    """Make ``document`` private again (a secret link stops working too)."""
    return set_visibility(document, Visibility.PRIVATE)


def regenerate_secret_link(document: Document) -> Document:
    """Give ``document`` a new secret-link key, revoking the old link, and make it secret-link."""
    document.new_secret_key()
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
        if NUL in username:  # no username has one, and PostgreSQL cannot compare it
            raise get_user_model().DoesNotExist
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
    deleted = 0 if NUL in username else Collaborator.objects.filter(document=document, user__username=username).delete()[0]
    if not deleted:
        raise UserNotFound(f"{username!r} is not a collaborator on this document", field="username")


def group_shares(document: Document) -> QuerySet[GroupShare]:
    return document.group_shares.select_related("group")


def share_with_group(document: Document, name: str, role: str) -> GroupShare:
    """Give every member of the group ``name`` the role ``role`` ("read" or "write") on ``document``.

    Raises:
        UnknownGroup: there is no such group.
    """
    group = None if NUL in name else Group.objects.filter(name=name).first()
    if group is None:
        raise UnknownGroup(f"no group called {name!r}", field="group")
    share, _ = GroupShare.objects.update_or_create(document=document, group=group, defaults={"role": Role(role)})
    return share


def unshare_group(document: Document, name: str) -> None:
    """Take away the role the members of the group ``name`` had on ``document`` through it.

    Raises:
        GroupShareNotFound: the document is not shared with that group.
    """
    deleted = 0 if NUL in name else GroupShare.objects.filter(document=document, group__name=name).delete()[0]
    if not deleted:
        raise GroupShareNotFound(f"this document is not shared with a group called {name!r}", field="group")


# --- history -----------------------------------------------------------------------------------


def version_history(document: Document, *, before: int | None = None, limit: int = 100) -> dict[str, Any]:
    """One page of a document's versions, newest first, each with its time, author, kind and
    size; ``next`` is the ``before`` of the next page (None on the last one).

    Versions older than ``oldest`` were pruned (``BOKEHSITE_HISTORY`` says how many are kept).
    """
    oldest = log.oldest_version(document.id)
    events = log.versions(document.id, before=before, limit=limit)
    items = [{"version": e.version, "kind": e.history_kind, "created": e.created,
              "author": e.author.username if e.author else None, "size": e.size,
              "restored_from": e.restored_from} for e in events]
    last = events[-1].version if events else (before if before is not None else document.version + 1)
    if oldest == 1 and last > 1 and len(items) < limit and not Event.objects.filter(document=document, version=1).exists():
        # A document is created at version 1 by its snapshot alone; no change is logged for it.
        snapshot = Snapshot.objects.filter(document=document, version=1).only("created", "buffers").first()
        if snapshot is not None:
            items.append({"version": 1, "kind": "create", "created": snapshot.created, "author": document.owner.username,
                          "size": snapshot.size, "restored_from": None})
    lowest = items[-1]["version"] if items else None
    more = lowest is not None and lowest > max(oldest, 1) and len(items) >= limit
    return {"version": document.version, "oldest": oldest, "retention": settings.BOKEHSITE_HISTORY,
            "pruned": oldest > 1, "items": items, "next": lowest if more else None}


def restore_version(document: Document, version: int, *, author: Any = None, origin: str = "") -> Document:
    """Make a new version whose content is that of ``version``; nothing in the history is lost.
    It is stored and broadcast as a replace, recorded as a restore of ``version``.

    Raises:
        HistoryTruncated: the history no longer holds ``version``.
    """
    doc_json, buffers = replay.at(document.id, version).json()  # stored content: checked when it was stored
    return _replace(document, doc_json, buffers, author=author, origin=origin, restored_from=version)


# --- exports -----------------------------------------------------------------------------------


def export_document(document: Document, fmt: str, version: int | None = None) -> tuple[int, Iterator[bytes]]:
    """The document (at ``version``, default the current one) written as ``fmt``: "html"
    (standalone, BokehJS inline), "json" (Bokeh's document JSON), "png" or "svg" (drawn by
    headless Chromium). Returns the version and the export's bytes, as chunks.

    Raises:
        HistoryTruncated: the history no longer holds ``version``.
        ExportUnavailable: no Chromium on this server, for "png" and "svg".
        ExportFailed: the document did not draw.
    """
    if fmt in ("png", "svg") and (reason := images.unavailable()):
        raise ExportUnavailable(reason, field="format")  # before anything is rebuilt
    content = replay.at(document.id, version)
    version, (doc_json, buffers) = content.version, content.json()
    if fmt == "json":
        return version, exports.json_chunks(doc_json, buffers)
    page = exports.html_chunks(document.title, doc_json, buffers)
    if fmt == "html":
        return version, page
    return version, iter([images.draw(page, fmt)])


# --- finding documents -------------------------------------------------------------------------

# The orders a document list can take: name -> the fields it sorts by (newest or A first).
LIST_ORDERS = {"updated": ("-updated", "-pk"), "created": ("-created", "-pk"), "title": ("title", "pk"),
               "version": ("-version", "-pk")}


def find_documents(documents: QuerySet[Document], *, search: str = "", order: str = "updated") -> QuerySet[Document]:
    """``documents`` whose title holds ``search`` (any case), in the order ``order`` names
    (``LIST_ORDERS``; a leading "-" reverses it)."""
    if search and NUL not in search:
        documents = documents.filter(title__icontains=search)
    elif search:
        documents = documents.none()
    reverse = order.startswith("-")
    fields = LIST_ORDERS.get(order.lstrip("-"), LIST_ORDERS["updated"])
    if reverse:
        fields = tuple(f[1:] if f.startswith("-") else "-" + f for f in fields)
    return documents.order_by(*fields)


# --- whole accounts ----------------------------------------------------------------------------


def export_account(user: AbstractBaseUser, out, *, with_history: bool = False) -> int:
    """Write every document ``user`` owns (metadata, content and, if asked, history) as one zip
    to ``out`` (``documents.archive``); returns how many. Datasets are not included."""
    documents = list(owned_documents(user).order_by("created", "pk"))
    archive.write_account(documents, out, username=user.get_username(), with_history=with_history)
    return len(documents)


def import_account(user: AbstractBaseUser, data: bytes, *, on_conflict: str | None = None) -> list[dict[str, Any]]:
    """Store the documents of an account zip (``documents.archive``) as ``user``'s, all or none.

    A zip exported with history brings each document's history (``archive.read_account``).
    A document whose title ``user`` already has is, as ``on_conflict`` says, stored under a new
    title ("rename": "title (imported)"), left out ("skip"), or stored as a new version of the
    existing one ("replace", its history kept). Returns what became of each:
    ``{"title", "id", "outcome"}`` with outcome "created", "renamed", "skipped" or "replaced".

    Raises:
        InvalidArchive, PayloadTooLarge, InvalidDocument: the zip; nothing is stored.
        TitleTaken: titles clash and ``on_conflict`` is not given; nothing is stored.
    """
    incoming = archive.read_account(data, importer=user)
    mine = {d.title: d for d in owned_documents(user)}
    clashes = [i.title for i in incoming if i.title in mine]
    if clashes and on_conflict not in archive.CONFLICT_CHOICES:
        shown = ", ".join(repr(t) for t in clashes[:5]) + (" ..." if len(clashes) > 5 else "")
        raise TitleTaken(f"you already have documents titled {shown}: choose on_conflict rename, skip or replace",
                         field="on_conflict")
    results = []
    with transaction.atomic():
        for item in incoming:
            existing = mine.get(item.title)
            if existing is None:
                document, outcome = _import_document(user, item.title, item), "created"
            elif on_conflict == "skip":
                results.append({"title": item.title, "id": str(existing.id), "outcome": "skipped"})
                continue
            elif on_conflict == "replace":
                document, outcome = replace_document(existing, item.doc_json, item.buffers, author=user), "replaced"
            else:
                title = _free_title(user, item.title, taken=set(mine))
                document, outcome = _import_document(user, title, item), "renamed"
            mine[document.title] = document
            results.append({"title": document.title, "id": str(document.id), "outcome": outcome})
    return results


def _import_document(user: AbstractBaseUser, title: str, item: Any) -> Document:
    """A new document from a zip: with the history it carries (its versions, kinds, authors and
    times as they were), else its current version as version 1."""
    logged = item.history
    if logged is None:
        return create_document(user, title, item.doc_json, item.buffers)
    document = Document(owner=user, title=title, version=logged.version)
    with transaction.atomic():
        _save_with_title(document, force_insert=True)
        for row in (*logged.snapshots, *logged.events):
            row.document = document
        quota.charge(user.pk, quota.bytes_of(logged.snapshots, logged.events))
        snapshots = Snapshot.objects.bulk_create(logged.snapshots, batch_size=100)
        events = Event.objects.bulk_create(logged.events, batch_size=500)
        # auto_now_add stamped them now; they keep the times they were made at.
        for kind, rows in (("snapshot", snapshots), ("event", events)):
            dated = [row for row in rows if (kind, row.version) in logged.times]
            for row in dated:
                row.created = logged.times[kind, row.version]
            if dated:
                type(dated[0]).objects.bulk_update(dated, ["created"], batch_size=500)
        times = {k: v for k, v in (("created", logged.created), ("updated", logged.updated)) if v is not None}
        if times:
            Document.objects.filter(pk=document.pk).update(**times)
            document.refresh_from_db(fields=list(times))
        log.prune(document.id, document.version)  # this server's retention
    _stored_on_commit(document)
    return document


def _free_title(user: AbstractBaseUser, title: str, *, taken: set[str]) -> str:
    for n in range(1, 10_000):
        suffix = " (imported)" if n == 1 else f" (imported {n})"
        candidate = title[:200 - len(suffix)] + suffix
        if candidate not in taken and not Document.objects.filter(owner=user, title=candidate).exists():
            return candidate
    raise TitleTaken(f"no free title like {title!r}", field="on_conflict")
