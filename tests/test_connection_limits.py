"""Connection limits: per account across server processes, per anonymous client address, per
process. Past one, a connection is told which limit (``too_many_connections``) and closed with 4429;
a place comes back when its connection closes, or when the process holding it dies."""

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time

import pytest
import websockets
from django.conf import settings

from accounts.tokens import create_token
from accounts.users import default_user
from bokehsite import protocol
from bokehsite.client import Session, TooManyConnections
from bokehsite.client.follower import Follower
from documents import services
from streaming.models import ConnectionPlace
from tests.apps_helpers import apps_database  # noqa: F401  (a fixture)
from tests.helpers import closed_with, communicator, receive, run, stored_line, wait_until
from tests.servers import ROOT, DaphneServer, database_url

LIMITS = ("BOKEHSITE_MAX_CONNECTIONS_PER_USER", "BOKEHSITE_MAX_CONNECTIONS_PER_PROCESS")


def limits_from(tmp_path, **env: str) -> subprocess.CompletedProcess:
    """The two limits as the settings read them from ``env``, printed by a fresh process."""
    code = f"import django; from django.conf import settings; django.setup(); print([getattr(settings, n) for n in {LIMITS}])"
    base = {k: v for k, v in os.environ.items() if k not in LIMITS}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**base, "DJANGO_SETTINGS_MODULE": "bokehsite.settings", "BOKEHSITE_DATA_DIR": str(tmp_path), **env})


def test_the_limits_have_defaults_come_from_the_environment_and_refuse_nonsense(tmp_path):
    assert limits_from(tmp_path).stdout.strip() == "[200, 10000]"
    set_ = limits_from(tmp_path, BOKEHSITE_MAX_CONNECTIONS_PER_USER="0", BOKEHSITE_MAX_CONNECTIONS_PER_PROCESS="5")
    assert set_.stdout.strip() == "[0, 5]"
    for name, value, says in ((LIMITS[0], "lots", "must be an integer"), (LIMITS[1], "-1", "must be 0 or more")):
        result = limits_from(tmp_path, **{name: value})
        assert result.returncode != 0 and f"{name} {says}" in result.stderr


pytestmark = pytest.mark.django_db(transaction=True)


async def open_from(path: str, address: str, headers=()):
    """A websocket to the ASGI application from the client ``address``, and its first message."""
    socket = communicator(path, headers)
    socket.scope["client"] = (address, 40000)
    connected, _ = await socket.connect()
    assert connected
    return socket, await receive(socket)


async def refused(socket, first: dict) -> tuple[str, str, int]:
    """The refusal's code, its limit, and the close code."""
    assert first["type"] == "error", first
    return first["code"], first["limit"], await closed_with(socket)


def test_a_process_holds_at_most_its_limit_and_a_closed_connection_frees_its_place(settings):
    settings.BOKEHSITE_MAX_CONNECTIONS_PER_PROCESS = 2
    stored, _, _ = stored_line(default_user())
    path = protocol.path(stored.id)

    async def scenario():
        first, hello = await open_from(path, "10.0.0.1")
        second, _ = await open_from(path, "10.0.0.2")
        assert hello["type"] == "hello", hello
        third, error = await open_from(path, "10.0.0.3")
        assert await refused(third, error) == ("too_many_connections", "per_process", 4429)
        assert error["maximum"] == 2 and "BOKEHSITE_MAX_CONNECTIONS_PER_PROCESS" in error["detail"]
        await first.disconnect()
        again, hello = await open_from(path, "10.0.0.3")
        assert hello["type"] == "hello"
        for socket in (second, again, third):
            await socket.disconnect()

    run(scenario)


