"""Changes of who may do what, announced once committed.

``access_changed`` goes out whenever something that grants access changes: a token is revoked or
deleted, a user is deactivated, deleted or logs out (here), or a document's sharing changes
(``documents.signals``). ``streaming.broadcast`` relays it to the open connections concerned, on
every server process, and each checks its access again. Pages and API requests need no telling:
they check access on every request.

The announcements come from model signals, so that the Django admin and the ORM announce as the
services do; code that writes access with ``QuerySet.update()`` must call ``announce`` itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import Signal, receiver

from accounts.models import ApiToken

# documents: ids of documents whose sharing changed; users: ids of users whose identity changed;
# sessions: keys of browser sessions that ended (a logout), which may not be gone from the store yet.
access_changed = Signal()

# Saving these fields of a user changes nothing about what their connections may do.
_HARMLESS_USER_FIELDS = frozenset({"last_login"})


def announce(*, documents: Iterable[Any] = (), users: Iterable[Any] = (), sessions: Iterable[str] = ()) -> None:
    """Send ``access_changed`` once the current transaction commits (at once outside one)."""
    documents, users, sessions = [str(d) for d in documents], list(users), [s for s in sessions if s]
    if documents or users or sessions:
        transaction.on_commit(
            lambda: access_changed.send(sender=None, documents=documents, users=users, sessions=sessions))


@receiver([post_save, post_delete], sender=ApiToken, dispatch_uid="accounts.token_access")
def _token_changed(sender: Any, instance: ApiToken, created: bool = False, **kwargs: Any) -> None:
    if not created:  # a new token grants nothing to connections already open
        announce(users=[instance.user_id])


@receiver([post_save, post_delete], sender=get_user_model(), dispatch_uid="accounts.user_access")
def _user_changed(sender: Any, instance: Any, created: bool = False, update_fields: Any = None, **kwargs: Any) -> None:
    if created or (update_fields and set(update_fields) <= _HARMLESS_USER_FIELDS):
        return
    announce(users=[instance.pk])


@receiver(user_logged_out, dispatch_uid="accounts.logout_access")
def _logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None and user.pk is not None:
        session = getattr(request, "session", None)
        announce(users=[user.pk], sessions=[getattr(session, "session_key", None) or ""])
