"""Fault scenarios with real processes, for the fault tests and ``bench/faults.py``.

A ``Cluster`` is two Daphnes on a PostgreSQL and a Redis of its own (``tests.servers``), with
producers coming through one round-robin balancer and viewers through another. Each scenario
streams points into a line from a ``Producer`` script, does one fault to the cluster, and
returns an ``Outcome``: what was lost or stored twice, whether every viewer ended with the
stored document, how long recovery took, and what the clients saw meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
import requests
from bokeh.document import Document as BokehDocument
from bokeh.plotting import figure

from bokehsite import protocol
from bokehsite.client import Session
from bokehsite.client.follower import Follower
from bokehsite.client.outbox import MAX_IN_FLIGHT
from tests.helpers import state, wait_until
from tests.servers import ROOT, Balancer, DaphneServer, ThrowawayPostgres, ThrowawayRedis, postgres_bindir


def missing_programs() -> list[str]:
    """The server programs the scenarios need that this machine lacks."""
    found = {"PostgreSQL's server programs (initdb)": postgres_bindir() is not None,
             "redis-server": subprocess.run(["which", "redis-server"], capture_output=True).returncode == 0}
    return [name for name, ok in found.items() if not ok]


@contextmanager
def services_for_tests() -> Iterator[tuple[ThrowawayPostgres, ThrowawayRedis, dict[str, str]]]:
    """``services()`` for a test module: skipped where the programs are missing (failed in CI)."""
    import pytest

    if missing := missing_programs():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the fault tests need {' and '.join(missing)}")
        pytest.skip(f"the fault tests need {' and '.join(missing)}")
    with services() as running:
        yield running


@contextmanager
def services() -> Iterator[tuple[ThrowawayPostgres, ThrowawayRedis, dict[str, str]]]:
    """A PostgreSQL and a Redis of their own, and the environment of servers on a migrated database."""
    postgres = ThrowawayPostgres().start()
    redis = ThrowawayRedis().start()
    try:
        env = {"DATABASE_URL": postgres.create_database("faults"), "REDIS_URL": redis.url,
               "SECRET_KEY": secrets.token_urlsafe(40), "DJANGO_SETTINGS_MODULE": "bokehsite.settings",
               "BOKEHSITE_DATA_DIR": str(postgres.root / "var")}
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT,
                       env={**os.environ, **env}, check=True, timeout=120)
        yield postgres, redis, env
    finally:
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

    def logs(self) -> list[str]:
        return [server.output() for server in self.servers]


@contextmanager
def cluster(postgres: ThrowawayPostgres, redis: ThrowawayRedis, env: dict[str, str],
            extra: dict[str, str] | None = None) -> Iterator[Cluster]:
    env = {**env, **(extra or {})}
    with ExitStack() as stack:
        servers = [DaphneServer(env=env).launch() for _ in range(2)]  # both start at once
        for server in servers:
            stack.callback(server.stop)
            server.wait_listening()
        producers = stack.enter_context(Balancer([s.port for s in servers]))
        viewers = stack.enter_context(Balancer([s.port for s in servers]))
        yield Cluster(postgres, redis, env, servers, producers, viewers)


# --- the actors ---------------------------------------------------------------------------------


def line_plot(title: str) -> BokehDocument:
    p = figure(width=400, height=300)
    p.line(x=np.zeros(0), y=np.zeros(0), name="ex_line")
    doc = BokehDocument(title=title)
    doc.add_root(p)
    return doc


@dataclass
class Seen:
    """What the clients of a scenario saw: reconnections and error messages."""

    reconnects: int = 0
    errors: Counter = field(default_factory=Counter)

    def watch(self, connection: Any) -> None:
        """Count what happens on ``connection`` from now on (it has opened already)."""
        opened, received = connection.on_open, connection.on_message

        async def on_open(hello: protocol.Hello) -> None:
            self.reconnects += 1
            await opened(hello)

        async def on_message(message: protocol.Message, buffers: list) -> None:
            if isinstance(message, protocol.Error):
                self.errors[message.code] += 1
            await received(message, buffers)

        connection.on_open, connection.on_message = on_open, on_message


class Producer:
    """A script streaming one point at a time into a line, through the producers' balancer."""

    def __init__(self, cluster: Cluster, title: str, seen: Seen):
        self.title = title
        self.session = Session(cluster.producers.url)
        self.session.use_doc(title)
        self.doc = line_plot(title)
        self.session.push(self.doc)
        link = self.session._sync
        link.flush()  # connect now, so that what ``seen`` counts are reconnections
        wait_until(lambda: link.connection.is_open, 30)
        seen.watch(link.connection)
        self.source = self.doc.get_model_by_name("ex_line").data_source
        self.sent = 0

    def stream(self, count: int, pause: float = 0.002) -> None:
        for _ in range(count):
            self.source.stream({"x": [float(self.sent)], "y": [float(self.sent % 7)]})
            self.sent += 1
            time.sleep(pause)

    @property
    def acked(self) -> int:
        return self.session._sync.acked

    def push(self, timeout: float = 60) -> int:
        return self.session._sync.flush(timeout)


