"""Each account's storage quota: the bytes its documents' snapshots, change log and thumbnails take.

The quota is ``BOKEHSITE_STORAGE_QUOTA``, or the one the admin set for the account
(``accounts.AccountLimits.storage_quota``); 0 means none. What an account uses is a counter on
the same row (``storage_used``), changed in the same transaction as the rows it counts:

- A write charges what it adds with one conditional statement,
  ``UPDATE ... SET used = used + n WHERE used + n <= quota``. That statement is the check: it
  holds the account's row (PostgreSQL) or the database (SQLite) until the transaction ends, so
  writers in any number of processes cannot both take the last bytes, and a write that rolls back
  takes its charge back with it. Reading the usage is reading one row; nothing sums a document's
  bytes on the way of a change.
- Deleting rows (pruning history, deleting a document, a new thumbnail) releases what they held,
  measured by the database in the same transaction as the deletion, after taking the document's
  row so that two processes pruning it at once do not both release the same rows.
- An account is counted from its rows the first time it is used (``recount``), so accounts made
  before the quota existed start right.

The bytes counted are those each row records: ``Snapshot.stored_size`` (JSON and buffers),
``Event.size`` of changes (a replace's content is its snapshot's), and the thumbnail's PNG.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet, Sum
from django.db.models.functions import Length
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from accounts.models import AccountLimits
from documents.exceptions import StorageQuotaExceeded
from documents.models import Document, Event, EventKind, Snapshot, Thumbnail


@dataclass(frozen=True)
class Usage:
    used: int
    quota: int | None  # None: no quota


def usage(user_id: int) -> Usage:
    """What the account's documents take, and its quota."""
    _count(user_id)
    row = AccountLimits.objects.get(user_id=user_id)
    return Usage(row.storage_used or 0, _quota(row.storage_quota) or None)


def check(user_id: int, more: int = 0) -> None:
    """Refuse early, before any work, a write of at least ``more`` bytes that cannot fit (the
    charge in the write's transaction is what holds).

    Raises:
        StorageQuotaExceeded: it would not fit.
    """
    with connection.cursor() as cursor:  # on the way of every change: a statement, not a query built each time
        cursor.execute(f"SELECT storage_quota, storage_used FROM {AccountLimits._meta.db_table} WHERE user_id = %s",
                       [user_id])
        row = cursor.fetchone()
    if row is None or row[1] is None:
        return  # not counted yet: the charge counts it
    quota = _quota(row[0])
    if quota and row[1] + more > quota:
        raise _exceeded(row[1], quota, more, own=row[0] is not None)


def charge(user_id: int, more: int, *, check: bool = True) -> None:
    """Count ``more`` bytes the account is about to store, in the caller's transaction. Call it
    before writing the rows (the first count of an account reads the rows already there).

    Raises:
        StorageQuotaExceeded: with ``check``, they would pass the quota; nothing is counted.
    """
    _charge("%s", user_id, more, check, user_id=lambda: user_id)


def charge_document(document_id: uuid.UUID, more: int, *, check: bool = True) -> None:
    """``charge`` for the owner of the document ``document_id`` (nothing if it is gone)."""
    owner = lambda: Document.objects.filter(pk=document_id).values_list("owner_id", flat=True).first()  # noqa: E731
    document_id = Document._meta.pk.get_db_prep_value(document_id, connection)
    _charge(f"(SELECT owner_id FROM {Document._meta.db_table} WHERE id = %s)", document_id, more, check, user_id=owner)


def bytes_of(snapshots: Iterable[Snapshot], events: Iterable[Event]) -> int:
    """The bytes rows about to be stored count for."""
    return sum(s.stored_size for s in snapshots) + sum(e.size for e in events if e.kind == EventKind.PATCH)


def delete_freeing(document_id: uuid.UUID, snapshots: QuerySet[Snapshot], events: QuerySet[Event]) -> None:
    """Delete these rows of one document's history, and release what they held."""
    with transaction.atomic():
        _hold(document_id)
        freed = _sum(snapshots, "stored_size") + _sum(events.filter(kind=EventKind.PATCH), "size")
        snapshots.delete()
        events.delete()
        _release(Q(user__documents=document_id), freed)


