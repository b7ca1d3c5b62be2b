"""Who is looking at an app session: each browser connection to a session's document counts
(its host's own does not), so that a session with none left for the unused-session lifetime
ends (``appserver.consumers``)."""

from __future__ import annotations

from channels.db import database_sync_to_async
from django.db.models import F
from django.utils import timezone

from appserver.models import AppSession
from documents.models import Document, Kind


def counts(document: Document, *, from_app_host: bool) -> bool:
    """Whether a connection to ``document`` is a viewer of an app session."""
    return document.kind == Kind.SESSION and not from_app_host


@database_sync_to_async
def joined(document: Document) -> None:
    AppSession.objects.filter(document_id=document.pk).update(viewers=F("viewers") + 1, last_active=timezone.now())


@database_sync_to_async
def left(document: Document) -> None:
    AppSession.objects.filter(document_id=document.pk, viewers__gt=0).update(
        viewers=F("viewers") - 1, last_active=timezone.now())
