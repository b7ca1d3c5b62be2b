"""The document list's thumbnails: each document drawn small, in the background.

A thumbnail is the PNG export (drawn by the renderer, ``documents.images``: one kept Chromium in
a process of its own at the lowest CPU priority) shrunk with Pillow to ``WIDTH`` pixels wide,
stored with the version it shows. One worker thread per process asks for them, one at a time,
from a bounded set of documents waiting (one entry per document, whatever asks again), so that a
request never waits for Chromium.

A thumbnail is drawn when a page first shows it (the list, or the picture's own address) and
again when a page shows it stale; and at once when the content of a document whose thumbnail
exists is replaced (a push, a restore: ``signals.content_stored``). A new document, a stream's
changes or an account's import cost nothing until somebody looks: a drawing costs about a second
of CPU (a fresh browser context and page reading the standalone export, BokehJS inline), so a
script that pushes a hundred plots does not buy a hundred of them. One that keeps changing is redrawn at most once every
``BOKEHSITE_THUMBNAIL_INTERVAL`` seconds. Until a thumbnail is drawn, or when it cannot be (no
Chromium, or the document did not draw), pages show ``PLACEHOLDER``.
"""

from __future__ import annotations

import io
import logging
import threading
import time
import uuid
from collections import OrderedDict
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, close_old_connections
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from bokehsite.errors import Unavailable
from documents import images, quota, services, signals
from documents.exceptions import DocumentNotFound, ExportUnavailable, HistoryTruncated
from documents.models import Document, Thumbnail

logger = logging.getLogger(__name__)

WIDTH = 320
MAX_HEIGHT = 640  # a very tall layout is cut, not squeezed
MAX_WAITING = 1000  # documents waiting to be drawn; beyond, a page that shows one asks again
_REMEMBERED = 10_000  # when this process last drew each of this many documents

PLACEHOLDER = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="200" viewBox="0 0 320 200">'
    '<rect width="320" height="200" fill="#f3f4f6"/>'
    '<path d="M40 160 V40 M40 160 H280" stroke="#c4c8cf" stroke-width="3" fill="none"/>'
    '<path d="M52 140 L100 100 L150 120 L200 70 L260 90" stroke="#c4c8cf" stroke-width="5" fill="none" '
    'stroke-linecap="round" stroke-linejoin="round"/>'
    '<text x="160" y="188" font-family="sans-serif" font-size="14" fill="#8a8f98" text-anchor="middle">'
    "no preview</text></svg>"
)


def url(document: Document) -> str:
    """The thumbnail's address for pages, naming the version drawn so that a browser's cached
    copy is used until a newer one is drawn."""
    thumbnail = _stored(document)
    drawn = thumbnail.version if thumbnail is not None and thumbnail.png != b"" else 0
    return reverse("documents:thumbnail", args=[document.id]) + f"?v={drawn}"


def is_stale(document: Document) -> bool:
    """Whether the document has no thumbnail of its current version (drawn, or tried and failed)."""
    thumbnail = _stored(document)
    return thumbnail is None or thumbnail.version != document.version


def refresh(documents: list[Document]) -> None:
    """Queue the documents whose thumbnails are stale (what a page shows)."""
    for document in documents:
        if is_stale(document):
            schedule(document.id, document.version)


def picture(document: Document) -> tuple[bytes, int] | None:
    """The stored PNG and the version it shows, or None (the placeholder is due); a stale one is
    queued to be drawn again."""
    thumbnail = Thumbnail.objects.filter(document=document).first()
    if thumbnail is None or thumbnail.version != document.version:
        schedule(document.id, document.version)
    if thumbnail is None or not thumbnail.png:
        return None
    return bytes(thumbnail.png), thumbnail.version


def _stored(document: Document) -> Thumbnail | None:
    try:
        return document.thumbnail
    except Thumbnail.DoesNotExist:
        return None


def schedule(document_id: uuid.UUID, version: int | None = None) -> bool:
    """Queue the document to be drawn (no sooner than the interval after this process last drew
    it), unless a thumbnail of ``version`` (what a page saw stale) is drawn meanwhile. Never
    waits; False when thumbnails are off, cannot be drawn, or too many wait."""
    if not settings.BOKEHSITE_THUMBNAILS or images.unavailable():
        return False
    return _worker.schedule(document_id, version)


def shrink(png: bytes) -> bytes:
    """``png`` scaled to ``WIDTH`` pixels wide (never up), cut at ``MAX_HEIGHT``."""
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        if image.width > WIDTH:
            height = max(1, round(image.height * WIDTH / image.width))
            image = image.resize((WIDTH, height), Image.Resampling.LANCZOS)
        if image.height > MAX_HEIGHT:
            image = image.crop((0, 0, image.width, MAX_HEIGHT))
        out = io.BytesIO()
        image.save(out, "PNG", optimize=True)
        return out.getvalue()