@pytest.mark.usefixtures("multi_user")
def test_anonymous_viewers_are_counted_by_their_address(alice, settings):
    settings.BOKEHSITE_MAX_CONNECTIONS_PER_USER = 2
    stored, _, _ = stored_line(alice)
    services.publish(stored)
    path = protocol.path(stored.id)

    async def scenario():
        opened = [(await open_from(path, "10.0.0.1"))[0] for _ in range(2)]
        # Without a trusted proxy, what a client writes in X-Forwarded-For changes nothing.
        forged, error = await open_from(path, "10.0.0.1", [(b"x-forwarded-for", b"192.0.2.9")])
        assert await refused(forged, error) == ("too_many_connections", "per_address", 4429)
        elsewhere, hello = await open_from(path, "10.0.0.2")
        assert hello["type"] == "hello"
        for socket in (*opened, forged, elsewhere):
            await socket.disconnect()

    run(scenario)


@pytest.mark.usefixtures("multi_user")
def test_behind_a_trusted_proxy_the_address_it_appended_counts(alice, settings):
    settings.BOKEHSITE_MAX_CONNECTIONS_PER_USER = 1
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    stored, _, _ = stored_line(alice)
    services.publish(stored)
    path = protocol.path(stored.id)

    def via_proxy(client: str):
        return open_from(path, "127.0.0.1", [(b"x-forwarded-for", f"203.0.113.7, {client}".encode())])

    async def scenario():
        first, hello = await via_proxy("198.51.100.1")
        other, other_hello = await via_proxy("198.51.100.2")
        assert (hello["type"], other_hello["type"]) == ("hello", "hello")
        again, error = await via_proxy("198.51.100.1")
        assert await refused(again, error) == ("too_many_connections", "per_address", 4429)
        for socket in (first, other, again):
            await socket.disconnect()

    run(scenario)


# --- across real server processes ------------------------------------------------------------------

LEASE = {"BOKEHSITE_GROUP_EXPIRY": "3", "BOKEHSITE_GROUP_RENEW": "1"}


def server_env(limit: int) -> dict[str, str]:
    return {"DATABASE_URL": database_url(settings.DATABASES["default"]), "BOKEHSITE_MULTI_USER": "1",
            "BOKEHSITE_MAX_CONNECTIONS_PER_USER": str(limit), **LEASE}


async def connect(server: DaphneServer, document_id, secret: str):
    """A websocket as the token's user, and its first message."""
    ws = await websockets.connect(protocol.url(server.url, document_id),
                                  additional_headers={"Authorization": f"Token {secret}"})
    return ws, json.loads(await ws.recv())


async def refusal(server: DaphneServer, document_id, secret: str) -> tuple[str, str, int] | None:
    """How a new connection is refused, or None when it is let in (then it is closed again)."""
    ws, first = await connect(server, document_id, secret)
    if first["type"] == "hello":
        await ws.close()
        await asyncio.sleep(0.5)  # the server gives its place back once it hears the close
        return None
    with pytest.raises(websockets.exceptions.ConnectionClosed) as closing:
        await asyncio.wait_for(ws.recv(), 2)
    return first["code"], first["limit"], closing.value.rcvd.code


async def let_in_within(seconds: float, server: DaphneServer, document_id, secret: str) -> float:
    """Seconds until a new connection is let in; fails after ``seconds``."""
    start = time.monotonic()
    while await refusal(server, document_id, secret) is not None:
        assert time.monotonic() - start < seconds, f"still refused after {seconds} s"
        await asyncio.sleep(0.2)
    return time.monotonic() - start


