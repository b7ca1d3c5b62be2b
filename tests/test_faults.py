"""Faults with real processes: two Daphnes on a PostgreSQL and a Redis of this module's own, behind
round-robin TCP balancers, with a producer streaming and viewers on both. A Daphne is killed
with ``kill -9``, Redis and PostgreSQL are stopped and started again, the channel layer drops
messages; nothing acknowledged is lost, nothing is applied twice, and every viewer ends with the
server's document.

Every process here is this module's own and is killed and restarted by its id; the machine's
own PostgreSQL and Redis are never touched.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pathlib import Path
import psycopg
import pytest
import requests
from bokeh.document import Document as BokehDocument
from bokeh.plotting import figure

from bokehsite.client import Session
from bokehsite.client.follower import Follower
from bokehsite.client.outbox import MAX_IN_FLIGHT
from tests.helpers import state, wait_until
from tests.servers import ROOT, Balancer, DaphneServer, ThrowawayPostgres, ThrowawayRedis, postgres_bindir

IN_CI = os.environ.get("CI") == "true"
pytestmark = [pytest.mark.faults, pytest.mark.daphne, pytest.mark.timeout(150)]


@pytest.fixture(scope="module")
def services():
    """A PostgreSQL and a Redis of this module's own, with a migrated database."""
    missing = [name for name, ok in (("PostgreSQL's server programs", postgres_bindir()),
                                     ("redis-server", subprocess.run(["which", "redis-server"], capture_output=True).returncode == 0))
               if not ok]
    if missing:
        if IN_CI:
            pytest.fail(f"the fault tests need {' and '.join(missing)}")
        pytest.skip(f"the fault tests need {' and '.join(missing)}")
    postgres = ThrowawayPostgres().start()
    redis = ThrowawayRedis().start()
    env = {"DATABASE_URL": postgres.create_database("faults"), "REDIS_URL": redis.url,
           "SECRET_KEY": secrets.token_urlsafe(40), "DJANGO_SETTINGS_MODULE": "bokehsite.settings",
           "BOKEHSITE_DATA_DIR": str(postgres.root / "var")}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT,
                   env={**os.environ, **env}, check=True, timeout=120)
    yield postgres, redis, env
    redis.kill()
    postgres.cleanup()


@dataclass
class Cluster:
    """Two Daphnes; producers come through one balancer, viewers through another."""

    postgres: ThrowawayPostgres
    redis: ThrowawayRedis
    env: dict[str, str]
    servers: list[DaphneServer]
    producers: Balancer
    viewers: Balancer
    stack: ExitStack = field(default_factory=ExitStack)

    def server_on(self, port: int) -> DaphneServer:
        return next(server for server in self.servers if server.port == port)

    def stored(self, title: str) -> tuple[int, list[str]]:
        """The stored version of ``title`` and the keys of its logged changes, from the database."""
        with psycopg.connect(self.env["DATABASE_URL"]) as connection:
            version, document_id = connection.execute(
                "SELECT version, id FROM documents_document WHERE title = %s", [title]).fetchone()
            keys = [k for (k,) in connection.execute(
                "SELECT key FROM documents_event WHERE document_id = %s AND key <> ''", [document_id])]
        return version, keys


@pytest.fixture
def cluster(services, request):
    postgres, redis, env = services
    extra = getattr(request, "param", {})
    with ExitStack() as stack:
        servers = [DaphneServer(env={**env, **extra}).launch() for _ in range(2)]
        for server in servers:
            stack.callback(server.stop)
            server.wait_listening()
        producers = stack.enter_context(Balancer([s.port for s in servers]))
        viewers = stack.enter_context(Balancer([s.port for s in servers]))
        yield Cluster(postgres, redis, {**env, **extra}, servers, producers, viewers)
        Path("/tmp/fault-logs").mkdir(exist_ok=True)
        for i, server in enumerate(servers):
            Path(f"/tmp/fault-logs/{request.node.name}-{i}.log").write_text(server.output())
        for server in servers:
            log = server.output()
            assert "Traceback" not in log or "kill" in request.node.name, log[-3000:]


# --- what every fault test does ------------------------------------------------------------------


def line_plot(title: str) -> BokehDocument:
    p = figure(width=400, height=300)
    p.line(x=np.zeros(0), y=np.zeros(0), name="ex_line")
    doc = BokehDocument(title=title)
    doc.add_root(p)
    return doc


class Producer:
    """A script streaming one point at a time into a line, through the producers' balancer."""

    def __init__(self, cluster: Cluster, title: str):
        self.title = title
        self.session = Session(cluster.producers.url)
        self.session.use_doc(title)
        self.doc = line_plot(title)
        self.session.push(self.doc)
        self.source = self.doc.get_model_by_name("ex_line").data_source
        self.sent = 0

    def stream(self, count: int, pause: float = 0.002) -> None:
        for _ in range(count):
            self.source.stream({"x": [float(self.sent)], "y": [float(self.sent % 7)]})
            self.sent += 1
            time.sleep(pause)

    @property
    def acked(self) -> int:
        return self.session._link.acked

    def push(self, timeout: float = 60) -> int:
        return self.session._link.flush(timeout)


async def follow(cluster: Cluster, title: str, count: int) -> list[Follower]:
    followers = [Follower(Session(cluster.viewers.url), title) for _ in range(count)]
    for follower in followers:
        await follower.__aenter__()
    return followers


async def converge(followers: list[Follower], version: int) -> list[BokehDocument]:
    for follower in followers:
        await follower.wait_for(version, timeout=30)
    docs = [follower.doc for follower in followers]
    for follower in followers:
        await follower.__aexit__(None, None, None)
    return docs


