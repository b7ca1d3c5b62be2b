"""App sessions, the domain side: opening one for a page, storing what its app built, the
viewers it has, ending it, and saving it as an ordinary plot.

A session's document is stored through the one write path (``documents.services``) like any
other, as kind "session", owned by the viewer (an anonymous visitor's belongs to the apps
account), and seen through a key that only the page that opened it holds.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bokeh.core.serialization import Buffer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.http import HttpRequest
from django.utils import timezone

from appserver import hosts, presence
from appserver.exceptions import NoSuchSession, TooManySessions
from appserver.models import AppHost, AppSession, Viewer
from documents import replay, services
from documents.models import Document, Kind
from streaming import broadcast

logger = logging.getLogger("appserver")
# Who owns the sessions of anonymous visitors (public apps in multi-user mode).
APPS_ACCOUNT = "bokehsite-apps"
# Request headers an app never sees: the viewer's credentials for this server.
HIDDEN_HEADERS = {"cookie", "authorization", "x-csrftoken"}
# Seconds after which a session not yet built never will be (its page gave up long before).
STARTING_AT_MOST = 300
# Seconds a new session's page has to connect its frame (load BokehJS, fetch the document)
# before the session may count as unused: a short unused lifetime must not end it before then.
FIRST_VIEWER_GRACE = 10
# Why a session ended, as its page says it ("This session has ended: ...").
UNUSED = "nobody had it open"
HOST_STOPPED = "the app process running this session stopped"


@dataclass(frozen=True)
class Opened:
    """A session just opened: the row, and the key its page (and only its page) holds."""

    session: AppSession
    key: str


def open_session(app: str, viewer: AbstractBaseUser | AnonymousUser, request: HttpRequest) -> Opened:
    """A new session of ``app`` for ``viewer``, not yet built.

    Raises:
        TooManySessions: this viewer has ``BOKEHSITE_MAX_SESSIONS`` (``appserver.hosts.pick``
            bounds each host's).
    """
    limit = settings.BOKEHSITE_MAX_SESSIONS
    user = viewer if viewer.is_authenticated else None
    if limit and user is not None and AppSession.objects.filter(user=user).count() >= limit:
        raise TooManySessions(f"you have {limit} app sessions open, the most BOKEHSITE_MAX_SESSIONS allows; "
                              "close some pages first", limit="per_user", maximum=limit)
    session = AppSession.objects.create(app=app, user=user, request=request_info(request, user))
    return Opened(session, secrets.token_urlsafe(32))


def request_info(request: HttpRequest, user: AbstractBaseUser | None) -> dict[str, Any]:
    """What the app sees of the page request (``session_context.request``)."""
    return {
        "arguments": {name: request.GET.getlist(name) for name in request.GET},
        "cookies": {name: value for name, value in request.COOKIES.items() if name not in _our_cookies()},
        "headers": {name: value for name, value in request.headers.items() if name.lower() not in HIDDEN_HEADERS},
        "user": user.get_username() if user is not None else None,
        "path": request.path,
        "uri": request.get_full_path(),
        "remote_ip": request.META.get("REMOTE_ADDR"),
    }


def _our_cookies() -> set[str]:
    """The cookies that are the viewer's credentials here: an app never sees them."""
    return {settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME}


def store_built(session_id: str, host: AppHost, key: str, doc_json: Any, buffers: list[Buffer],
                page: str | None = None) -> Document:
    """Store the document ``host`` built for the session (``page``: the app's own page, if it has
    a template); it runs there from now on.

    A host that sends the same session again (its answer was lost with a server process that
    died) gets the document stored the first time.

    Raises:
        NoSuchSession: the session ended meanwhile (its page gave up waiting, say).
    """
    with transaction.atomic():
        session = AppSession.objects.select_for_update(of=("self",)).select_related("document").filter(id=session_id).first()
        if session is not None and session.document is not None and session.host_id == host.id:
            return session.document
        if session is None or session.document is not None:
            raise NoSuchSession("no such session waiting to be built")
        owner = session.user or apps_account()
        title = f"{session.app} session {str(session.id)[:8]}"
        # The host serialized it with Bokeh (appserver.running) and checked its nesting.
        document = services.create_document(owner, title, doc_json, buffers, kind=Kind.SESSION, secret_key=key,
                                            canonical=True, page=page or "")
        session.document, session.host, session.state = document, host, AppSession.State.RUNNING
        session.last_active = timezone.now()
        session.save(update_fields=["document", "host", "state", "last_active"])
    return document


def discard(session_id: str) -> None:
    """A session that never started (its app failed, or no host built it)."""
    AppSession.objects.filter(id=session_id, document=None).delete()


def end(session: AppSession, *, reason: str) -> None:
    """End a session: its document and row go, and its viewers' pages say ``reason``."""
    logger.info("session %s of %s ended: %s", session.id, session.app, reason)
    if session.document_id is not None:
        broadcast.document_ended(session.document_id, reason)  # before the deletion's own announcement
        services.delete_document(session.document)
    else:
        session.delete()


def running_on(host_id: Any, session_id: str) -> AppSession | None:
    return AppSession.objects.select_related("document").filter(host_id=host_id, id=session_id).first()


def unused(host_id: Any) -> list[AppSession]:
    """Sessions of the host with no viewer for ``BOKEHSITE_UNUSED_SESSION_LIFETIME``."""
    lifetime = settings.BOKEHSITE_UNUSED_SESSION_LIFETIME
    now = timezone.now()
    watched = Viewer.objects.filter(session=OuterRef("pk"), renewed__gte=now - presence.viewer_lease())
    return list(AppSession.objects.select_related("document").filter(
        host_id=host_id, last_active__lt=now - timedelta(seconds=lifetime),
        started__lt=now - timedelta(seconds=max(lifetime, FIRST_VIEWER_GRACE)), state=AppSession.State.RUNNING)
        .exclude(Exists(watched)))


def end_orphans() -> None:
    """End the sessions whose host died (its lease lapsed), and forget hosts gone for long and
    sessions whose page stopped waiting for them to start."""
    AppSession.objects.filter(document=None, started__lt=timezone.now() - timedelta(seconds=STARTING_AT_MOST)).delete()
    for host in hosts.lapsed():
        for session in of_host(host.id):
            end(session, reason=HOST_STOPPED)
        if host.renewed < timezone.now() - timedelta(hours=1):
            host.delete()


def of_host(host_id: Any) -> list[AppSession]:
    return list(AppSession.objects.select_related("document").filter(host_id=host_id))


def save_as_plot(document: Document, user: AbstractBaseUser, title: str) -> Document:
    """A copy of a session's current state as an ordinary document of ``user``.

    Raises:
        NoSuchSession: ``document`` is not an app session's.
        TitleTaken, StorageQuotaExceeded: as ``documents.services.create_document``.
    """
    if document.kind != Kind.SESSION:
        raise NoSuchSession("this document is not an app session")
    doc_json, buffers = replay.at(document.id, document.version).json()
    return services.create_document(user, title, doc_json, buffers)


def apps_account() -> AbstractBaseUser:
    """The account that owns anonymous visitors' sessions; nobody can log in as it."""
    user, created = get_user_model().objects.get_or_create(username=APPS_ACCOUNT)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user
