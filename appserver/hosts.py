"""The app hosts the server knows: who may be one (the host key), which are alive, and which
takes a new session.

A host proves itself with the host key, derived from ``SECRET_KEY``, so that every server
process (and every host it starts) agrees on it with nothing more to configure.
"""

from __future__ import annotations

import functools
import hmac
import random
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count
from django.utils import timezone
from django.utils.crypto import salted_hmac

from appserver.exceptions import TooManySessions
from appserver.models import AppHost, AppSession
from bokehsite import protocol

# Seconds a host counts as alive after its consumer last renewed it (each second): a server
# process that died leaves its hosts' rows behind, and no page should wait on them. Long enough
# for a host to connect again through another server process, on a busy machine.
LEASE = 10.0


def lapsed() -> list[AppHost]:
    """Hosts whose lease has lapsed (their server process, or they, died)."""
    return list(AppHost.objects.filter(renewed__lt=timezone.now() - timedelta(seconds=LEASE)))


def host_key() -> str:
    return _host_key(settings.SECRET_KEY)


@functools.lru_cache(maxsize=1)
def _host_key(secret: str) -> str:  # once per SECRET_KEY: every websocket that opens asks is_host
    return salted_hmac("bokehsite.appserver.host", "app host", secret=secret, algorithm="sha256").hexdigest()


def is_host(scope: dict[str, Any]) -> bool:
    """Whether a websocket connection is an app host's (it presents the host key)."""
    presented = dict(scope.get("headers", [])).get(protocol.APP_HOST_HEADER.lower().encode(), b"")
    return bool(presented) and hmac.compare_digest(presented, host_key().encode())


def register(host_id: str, channel_name: str, *, pid: int, machine: str, apps: list[str]) -> AppHost:
    """A host has connected (or connected again, through whichever server process)."""
    host, _ = AppHost.objects.update_or_create(
        id=uuid.UUID(host_id),
        defaults={"channel_name": channel_name, "pid": pid, "machine": machine[:200], "apps": apps,
                  "renewed": timezone.now()})
    return host


def renew(host_id: uuid.UUID, channel_name: str) -> None:
    AppHost.objects.filter(id=host_id, channel_name=channel_name).update(renewed=timezone.now())


def load(host_id: uuid.UUID, channel_name: str, *, memory: int, accepting: bool) -> None:
    """What the host reported of itself: its resident memory, and whether it takes new sessions
    (not once past ``BOKEHSITE_APP_MEMORY_LIMIT``, or with a callback it could not stop)."""
    AppHost.objects.filter(id=host_id, channel_name=channel_name).update(memory=max(memory, 0), accepting=accepting)


def disconnected(host_id: uuid.UUID, channel_name: str) -> None:
    """Its control socket closed: it takes no new sessions until it connects again (through any
    server process). Its sessions go on; they end only if its lease lapses."""
    AppHost.objects.filter(id=host_id, channel_name=channel_name).update(channel_name="")


def live() -> list[AppHost]:
    """The hosts whose control socket is open and whose lease has not lapsed."""
    since = timezone.now() - timedelta(seconds=LEASE)
    return list(AppHost.objects.exclude(channel_name="").filter(renewed__gte=since)
                .annotate(running=Count("sessions")).order_by("running", "started"))


def place(app: str, session_id: uuid.UUID) -> AppHost | None:
    """Give the session to the live host with the fewest sessions (starting ones too) that runs
    ``app`` and takes new ones, one of them at random when several have as few; None when no
    live host runs it.

    Raises:
        TooManySessions: every host that runs it is full: it has ``BOKEHSITE_MAX_SESSIONS``, or
            it takes no new sessions (past ``BOKEHSITE_APP_MEMORY_LIMIT``, say).
    """
    running = [host for host in live() if app in host.apps]
    if not running:
        return None
    taking = [host for host in running if host.accepting]
    if not taking:
        memory = settings.BOKEHSITE_APP_MEMORY_LIMIT
        raise TooManySessions(f"every app process that runs {app} is full: over its memory limit ({memory} MiB, "
                              "BOKEHSITE_APP_MEMORY_LIMIT), or running a callback it could not stop; it takes no new "
                              "sessions, and a fresh one takes its place once its sessions have ended; try again "
                              "shortly", limit="memory", maximum=memory)
    limit = settings.BOKEHSITE_MAX_SESSIONS
    if limit and taking[0].running >= limit:
        raise TooManySessions(f"every app process runs {limit} session{'s' if limit != 1 else ''}, the most "
                              "BOKEHSITE_MAX_SESSIONS allows; try again when some have ended",
                              limit="per_process", maximum=limit)
    # Pages that open at once all see the same counts: a random one of the least busy spreads them.
    host = random.choice([h for h in taking if h.running == taking[0].running])
    AppSession.objects.filter(id=session_id).update(host=host)
    return host


def channel_of(host_id: uuid.UUID) -> str | None:
    """Where the host's control socket hears the channel layer now ("" while it reconnects);
    None once its lease has lapsed (it is gone)."""
    since = timezone.now() - timedelta(seconds=LEASE)
    return AppHost.objects.filter(id=host_id, renewed__gte=since).values_list("channel_name", flat=True).first()
