"""Who is looking at an app session: each browser connection to a session's document is a
``Viewer`` row (its host's own connection is not), so that a session with none left for the
unused-session lifetime ends (``appserver.consumers``).

A server process renews its viewers' rows every ``BOKEHSITE_GROUP_RENEW`` seconds; a process
that died (``kill -9``) leaves rows that nobody renews, and they stop counting after
``VIEWER_LEASE``. A page that reconnects through another process counts there at once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from appserver.models import AppSession, Viewer
from bokehsite.process_task import ProcessTask
from documents.models import Document, Kind

logger = logging.getLogger("appserver")
db = database_sync_to_async
PROCESS = uuid.uuid4()  # this server process, in Viewer.process
_here: set[str] = set()  # channel names of this process's viewers


def viewer_lease() -> timedelta:
    """How long a viewer's row counts after it was last renewed."""
    return timedelta(seconds=3 * settings.BOKEHSITE_GROUP_RENEW)


def counts(document: Document, *, from_app_host: bool) -> bool:
    """Whether a connection to ``document`` is a viewer of an app session."""
    return document.kind == Kind.SESSION and not from_app_host


async def joined(document: Document, channel_name: str) -> None:
    await db(_join)(document.pk, channel_name)
    _here.add(channel_name)
    _renewing.ensure()


async def left(document: Document, channel_name: str) -> None:
    _here.discard(channel_name)
    await db(_leave)(document.pk, channel_name)


def _join(document_id: uuid.UUID, channel_name: str) -> None:
    now = timezone.now()
    session = AppSession.objects.filter(document_id=document_id).values_list("id", flat=True).first()
    if session is not None:
        Viewer.objects.create(session_id=session, channel_name=channel_name, process=PROCESS, renewed=now)
        AppSession.objects.filter(id=session).update(last_active=now)


def _leave(document_id: uuid.UUID, channel_name: str) -> None:
    Viewer.objects.filter(channel_name=channel_name).delete()
    AppSession.objects.filter(document_id=document_id).update(last_active=timezone.now())


def _renew() -> None:
    Viewer.objects.filter(process=PROCESS).update(renewed=timezone.now())


async def _renew_while_watched() -> None:
    while _here:
        await asyncio.sleep(settings.BOKEHSITE_GROUP_RENEW)
        try:
            # On a database thread of its own: behind the stored changes of a busy server, rows
            # renewed late would lapse, and watched sessions would end as unused.
            await database_sync_to_async(_renew, thread_sensitive=False)()
        except Exception:  # the database is away, say: rows count for the lease meanwhile
            logger.warning("renewing this process's app viewers failed; it tries again", exc_info=True)


_renewing = ProcessTask(_renew_while_watched)


def viewers(session: AppSession) -> int:
    """How many browsers are connected to ``session`` now."""
    return session.viewer_rows.filter(renewed__gte=timezone.now() - viewer_lease()).count()