async def follow(cluster: Cluster, title: str, count: int, seen: Seen) -> list[Follower]:
    followers = []
    for _ in range(count):  # the balancer spreads them over both processes
        follower = Follower(Session(cluster.viewers.url), title)
        await follower.__aenter__()
        seen.watch(follower.connection)
        followers.append(follower)
    return followers


async def caught_up(followers: list[Follower], version: int) -> None:
    for follower in followers:
        await follower.wait_for(version, timeout=30)


async def leave(followers: list[Follower]) -> list[BokehDocument]:
    for follower in followers:
        await follower.__aexit__(None, None, None)
    return [follower.doc for follower in followers]


@dataclass
class Outcome:
    """What a scenario did and what came of it."""

    fault: str
    points: int = 0  # the producer streamed this many
    lost: int = 0  # streamed, acknowledged, not stored
    repeated: int = 0  # stored more than once (points, or logged keys)
    diverged: int = 0  # viewers whose document is not the stored one
    recover_s: float = 0.0  # from the end of the fault until every change made before it reached every viewer
    seen: Seen = field(default_factory=Seen)
    notes: dict[str, Any] = field(default_factory=dict)


async def settle(cluster: Cluster, producer: Producer, followers: list[Follower], outcome: Outcome,
                 fault_over: float) -> Outcome:
    """After the fault: time the recovery, stream a little more, then compare everything."""
    version = await asyncio.to_thread(producer.push)
    await caught_up(followers, version)
    outcome.recover_s = time.monotonic() - fault_over
    await asyncio.to_thread(producer.stream, 20)
    version = await asyncio.to_thread(producer.push)
    await caught_up(followers, version)
    followed = await leave(followers)
    _, keys = cluster.stored(producer.title)
    stored = Session(cluster.viewers.url).load_document(producer.title)
    xs = [float(x) for x in stored.get_model_by_name("ex_line").data_source.data["x"]]
    outcome.points = producer.sent
    outcome.lost = len(set(range(producer.sent)) - set(map(int, xs)))
    outcome.repeated = len(xs) - len(set(xs)) + sum(n - 1 for n in Counter(keys).values())
    outcome.notes["in order"] = xs == [float(i) for i in range(producer.sent)]
    outcome.notes["stored is the script's"] = state(stored) == state(producer.doc)
    outcome.diverged = sum(state(doc) != state(stored) for doc in followed)
    return outcome


# --- the scenarios ------------------------------------------------------------------------------


async def kill_9(cluster: Cluster) -> Outcome:
    """``kill -9`` of the producer's process while it has stored changes it could not acknowledge."""
    outcome = Outcome("kill -9 of the producer's process")
    producer = Producer(cluster, "killed mid-stream", outcome.seen)
    followers = await follow(cluster, producer.title, 4, outcome.seen)
    await asyncio.to_thread(producer.stream, 60)
    await asyncio.to_thread(producer.push)
    (victim,) = cluster.producers.websocket_ports()
    # The way back from the producer's process is cut: it goes on storing what arrives, but its
    # acknowledgements are lost with it.
    cluster.producers.hold_replies(victim)
    acked = producer.acked
    await asyncio.to_thread(producer.stream, 30)
    await asyncio.to_thread(wait_until, lambda: cluster.stored(producer.title)[0] - acked >= MAX_IN_FLIGHT, 20)
    outcome.notes["stored, not acknowledged"] = cluster.stored(producer.title)[0] - producer.acked
    cluster.server_on(victim).kill()
    over = time.monotonic()
    await asyncio.to_thread(producer.stream, 40)
    return await settle(cluster, producer, followers, outcome, over)