@pytest.mark.daphne
def test_an_account_holds_at_most_its_limit_across_processes(alice, bob):
    stored, _, _ = stored_line(alice)
    services.share(stored, bob.username, "read")
    _, alices = create_token(alice, "laptop")
    _, bobs = create_token(bob, "laptop")

    async def scenario(first: DaphneServer, second: DaphneServer):
        one, hello = await connect(first, stored.id, alices)
        two, _ = await connect(first, stored.id, alices)
        assert hello["type"] == "hello"
        assert await refusal(second, stored.id, alices) == ("too_many_connections", "per_user", 4429)
        assert await refusal(second, stored.id, bobs) is None  # another account has its own
        await one.close()  # its place is given back: the other process lets a new one in
        assert await let_in_within(2, second, stored.id, alices) < 2
        await two.close()
        await asyncio.sleep(0.5)

        # The Python client stops with the server's reason instead of reconnecting.
        async with Follower(Session(first.url, token=alices), str(stored.id)):
            async with Follower(Session(second.url, token=alices), str(stored.id)):
                with pytest.raises(TooManyConnections) as refused_:
                    async with Follower(Session(second.url, token=alices), str(stored.id)):
                        pass
        error = refused_.value
        assert (error.status, error.code, error.limit, error.maximum) == (429, "too_many_connections", "per_user", 2)
        assert "BOKEHSITE_MAX_CONNECTIONS_PER_USER" in str(error)

    with DaphneServer(env=server_env(2)) as first, DaphneServer(env=server_env(2)) as second:
        asyncio.run(scenario(first, second))


@pytest.mark.daphne
def test_the_places_of_a_process_that_died_come_back_when_its_lease_lapses(alice):
    stored, _, _ = stored_line(alice)
    _, secret = create_token(alice, "laptop")

    async def scenario(doomed: DaphneServer, survivor: DaphneServer):
        held = [await connect(doomed, stored.id, secret) for _ in range(2)]
        assert all(first["type"] == "hello" for _, first in held)
        doomed.kill()  # kill -9: it gives nothing back
        assert await refusal(survivor, stored.id, secret) == ("too_many_connections", "per_user", 4429)
        waited = await let_in_within(10, survivor, stored.id, secret)
        assert waited < 3 + 2  # the lease (BOKEHSITE_GROUP_EXPIRY), and a little
        # Both places came back, and the limit still holds.
        kept = [await connect(survivor, stored.id, secret) for _ in range(2)]
        assert [first["type"] for _, first in kept] == ["hello", "hello"]
        assert await refusal(survivor, stored.id, secret) == ("too_many_connections", "per_user", 4429)
        for ws, _ in kept:
            await ws.close()

    with DaphneServer(env=server_env(2)) as doomed, DaphneServer(env=server_env(2)) as survivor:
        asyncio.run(scenario(doomed, survivor))


@pytest.mark.browser
@pytest.mark.daphne
def test_a_page_past_the_limit_says_which_and_stops(browser, page, apps_database, tmp_path):
    import shutil
    import sqlite3

    from tests.helpers import line_document, open_plot, plot_frame

    # A database of its own: the places another server holds in the tests' database (the live
    # server that other browser tests use, say) would count for this address too.
    database = tmp_path / "db.sqlite3"
    shutil.copy(apps_database, database)
    server = DaphneServer(env={"DATABASE_URL": f"sqlite:///{database}", "BOKEHSITE_MAX_CONNECTIONS_PER_USER": "1"})
    server.env.pop("REDIS_URL", None)  # one process: the in-memory channel layer serves it

    def places() -> int:
        with contextlib.closing(sqlite3.connect(database)) as db:
            return db.execute(f"SELECT COUNT(*) FROM {ConnectionPlace._meta.db_table}").fetchone()[0]

    with server:
        with Session(server.url) as session:
            session.use_doc("limited")
            url = session.push(line_document())["url"]
        wait_until(lambda: places() == 0, timeout=60)  # the pushing script's place, once its socket closed
        open_plot(page, url)
        plot_frame(page).wait_for_selector("#live-status[data-status=live]")
        other = browser.new_context().new_page()
        try:
            other.goto(url)
            frame = other.frame_locator("#plot-frame")
            frame.locator("#live-status[data-status=closed]").wait_for(timeout=15_000)
            assert frame.locator("#live-status").text_content() == "too many connections"
            assert "connections" in frame.locator("#plot").get_attribute("data-closed-reason")
            other.wait_for_timeout(2_000)  # past the first pause a reconnecting page would take
            assert frame.locator("#live-status").get_attribute("data-status") == "closed"
        finally:
            other.context.close()
        assert plot_frame(page).locator("#live-status").get_attribute("data-status") == "live"