def check_nothing_lost_or_repeated(cluster: Cluster, producer: Producer, followed: list[BokehDocument]) -> dict[str, Any]:
    """Every point the producer streamed is stored exactly once, in order; every viewer agrees."""
    version, keys = cluster.stored(producer.title)
    stored = Session(cluster.viewers.url).load_document(producer.title)
    xs = stored.get_model_by_name("ex_line").data_source.data["x"]
    assert list(np.asarray(xs)) == [float(i) for i in range(producer.sent)], "lost or repeated points"
    assert not [key for key, n in Counter(keys).items() if n > 1], "a change was stored twice"
    assert state(stored) == state(producer.doc)
    for doc in followed:
        assert state(doc) == state(producer.doc)
    return {"version": version, "changes": len(keys)}


def run(scenario: Callable[[], Any]) -> Any:
    return asyncio.run(scenario())


# --- the faults ------------------------------------------------------------------------------------


def test_kill_9_of_the_producers_process_with_unacknowledged_changes_loses_nothing(cluster):
    producer = Producer(cluster, "killed mid-stream")

    async def scenario():
        followers = await follow(cluster, producer.title, 4)  # two on each process
        await asyncio.to_thread(producer.stream, 60)
        await asyncio.to_thread(producer.push)
        (victim,) = cluster.producers.websocket_ports()
        # The way back from the producer's process is cut: it goes on storing what arrives, but
        # its acknowledgements wait in the network when it dies.
        cluster.producers.hold_replies(victim)
        acked = producer.acked
        await asyncio.to_thread(producer.stream, 30)
        await asyncio.to_thread(wait_until, lambda: cluster.stored(producer.title)[0] - acked >= MAX_IN_FLIGHT, 20)
        stored_unacked = cluster.stored(producer.title)[0] - producer.acked
        cluster.server_on(victim).kill()
        await asyncio.to_thread(producer.stream, 60)
        version = await asyncio.to_thread(producer.push)
        return stored_unacked, await converge(followers, version)

    stored_unacked, followed = run(scenario)
    assert stored_unacked >= MAX_IN_FLIGHT  # the window this test is about did happen
    check_nothing_lost_or_repeated(cluster, producer, followed)


def test_a_follower_idle_for_a_minute_on_redis_stays_connected(cluster):
    producer = Producer(cluster, "idle")
    opened = []

    async def scenario():
        (follower,) = await follow(cluster, producer.title, 1)
        original = follower.connection.on_open

        async def counting(hello):
            opened.append(time.monotonic())
            await original(hello)

        follower.connection.on_open = counting
        await asyncio.sleep(61)
        await asyncio.to_thread(producer.stream, 3)
        return await converge([follower], await asyncio.to_thread(producer.push))

    followed = run(scenario)
    assert opened == []  # never reconnected
    check_nothing_lost_or_repeated(cluster, producer, followed)


def test_a_redis_restart_mid_stream_loses_nothing(cluster):
    producer = Producer(cluster, "redis restarted")

    async def scenario():
        followers = await follow(cluster, producer.title, 4)
        streaming = asyncio.create_task(asyncio.to_thread(producer.stream, 300, 0.01))
        await asyncio.sleep(1)
        cluster.redis.kill()
        await asyncio.sleep(1)
        cluster.redis.start()
        await streaming
        version = await asyncio.to_thread(producer.push)
        return await converge(followers, version)

    check_nothing_lost_or_repeated(cluster, producer, run(scenario))


def test_stopping_postgresql_gives_clear_errors_and_recovers_by_itself(cluster):
    producer = Producer(cluster, "database stopped")
    refused = {}

    async def scenario():
        followers = await follow(cluster, producer.title, 2)
        await asyncio.to_thread(producer.stream, 50)
        await asyncio.to_thread(producer.push)
        cluster.postgres.stop()
        # The script goes on; what it sends waits, unacknowledged, and nothing is acknowledged
        # that is not stored.
        acked = producer.acked
        await asyncio.to_thread(producer.stream, 20)
        await asyncio.sleep(2)
        assert producer.acked == acked
        answer = await asyncio.to_thread(requests.put, f"{cluster.producers.url}api/documents/{producer.session.info['id']}/",
                                         json={"title": "x"}, timeout=30)
        refused.update(status=answer.status_code, body=answer.json())
        cluster.postgres.start()
        await asyncio.to_thread(producer.stream, 50)
        version = await asyncio.to_thread(producer.push)
        return await converge(followers, version)

    followed = run(scenario)
    assert refused["status"] == 503 and refused["body"]["error"] == "unavailable", refused
    check_nothing_lost_or_repeated(cluster, producer, followed)


# Room for one message per process, and groups renewed (and versions checked) every second.
@pytest.mark.parametrize("cluster", [{"BOKEHSITE_CHANNEL_CAPACITY": "1", "BOKEHSITE_GROUP_EXPIRY": "3"}],
                         indirect=True)
def test_viewers_that_the_layer_drops_messages_for_catch_up_from_the_log(cluster):
    producer = Producer(cluster, "dropped")

    async def scenario():
        followers = await follow(cluster, producer.title, 4)
        await asyncio.to_thread(producer.stream, 10)
        await asyncio.to_thread(producer.push)
        # The process that is not the producer's stalls: with room for one message, the layer
        # drops what else it sends that process meanwhile, up to the very last change.
        (busy,) = cluster.producers.websocket_ports()
        stalled = next(server for server in cluster.servers if server.port != busy)
        stalled.pause()
        try:
            await asyncio.to_thread(producer.stream, 40)
            version = await asyncio.to_thread(producer.push)
        finally:
            stalled.resume()
        return await converge(followers, version)

    followed = run(scenario)
    assert "channels over capacity" in "".join(server.output() for server in cluster.servers)  # it did drop
    check_nothing_lost_or_repeated(cluster, producer, followed)
