"""This process's figures for Prometheus: what it holds open, stores, relays and answers.

``GET /metrics`` (``bokehsite.views.metrics``) answers them in Prometheus's text format, only
to a scraper that presents ``BOKEHSITE_METRICS_TOKEN`` as a bearer token or comes from an
address in ``BOKEHSITE_METRICS_ALLOW``; with neither setting there is no endpoint (404) and
nothing is measured, so the hot paths cost one test of ``enabled()``.

Counters and histograms are observed in this process's memory only, never with a query. Every
sample carries ``process`` (host name and pid): each Daphne process reports its own figures, and
a scraper adds them up (``sum without (process)``). Prometheus's multiprocess mode is not used: it
needs its directory set in the environment before ``prometheus_client`` is imported and cleaned
when a worker dies, and its gauges of live connections would need per-process files anyway;
processes on their own ports, scraped one by one, need none of that (see README, "Metrics").

What is figured at scrape time (app sessions, from the database; the thumbnail queue; the
database and channel-layer checks of ``bokehsite.health``) is read by ``refresh``.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import socket
import time
from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric

from accounts.credentials import Credentials

PROCESS = f"{socket.gethostname()}:{os.getpid()}"
CONTENT_TYPE = CONTENT_TYPE_LATEST

registry = CollectorRegistry()
ProcessCollector(namespace="bokehsite", registry=registry)  # CPU seconds, memory, open files

# Seconds: a change waits for a batch's commit (milliseconds), a view for its computation.
_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

CONNECTIONS = Gauge("bokehsite_connections", "Open websocket connections of this process, by kind: viewer (a page "
                    "of this site), script (a Python session), app_session (an app session's document), embed "
                    "(another site's page).", ["kind"], registry=registry)
APP_SESSIONS = Gauge("bokehsite_app_sessions", "App sessions open on the whole site (read from the database).",
                     registry=registry)
CHANGES_STORED = Counter("bokehsite_changes_stored", "Changes to documents this process stored.", registry=registry)
CHANGE_SECONDS = Histogram("bokehsite_change_store_seconds", "From receiving a change to its commit.",
                           buckets=_LATENCY, registry=registry)
BROADCAST_LAG = Histogram("bokehsite_broadcast_lag_seconds", "From a change's commit (in any process) to its relay "
                          "to one of this process's connections.", buckets=_LATENCY, registry=registry)
VIEWS_SERVED = Counter("bokehsite_views_served", "Views of dataset-backed sources sent.", registry=registry)
VIEW_SECONDS = Histogram("bokehsite_view_seconds", "From a view's request to its answer.", buckets=_LATENCY,
                         registry=registry)
THUMBNAIL_QUEUE = Gauge("bokehsite_thumbnail_queue", "Documents waiting for their thumbnail to be drawn.",
                        registry=registry)
ERRORS = Counter("bokehsite_errors", "Error answers (HTTP and websocket), by error code.", ["code"], registry=registry)
HEALTHY = Gauge("bokehsite_healthy", "1 when the check passes (bokehsite.health, as /healthz), else 0.", ["check"],
                registry=registry)


def enabled() -> bool:
    """Whether figures are kept: a scraper may read them."""
    return bool(settings.BOKEHSITE_METRICS_TOKEN or settings.BOKEHSITE_METRICS_ALLOW)


# --- observed where things happen (cheap: memory only) ------------------------------------------


def connection_opened(kind: str) -> str | None:
    """Count an open connection; what to pass to ``connection_closed`` (None: not counted)."""
    if not enabled():
        return None
    CONNECTIONS.labels(kind).inc()
    return kind


def connection_closed(kind: str | None) -> None:
    if kind is not None:
        CONNECTIONS.labels(kind).dec()


def changes_stored(received: Iterable[float]) -> None:
    """Changes committed; ``received``: when each arrived (``time.monotonic()``)."""
    if not enabled():
        return
    now = time.monotonic()
    for start in received:
        CHANGES_STORED.inc()
        CHANGE_SECONDS.observe(now - start)


def relayed(committed: float | None) -> None:
    """A change committed at ``committed`` (``time.time()``, the committing process's) was relayed."""
    if committed is not None and enabled():
        BROADCAST_LAG.observe(max(time.time() - committed, 0.0))


def view_served(requested: float) -> None:
    """A view asked for at ``requested`` (``time.monotonic()``) was sent."""
    if enabled():
        VIEWS_SERVED.inc()
        VIEW_SECONDS.observe(time.monotonic() - requested)


def error_answered(code: str) -> None:
    if enabled():
        ERRORS.labels(code).inc()


# --- read when scraped ---------------------------------------------------------------------


def _app_sessions() -> int:
    # Here, not at the top: bokehsite.errors imports this module, and must not load an app's models.
    from appserver.models import AppSession

    return AppSession.objects.count()


async def refresh() -> None:
    """Read the figures that are not counted as they happen."""
    from channels.db import database_sync_to_async

    from bokehsite import health
    from documents import thumbnails

    checks = await health.run_checks()
    for name, outcome in checks.items():
        HEALTHY.labels(name).set(1 if outcome == "ok" else 0)
    THUMBNAIL_QUEUE.set(thumbnails.waiting())
    if checks.get("database") == "ok":
        APP_SESSIONS.set(await database_sync_to_async(_app_sessions)())


class _ProcessLabelled:
    """The registry's metrics, each sample labelled with this ``process``."""

    def collect(self) -> Iterator[Metric]:
        for metric in registry.collect():
            metric.samples = [s._replace(labels={**s.labels, "process": PROCESS}) for s in metric.samples]
            yield metric


def exposition() -> bytes:
    return generate_latest(_ProcessLabelled())


# --- who may read them ------------------------------------------------------------------------


def token_matches(presented: str | None) -> bool:
    """``presented``: the bearer secret (``Credentials.bearer``)."""
    expected = settings.BOKEHSITE_METRICS_TOKEN
    return bool(expected) and presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


def address_allowed(address: str | None) -> bool:
    try:
        client = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    # The settings checked each one when the server started.
    return any(client in ipaddress.ip_network(network, strict=False) for network in settings.BOKEHSITE_METRICS_ALLOW)


def check(request: Any) -> None:
    """Let the scraper in, or raise: ``NotFound`` without either setting, ``Unauthorized`` without
    credentials where a token would do, ``Forbidden`` for a wrong token or an address not allowed.
    The address is the client's as the login throttle decides it (``BOKEHSITE_TRUSTED_PROXIES``)."""
    from rest_framework.throttling import BaseThrottle

    from bokehsite import errors

    if not enabled():
        raise errors.NotFound(f"no endpoint at {request.path}")
    credentials = Credentials.from_request(request)
    if token_matches(credentials.bearer):
        return
    if settings.BOKEHSITE_METRICS_ALLOW and address_allowed(BaseThrottle().get_ident(request)):
        return
    if credentials.authorization:
        raise errors.Forbidden("the metrics token is not valid", field="Authorization")
    if settings.BOKEHSITE_METRICS_TOKEN:
        raise errors.Unauthorized("the metrics need Authorization: Bearer <BOKEHSITE_METRICS_TOKEN>",
                                  field="Authorization")
    raise errors.Forbidden("this address may not read the metrics (BOKEHSITE_METRICS_ALLOW)")
