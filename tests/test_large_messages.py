"""Websocket messages as large as a request body: the server accepts them wherever it runs Daphne,
says its limit in ``hello``, and refuses a larger one with an error; the client splits its changes
to fit, and a single change over the limit fails at once with a clear error."""

import asyncio

import numpy as np
import pytest
from django.conf import settings

from accounts.users import default_user
from bokehsite import protocol, wire
from bokehsite.client import Session
from bokehsite.client.exceptions import ChangeTooLarge
from bokehsite.client.follower import Follower
from documents.models import Document, Event
from tests.helpers import line_document, open_socket, receive, run, stored_line
from tests.servers import DaphneServer, database_url

LIMIT = 20 * 1024 * 1024  # a million-point stream (16 MB) fits; two million do not


def stream(source, n: int, start: float = 0.0) -> None:
    x = np.arange(start, start + n, dtype=float)
    source.stream({"x": x, "y": np.sin(x / 1000)})


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("frame", ["text", "bytes"])
def test_a_message_over_the_limit_gets_an_error_and_the_connection_stays(settings, frame):
    settings.BOKEHSITE_MAX_BODY_BYTES = 100_000
    document, _, _ = stored_line(default_user())

    async def scenario():
        socket, hello = await open_socket(protocol.path(document.id))
        assert hello["max_message"] == 100_000
        message = protocol.Ping("x" * 100).to_json() | {"padding": "p" * 100_000}
        big = protocol.json.dumps(message) if frame == "text" else wire.pack(message)
        await socket.send_to(**{f"{frame}_data": big})
        error = await receive(socket)
        assert (error["type"], error["code"]) == ("error", "too_large")
        assert "100000 bytes" in error["detail"]
        await socket.send_json_to({"type": "ping", "id": "still there?"})
        assert await receive(socket) == {"type": "pong", "id": "still there?"}
        await socket.disconnect()

    run(scenario)


@pytest.fixture(scope="module")
def large_server_url(django_db_setup):
    """A real Daphne process (as servers.py starts it) that accepts bodies and messages up to LIMIT."""
    env = {"DATABASE_URL": database_url(settings.DATABASES["default"]), "BOKEHSITE_MAX_BODY_BYTES": str(LIMIT)}
    with DaphneServer(env=env) as server:
        yield server.url


def follow_while(url: str, title: str, produce):
    """Run ``produce()`` (in a thread) while a follower follows ``title``; the follower's source data
    once it has reached the version ``produce`` returns."""

    async def scenario():
        async with Follower(Session(url), title) as follower:
            version = await asyncio.to_thread(produce)
            await follower.wait_for(version, timeout=60)
            return follower.doc.get_model_by_name("ex_line").data_source.data

    return asyncio.run(scenario())


@pytest.mark.daphne
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("points", [200_000, 1_000_000])
def test_a_large_stream_is_stored_and_reaches_a_follower(large_server_url, points):
    session = Session(large_server_url)
    session.use_doc(f"stream {points}")
    doc = line_document()
    session.push(doc)
    source = doc.get_model_by_name("ex_line").data_source

    def produce():
        stream(source, points)
        return session.push()["version"]

    followed = follow_while(large_server_url, f"stream {points}", produce)
    session.close()
    assert len(followed["x"]) == 5 + points and followed["x"][-1] == points - 1
    stored = Session(large_server_url).load_document(f"stream {points}").get_model_by_name("ex_line").data_source.data
    assert len(stored["x"]) == 5 + points and np.array_equal(stored["y"][5:], np.sin(np.arange(points) / 1000))


@pytest.mark.daphne
@pytest.mark.django_db(transaction=True)
def test_changes_larger_together_than_the_limit_are_split_into_messages_that_fit(large_server_url):
    session = Session(large_server_url)
    session.use_doc("split")
    doc = line_document()
    session.push(doc)
    source = doc.get_model_by_name("ex_line").data_source
    with session._sync.outbox._cond:  # the sender waits until all are queued, so they go together
        for i in range(8):  # 8 x 3.2 MB: more than one message holds
            stream(source, 200_000, start=i * 200_000)
    session.push()
    session.close()
    events = list(Event.objects.filter(document__title="split"))
    assert [len(e.patch["events"]) for e in events] == [6, 2]  # as many as fit in 20 MB, then the rest
    assert all(len(e.buffers) < LIMIT for e in events)
    stored = Session(large_server_url).load_document("split").get_model_by_name("ex_line").data_source.data
    assert np.array_equal(stored["x"][5:], np.arange(1_600_000, dtype=float))


@pytest.mark.daphne
@pytest.mark.django_db(transaction=True)
def test_a_single_change_over_the_limit_fails_with_a_clear_error_and_the_rest_go_on(large_server_url):
    session = Session(large_server_url)
    session.use_doc("too large")
    doc = line_document()
    session.push(doc)
    source = doc.get_model_by_name("ex_line").data_source
    stream(source, 2_000_000)  # 32 MB in one change
    with pytest.raises(ChangeTooLarge) as refused:
        session.push()
    assert f"({LIMIT} bytes, its BOKEHSITE_MAX_BODY_BYTES)" in str(refused.value)
    assert refused.value.size > LIMIT and refused.value.kind == "ColumnsStreamed"
    source.stream({"x": [1.0], "y": [2.0]})
    assert session.push()["version"] == 2  # the link still works; the large change was never sent
    session.close()
    assert Document.objects.get(title="too large").version == 2


@pytest.mark.daphne
@pytest.mark.django_db(transaction=True)
def test_the_development_server_accepts_messages_as_large_as_a_body(django_db_setup):
    env = {"DATABASE_URL": database_url(settings.DATABASES["default"]), "BOKEHSITE_MAX_BODY_BYTES": str(8 * 1024 * 1024)}
    with DaphneServer(env=env, runserver=True) as server:  # manage.py runserver, as scripts/serve.sh runs it
        session = Session(server.url)
        session.use_doc("runserver")
        doc = line_document()
        session.push(doc)
        stream(doc.get_model_by_name("ex_line").data_source, 200_000)  # 3.2 MB, over Daphne's default 1 MiB
        assert session.push()["version"] == 2
        session.close()
