"""What an operator wants to see of a running server, for the staff page ``/admin/health/``
(``bokehsite.views.operator_health``): versions, the processes and their connections, the
database, the channel layer, Chromium and the disk.

Each section is read from where the server already keeps it: ``ServerProcess`` leases and
``ConnectionPlace`` rows (``streaming.limits``), ``AppHost`` rows (``appserver.hosts``), the
rows' own byte counts, and this process's memory. Nothing here changes anything.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import bokeh
import django
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Count, Sum
from django.db.models.functions import Length
from django.utils import timezone

from appserver.hosts import LEASE
from appserver.limits import resident_memory
from appserver.models import AppHost
from bokehsite import health
from datasets.models import Dataset
from documents import images
from documents.exceptions import ExportFailed
from documents.models import Event, EventKind, Snapshot, Thumbnail
from streaming import limits
from streaming.models import ConnectionPlace, ServerProcess


@dataclass
class Report:
    versions: dict[str, str]
    processes: dict[str, Any]
    database: dict[str, Any]
    channel_layer: dict[str, str]
    chromium: dict[str, Any]
    disk: dict[str, Any]


def report() -> Report:
    """Every section; a database that does not answer leaves the sections that need it empty."""
    database = database_status()
    up = database["reachable"]
    return Report(versions=versions(database_version() if up else "unreachable"),
                  processes=processes() if up else {},
                  database=database, channel_layer=channel_layer(), chromium=chromium(),
                  disk=disk(up))


def versions(database: str) -> dict[str, str]:
    return {"bokehsite": importlib.metadata.version("bokehsite"), "Django": django.get_version(),
            "Bokeh": bokeh.__version__, "Python": platform.python_version(), "Database": database}


def database_version() -> str:
    """The database server's name and version, as it reports them."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            return f"PostgreSQL {cursor.fetchone()[0]}"
        if connection.vendor == "sqlite":
            cursor.execute("SELECT sqlite_version()")
            return f"SQLite {cursor.fetchone()[0]}"
    return connection.display_name


def database_status() -> dict[str, Any]:
    """Whether a ``SELECT 1`` succeeds, and how long it took."""
    status: dict[str, Any] = {"vendor": connection.display_name, "name": str(settings.DATABASES["default"]["NAME"])}
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        return {**status, "reachable": False, "error": f"{type(error).__name__}: {error}"}
    return {**status, "reachable": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def processes() -> dict[str, Any]:
    """The server processes and app hosts alive now, with their connections and sessions.

    A server process is known to the others only while it holds websockets (it then renews a
    ``ServerProcess`` lease, and each connection has a ``ConnectionPlace``): this one's own count
    comes from its memory; the others' from their rows.
    """
    now = timezone.now()
    places = dict(ConnectionPlace.objects.values_list("process").annotate(n=Count("id")).values_list("process", "n"))
    servers = [{"id": str(row.id), "this": row.id == limits.PROCESS, "expires": row.expires,
                "connections": places.get(row.id, 0)}
               for row in ServerProcess.objects.filter(expires__gt=now).order_by("expires")]
    if not any(server["this"] for server in servers):
        servers.insert(0, {"id": str(limits.PROCESS), "this": True, "expires": None, "connections": 0})
    for server in servers:
        if server["this"]:
            server.update(connections=limits.open_connections(), pid=os.getpid(), memory=resident_memory())
    since = now - timedelta(seconds=LEASE)
    hosts = [{"machine": host.machine, "pid": host.pid, "apps": host.apps, "memory": host.memory,
              "sessions": host.running, "accepting": host.accepting, "connected": bool(host.channel_name),
              "started": host.started, "renewed": host.renewed}
             for host in AppHost.objects.filter(renewed__gte=since).annotate(running=Count("sessions"))
             .order_by("machine", "pid")]
    return {"servers": servers, "app_hosts": hosts}


def channel_layer() -> dict[str, str]:
    """The layer's backend, and the outcome of ``/healthz``'s check of it."""
    backend = settings.CHANNEL_LAYERS["default"]["BACKEND"]
    return {"backend": backend, "status": async_to_sync(health.outcome)("channel_layer")}


@functools.lru_cache(maxsize=4)
def _chromium_version(path: str) -> str:
    try:
        run = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unknown ({type(error).__name__})"
    return run.stdout.strip() or f"unknown (exit status {run.returncode})"


def chromium() -> dict[str, Any]:
    """The Chromium that draws exports and thumbnails: found, its version, what it is used for."""
    path = settings.BOKEHSITE_CHROMIUM
    reason = images.unavailable()
    found = Path(path).exists()
    return {"path": path, "found": found, "version": _chromium_version(path) if found else "",
            "exports": reason or "available", "thumbnails": settings.BOKEHSITE_THUMBNAILS and reason is None,
            "renderer": _renderer()}


def _renderer() -> dict[str, Any] | None:
    try:
        return images.status()
    except ExportFailed as error:  # it stopped, or did not answer (and was stopped): shown, not a broken page
        return {"pid": "?", "error": str(error)}


def disk(database_up: bool = True) -> dict[str, Any]:
    """Bytes stored for documents (snapshots, the change log, thumbnails, in the database) and
    datasets (their files), and the room left where the data directory and the datasets live."""
    stored: dict[str, Any] = {}
    if database_up:
        documents = (_sum(Snapshot.objects.all(), "stored_size")
                     + _sum(Event.objects.filter(kind=EventKind.PATCH), "size")
                     + _sum(Thumbnail.objects.all(), Length("png")))
        stored = {"documents": documents, "datasets": _sum(Dataset.objects.all(), "bytes")}
    places = {"data directory": Path(settings.DATA_DIR), "datasets directory": Path(settings.BOKEHSITE_DATASET_DIR)}
    room = {}
    for name, path in places.items():
        try:
            usage = shutil.disk_usage(_existing(path))
        except OSError:
            continue
        room[name] = {"path": str(path), "free": usage.free, "total": usage.total}
    return {"stored": stored, "room": room}


def _sum(rows, what) -> int:
    return rows.aggregate(n=Sum(what))["n"] or 0


def _existing(path: Path) -> Path:
    """``path``, or its nearest parent that exists (a directory made on first use may not yet)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
