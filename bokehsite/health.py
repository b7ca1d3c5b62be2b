"""Whether this server process can do its work: reach its database and its channel layer.

``/healthz`` (``bokehsite.views.healthz``) runs every check at once, each within
``TIMEOUT`` seconds; the staff page ``/admin/health/`` (``bokehsite.operators``) runs one. Failures are named, with the exception's type only: the full error goes to
the log, since the endpoint needs no authentication.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from channels.db import database_sync_to_async
from django.db import connection

from streaming import broadcast

log = logging.getLogger(__name__)

TIMEOUT = 3.0


def _query() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def database() -> None:
    """A query on the default database."""
    await database_sync_to_async(_query)()


async def channel_layer() -> None:
    """A message published to a group, as changes are to a document's viewers, comes back."""
    await broadcast.round_trip()


CHECKS: dict[str, Callable[[], Awaitable[None]]] = {"database": database, "channel_layer": channel_layer}


async def _outcome(name: str, check: Callable[[], Awaitable[None]], timeout: float) -> str:
    try:
        await asyncio.wait_for(check(), timeout)
    except TimeoutError:
        log.error("health check %s: no answer within %s s", name, timeout)
        return f"no answer within {timeout:g} s"
    except Exception as e:
        log.exception("health check %s failed", name)
        return f"failed ({type(e).__name__})"
    return "ok"


async def outcome(name: str, timeout: float = TIMEOUT) -> str:
    """One check's outcome (a name of ``CHECKS``): ``"ok"``, or what went wrong."""
    return await _outcome(name, CHECKS[name], timeout)


async def run_checks(timeout: float = TIMEOUT) -> dict[str, str]:
    """Every check's outcome by name: ``"ok"``, or what went wrong."""
    outcomes = await asyncio.gather(*(_outcome(name, check, timeout) for name, check in CHECKS.items()))
    return dict(zip(CHECKS, outcomes))
