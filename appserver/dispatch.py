"""How a session reaches an app host and its answer comes back, through the channel layer:
whichever server process took the page asks the host's control socket (in whichever process
that is) to build the session, and waits on a channel of its own for the answer.

The answer's channel travels with the request and comes back with the host's answer, so that
any server process's control socket can deliver it. A host whose control socket moved (the
server process it was connected through died) is asked again where it is now; it answers a
session it has already built with what it built.
"""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from appserver import hosts, sessions, supervisor
from appserver.exceptions import AppFailed, NoAppHost, TooManySessions
from appserver.models import AppSession

db = database_sync_to_async
# How long a page waits for a host: to start (the first page after the server started), and
# then for the app to build its document.
HOST_START_TIMEOUT = 30.0
BUILD_TIMEOUT = 60.0
# How often a waiting page looks whether the host's control socket moved.
RECHECK = 1.0


async def build(app: str, opened: sessions.Opened, server_url: str) -> str:
    """Have a live host build the session ``opened``; returns its stored document's id.

    Raises:
        NoAppHost: no host runs the app, or none answered in time.
        TooManySessions: every host that runs it is full (``BOKEHSITE_MAX_SESSIONS``).
        AppFailed: the app raised while it built the document.
    """
    session = opened.session
    try:
        host = await _host_for(app, session, server_url)
    except (NoAppHost, TooManySessions):
        await db(sessions.discard)(str(session.id))
        raise
    layer = get_channel_layer()
    reply = await layer.new_channel()
    request = {"type": "app.create", "session": str(session.id), "app": app, "key": opened.key,
               "request": session.request, "reply": reply}
    channel = host.channel_name
    await layer.send(channel, request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BUILD_TIMEOUT
    answer = None
    while answer is None:
        try:
            answer = await asyncio.wait_for(layer.receive(reply), min(RECHECK, max(0.0, deadline - loop.time())))
        except TimeoutError:
            now_at = await db(hosts.channel_of)(host.id)
            if now_at is None or loop.time() >= deadline:
                await db(sessions.discard)(str(session.id))
                why = "stopped" if now_at is None else f"did not build a session of {app} within {BUILD_TIMEOUT:.0f} s"
                raise NoAppHost(f"the app process {why}; try again") from None
            if now_at and now_at != channel:  # it connected again, elsewhere: ask it there
                channel = now_at
                await layer.send(channel, request)
    if "failed" in answer:
        raise AppFailed(answer["failed"])
    return answer["document"]


async def answer(reply: str, **result: str) -> None:
    await get_channel_layer().send(reply, {"type": "app.answer", **result})


async def end(session: AppSession, *, reason: str) -> None:
    """Ask the session's host to end it (its hooks run there), and end it here; its page says ``reason``."""
    host = session.host
    if host is not None and host.channel_name:
        await get_channel_layer().send(host.channel_name, {"type": "app.end", "session": str(session.id)})
    await db(sessions.end)(session, reason=reason)


async def _host_for(app: str, session: AppSession, server_url: str):
    host = await db(hosts.place)(app, session.id)
    if host is not None:
        return host
    supervisor.ensure_started(server_url)  # this process's own hosts, if it starts any
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HOST_START_TIMEOUT
    while loop.time() < deadline:
        await asyncio.sleep(0.1)
        if (host := await db(hosts.place)(app, session.id)) is not None:
            return host
    raise NoAppHost(f"no app process runs {app} now; try again shortly")
