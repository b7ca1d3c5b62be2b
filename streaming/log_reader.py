"""A document's log as a follower on an event loop reads it (``streaming.flow.Log``).

The reads run on the database thread through ``database_sync_to_async``, which closes stale
database connections itself. ``stored_version`` is what liveness ticks compare against: one
query a document each ``BOKEHSITE_GROUP_RENEW / 2`` seconds, however many connections it has.
"""

from __future__ import annotations

import time
import uuid

from channels.db import database_sync_to_async
from django.conf import settings

from documents import services
from documents.exceptions import HistoryTruncated
from documents.models import Document, Event

db = database_sync_to_async

# The stored version of each document, as this process last read it for its connections' ticks.
_stored_versions: dict[uuid.UUID, tuple[float, int]] = {}


class StoredLog:
    def __init__(self, document: Document):
        self.document = document

    async def after(self, version: int, limit: int) -> list[Event] | None:
        try:
            return await db(services.events_after)(self.document, version, limit)
        except HistoryTruncated:
            return None

    async def whole(self) -> tuple[int, bytes]:
        return await db(services.document_bundle)(self.document)

    async def current(self) -> int:
        return await db(services.current_version)(self.document)

    async def stored_version(self) -> int:
        """The current version as this process read it at most ``BOKEHSITE_GROUP_RENEW / 2`` seconds ago."""
        now = time.monotonic()
        read = _stored_versions.get(self.document.id)
        if read is None or now - read[0] >= settings.BOKEHSITE_GROUP_RENEW / 2:
            if len(_stored_versions) > 10_000:
                _stored_versions.clear()
            read = _stored_versions[self.document.id] = (now, await self.current())
        return read[1]
