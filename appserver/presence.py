"""Who is looking at an app session: each browser connection to a session's document counts
(its host's own does not), so that a session with none left for the unused-session lifetime
ends (``appserver.consumers``)."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from django.db.models import F
from django.utils import timezone

from appserver.hosts import is_host
from appserver.models import AppSession
from documents.models import Document, Kind


def counts(scope: dict[str, Any], document: Document) -> bool:
    """Whether this connection is a viewer of an app session."""
    return document.kind == Kind.SESSION and not is_host(scope)


@database_sync_to_async
def joined(document: Document) -> None:
    AppSession.objects.filter(document_id=document.pk).update(viewers=F("viewers") + 1, last_active=timezone.now())


@database_sync_to_async
def left(document: Document) -> None:
    AppSession.objects.filter(document_id=document.pk, viewers__gt=0).update(
        viewers=F("viewers") - 1, last_active=timezone.now())