async def idle_minute(cluster: Cluster, seconds: float = 61) -> Outcome:
    """A follower that hears nothing for a minute, on Redis."""
    outcome = Outcome(f"a follower idle for {seconds:g} s on Redis")
    producer = Producer(cluster, "idle", outcome.seen)
    followers = await follow(cluster, producer.title, 1, outcome.seen)
    await asyncio.sleep(seconds)
    over = time.monotonic()
    await asyncio.to_thread(producer.stream, 3)
    return await settle(cluster, producer, followers, outcome, over)


async def redis_restart(cluster: Cluster) -> Outcome:
    """Redis killed mid-stream and started again a second later."""
    outcome = Outcome("Redis killed and restarted mid-stream")
    producer = Producer(cluster, "redis restarted", outcome.seen)
    followers = await follow(cluster, producer.title, 4, outcome.seen)
    streaming = asyncio.create_task(asyncio.to_thread(producer.stream, 300, 0.01))
    await asyncio.sleep(1)
    cluster.redis.kill()
    await asyncio.sleep(1)
    cluster.redis.start()
    over = time.monotonic()
    await streaming
    return await settle(cluster, producer, followers, outcome, over)


async def postgres_stop(cluster: Cluster, seconds: float = 3) -> Outcome:
    """PostgreSQL stopped mid-stream for a few seconds: clear errors, no false acknowledgement."""
    outcome = Outcome(f"PostgreSQL stopped for {seconds:g} s mid-stream")
    producer = Producer(cluster, "database stopped", outcome.seen)
    followers = await follow(cluster, producer.title, 2, outcome.seen)
    await asyncio.to_thread(producer.stream, 50)
    await asyncio.to_thread(producer.push)
    cluster.postgres.stop()
    stopped = time.monotonic()
    acked = producer.acked
    await asyncio.to_thread(producer.stream, 20)
    answer = await asyncio.to_thread(
        requests.patch, f"{cluster.producers.url}api/documents/{producer.session.info['id']}/", json={"title": "x"},
        timeout=30)
    outcome.notes["REST write while it was down"] = (answer.status_code, answer.json().get("error"))
    await asyncio.sleep(max(0.0, seconds - (time.monotonic() - stopped)))
    outcome.notes["acknowledged while it was down"] = producer.acked - acked
    cluster.postgres.start()
    over = time.monotonic()
    await asyncio.to_thread(producer.stream, 50)
    return await settle(cluster, producer, followers, outcome, over)


async def dropped_messages(cluster: Cluster) -> Outcome:
    """A process stalls while the layer has room for one message: it drops the rest, the last
    change included. Run it on a cluster with ``BOKEHSITE_CHANNEL_CAPACITY=1``."""
    outcome = Outcome("the channel layer drops messages (capacity 1, a process stalled)")
    producer = Producer(cluster, "dropped", outcome.seen)
    followers = await follow(cluster, producer.title, 4, outcome.seen)
    await asyncio.to_thread(producer.stream, 10)
    await asyncio.to_thread(producer.push)
    (busy,) = cluster.producers.websocket_ports()
    stalled = next(server for server in cluster.servers if server.port != busy)
    stalled.pause()
    try:
        await asyncio.to_thread(producer.stream, 40)
        await asyncio.to_thread(producer.push)
    finally:
        stalled.resume()
    over = time.monotonic()
    outcome = await settle(cluster, producer, followers, outcome, over)
    outcome.notes["layer dropped messages"] = "channels over capacity" in "".join(cluster.logs())
    return outcome


# The layer has room for one message per process; groups are renewed and versions checked every second.
DROPPING = {"BOKEHSITE_CHANNEL_CAPACITY": "1", "BOKEHSITE_GROUP_EXPIRY": "3", "BOKEHSITE_GROUP_RENEW": "1"}