def draw(document_id: uuid.UUID, wanted: int | None = None) -> Thumbnail | None:
    """Draw the document's thumbnail now, if it is stale (and older than the version ``wanted``,
    when given), and store it (an empty one if it did not draw). None when there is nothing to do
    or it cannot be drawn here."""
    document = Document.objects.filter(pk=document_id).first()
    if document is None or not is_stale(document):
        return None
    if wanted is not None and (thumbnail := _stored(document)) is not None and thumbnail.version >= wanted:
        return None  # asked for a version drawn since: a later change waits for a page to show it stale
    version = document.version
    try:
        drawn_version, chunks = services.export_document(document, "png", version)
        png = shrink(b"".join(chunks))
    except (ExportUnavailable, Unavailable):  # no Chromium, or too many drawings: a page asks again
        return None
    except (DocumentNotFound, HistoryTruncated):
        return None  # deleted or changed while we drew: the next change or page asks again
    except Exception as e:  # the document's code failed, it took too long, or Pillow refused it
        logger.warning("thumbnail of document %s version %s not drawn: %s", document_id, version, e)
        png = b""
    if not Document.objects.filter(pk=document_id).exists():
        return None
    with quota.thumbnail_replaced(document_id, len(png)):
        return _store(document_id, version, png)


def _store(document_id: uuid.UUID, version: int, png: bytes) -> Thumbnail | None:
    """Keep the thumbnail, in single statements: on SQLite a transaction that reads and then writes
    fails at once ("database is locked") while a request writes, where one statement waits."""
    fields = {"version": version, "png": png, "drawn": timezone.now()}
    if not Thumbnail.objects.filter(document_id=document_id).update(**fields):
        try:
            return Thumbnail.objects.create(document_id=document_id, **fields)
        except IntegrityError:  # another process stored one meanwhile, or the document went
            Thumbnail.objects.filter(document_id=document_id).update(**fields)
    return Thumbnail.objects.filter(document_id=document_id).first()


class _Worker:
    """The one thread of this process that draws thumbnails, and the documents it waits to draw."""

    def __init__(self) -> None:
        self._waiting: dict[uuid.UUID, float] = {}  # document -> when it may be drawn (monotonic)
        self._wanted: dict[uuid.UUID, int | None] = {}  # document -> the version asked for (None: the newest)
        self._drawn: OrderedDict[uuid.UUID, float] = OrderedDict()  # document -> when this process drew it
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None

    def schedule(self, document_id: uuid.UUID, version: int | None = None) -> bool:
        with self._condition:
            if document_id in self._waiting:
                wanted = self._wanted.get(document_id)
                self._wanted[document_id] = None if version is None or wanted is None else max(wanted, version)
                return True
            if len(self._waiting) >= MAX_WAITING:
                return False
            last = self._drawn.get(document_id)
            now = time.monotonic()
            self._waiting[document_id] = now if last is None else max(now, last + settings.BOKEHSITE_THUMBNAIL_INTERVAL)
            self._wanted[document_id] = version
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="thumbnails", daemon=True)
                self._thread.start()
            self._condition.notify()
        return True

    def waiting(self) -> int:
        with self._condition:
            return len(self._waiting)

    def _next(self) -> tuple[uuid.UUID, int | None]:
        with self._condition:
            while True:
                if self._waiting:
                    document_id, due = min(self._waiting.items(), key=lambda item: item[1])
                    wait = due - time.monotonic()
                    if wait <= 0:
                        del self._waiting[document_id]
                        return document_id, self._wanted.pop(document_id, None)
                    self._condition.wait(wait)
                else:
                    self._condition.wait()

    def _run(self) -> None:
        while True:
            document_id, wanted = self._next()
            try:
                close_old_connections()
                later = _drawn_elsewhere_until(document_id)
                if later is not None:  # another process drew it a moment ago
                    self._defer(document_id, later, wanted)
                    continue
                draw(document_id, wanted)
            except Exception:  # the database went away, say: this thread must go on for the next one
                logger.exception("drawing the thumbnail of document %s failed", document_id)
            finally:
                self._remember(document_id)
                close_old_connections()

    def _defer(self, document_id: uuid.UUID, seconds: float, wanted: int | None) -> None:
        with self._condition:
            if document_id not in self._waiting:
                self._waiting[document_id], self._wanted[document_id] = time.monotonic() + seconds, wanted

    def _remember(self, document_id: uuid.UUID) -> None:
        with self._condition:
            self._drawn[document_id] = time.monotonic()
            self._drawn.move_to_end(document_id)
            while len(self._drawn) > _REMEMBERED:
                self._drawn.popitem(last=False)


def _drawn_elsewhere_until(document_id: uuid.UUID) -> float | None:
    """Seconds to wait when the stored thumbnail was drawn less than the interval ago (by any
    process), else None."""
    interval = settings.BOKEHSITE_THUMBNAIL_INTERVAL
    drawn = Thumbnail.objects.filter(document_id=document_id).values_list("drawn", flat=True).first()
    if drawn is None:
        return None
    left = (drawn + timedelta(seconds=interval) - timezone.now()).total_seconds()
    return left if left > 0 else None


_worker = _Worker()


def waiting() -> int:
    """How many documents wait for their thumbnail to be drawn in this process."""
    return _worker.waiting()


@receiver(signals.content_stored, dispatch_uid="documents.thumbnails")
def _content_stored(sender: Any, document_id: uuid.UUID, **kwargs: Any) -> None:
    # A picture somebody has seen is kept current; a new document waits until a page shows it.
    if settings.BOKEHSITE_THUMBNAILS and Thumbnail.objects.filter(document_id=document_id).exists():
        schedule(document_id)