@contextlib.contextmanager
def thumbnail_replaced(document_id: uuid.UUID, new_bytes: int) -> Iterator[None]:
    """Around storing a document's new thumbnail of ``new_bytes`` bytes: the owner's usage
    follows (thumbnails are drawn by the server, small and bounded: never refused)."""
    before = Thumbnail.objects.filter(document_id=document_id).annotate(n=Length("png")).values_list("n", flat=True).first()
    yield
    charge_document(document_id, new_bytes - (before or 0), check=False)


def document_bytes(document_id: uuid.UUID) -> int:
    """What one document counts for: its snapshots, its changes and its thumbnail."""
    return (_sum(Snapshot.objects.filter(document_id=document_id), "stored_size")
            + _sum(Event.objects.filter(document_id=document_id, kind=EventKind.PATCH), "size")
            + _sum(Thumbnail.objects.filter(document_id=document_id), Length("png")))


def recount(user_id: int) -> int:
    """What the account's documents take, counted from their rows (slow: each row of history)."""
    return (_sum(Snapshot.objects.filter(document__owner_id=user_id), "stored_size")
            + _sum(Event.objects.filter(document__owner_id=user_id, kind=EventKind.PATCH), "size")
            + _sum(Thumbnail.objects.filter(document__owner_id=user_id), Length("png")))


@receiver(pre_delete, sender=Document, dispatch_uid="documents.quota")
def _document_deleted(sender: Any, instance: Document, **kwargs: Any) -> None:
    # Runs in the deletion's transaction, before its rows go.
    with transaction.atomic():
        _hold(instance.pk)
        _release(Q(user_id=instance.owner_id), document_bytes(instance.pk))


# --- the counter -------------------------------------------------------------------------------


def _quota(own: int | None) -> int:
    return settings.BOKEHSITE_STORAGE_QUOTA if own is None else own


# One statement, written once: it is on the way of every change, where building it through the
# ORM each time cost more than running it. It is the check, too: it adds only where there is room.
_CHARGE = """
UPDATE {table} SET storage_used = storage_used + %s
WHERE user_id = {account} AND storage_used IS NOT NULL
  AND (%s OR COALESCE(storage_quota, %s) = 0 OR storage_used + %s <= COALESCE(storage_quota, %s))
"""


def _charge(account_sql: str, account: Any, more: int, check: bool, *, user_id: Any) -> None:
    """Add ``more`` to the counter of the account ``account_sql`` (a placeholder, or a subquery
    with one) picks with the parameter ``account``; count the account first if nothing did."""
    if more == 0:
        return
    server = settings.BOKEHSITE_STORAGE_QUOTA
    sql = _CHARGE.format(table=AccountLimits._meta.db_table, account=account_sql)
    params = [more, account, not check or more < 0, server, more, server]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount:
            return
        owner = user_id()
        if owner is None:
            return  # the document is gone: there is nothing to count
        if _count(owner):
            cursor.execute(sql, params)
            if cursor.rowcount:
                return
    if not check or more <= 0:
        return
    row = AccountLimits.objects.get(user_id=owner)
    raise _exceeded(row.storage_used or 0, _quota(row.storage_quota), more, own=row.storage_quota is not None)


def _count(user_id: int) -> bool:
    """Count the account from its rows if nothing counted it yet; whether it was not counted."""
    if AccountLimits.objects.filter(user_id=user_id, storage_used__isnull=False).exists():
        return False
    AccountLimits.objects.get_or_create(user_id=user_id)
    AccountLimits.objects.filter(user_id=user_id, storage_used__isnull=True).update(storage_used=recount(user_id))
    return True


def _release(account: Q, freed: int) -> None:
    if freed:
        AccountLimits.objects.filter(account, storage_used__isnull=False).update(storage_used=F("storage_used") - freed)


def _hold(document_id: uuid.UUID) -> None:
    """Take the document's row for the rest of the transaction (a write: SQLite takes its lock at
    once, not on a later write that would fail instead of waiting)."""
    Document.objects.filter(pk=document_id).update(version=F("version"))


def _sum(rows: QuerySet, what: Any) -> int:
    return rows.aggregate(n=Sum(what))["n"] or 0


def _exceeded(used: int, quota: int, more: int, *, own: bool) -> StorageQuotaExceeded:
    whose = "set for your account" if own else "BOKEHSITE_STORAGE_QUOTA"
    return StorageQuotaExceeded(
        f"this would store {more} more bytes, and your documents already take {used} of your storage quota of "
        f"{quota} bytes ({whose}); delete documents to make room", quota=quota, used=used)
