#!/usr/bin/env python
"""Streaming a live plot to many viewers: bokehsite against `bokeh serve` and a bare Channels relay.

One producer streams appends of 100 float64 x and 100 float64 y values (a ColumnsStreamed change
of about 2 KB) to N viewers, as fast as acknowledgements allow or at a fixed rate. The viewers
are websocket clients in this process; each server is a separate process whose CPU time is read
from /proc. With ``--baseline REF`` the same run also measures bokehsite as it was at commit REF;
with ``--baseline-env NAME=VALUE`` its baseline runs with another environment (metrics off, say).
See bench/README.md, "Streaming".

Run it from the repository root:  .venv/bin/python bench/streaming.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import websockets
from bokeh.client import push_session
from bokeh.core.serialization import Serializer
from bokeh.document import Document
from bokeh.document.events import ColumnsStreamedEvent
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure
from bokeh.protocol import Protocol
from bokeh.util.token import generate_jwt_token

from common import (  # first: puts the repository on sys.path
    ROOT, checkout, create_postgres_database, drop_postgres_database, machine, revision, server_env, stop_process,
    with_suffix,
)

from bokehsite import protocol, wire
from bokehsite.client import Session
from tests.servers import DaphneServer, free_port

POINTS = 100  # values per column in each streamed change
INITIAL_POINTS = 100
ROLLOVER = 10_000  # the servers keep at most this many points, however long a run
IN_FLIGHT = 8  # changes sent but not yet acknowledged, in saturated mode
DRAIN_S = 10.0  # after a run, how long viewers get to receive everything acknowledged
CLK_TCK = os.sysconf("SC_CLK_TCK")
REDIS_URL = "redis://127.0.0.1:6379/0"
SYSTEMS = ("bokehsite", "bokeh serve", "relay")
# The goal, checked on the saturated runs at every N.
GOAL_VS_BOKEH_THROUGHPUT = 3.0
GOAL_VS_BOKEH_P99 = 1 / 3
GOAL_VS_RELAY_THROUGHPUT = 0.5


def now() -> float:
    return time.perf_counter()


# --- the workload ------------------------------------------------------------------------------


def line_document() -> tuple[Document, ColumnDataSource]:
    """A figure with one line whose source has float64 columns x and y, and that source."""
    source = ColumnDataSource({"x": np.arange(INITIAL_POINTS, dtype=np.float64),
                               "y": np.zeros(INITIAL_POINTS)})
    plot = figure(width=800, height=400, title="stream")
    plot.line("x", "y", source=source)
    doc = Document()
    doc.add_root(plot)
    return doc, source


Y_VALUES = np.random.default_rng(0).standard_normal(POINTS)


def stream_event(doc: Document, source: ColumnDataSource, seq: int) -> ColumnsStreamedEvent:
    """Change number ``seq``: x is ``seq * POINTS, ...``, so a viewer can tell changes apart."""
    x = np.arange(seq * POINTS, (seq + 1) * POINTS, dtype=np.float64)
    return ColumnsStreamedEvent(doc, source, "data", {"x": x, "y": Y_VALUES}, rollover=ROLLOVER)


def patch_bundle(doc: Document, source: ColumnDataSource, seq: int) -> bytes:
    """A bokehsite ``patch`` message (a bundle) carrying change ``seq`` with binary arrays."""
    serializer = Serializer(references=doc.models.synced_references)
    event = serializer.encode(stream_event(doc, source, seq))
    return protocol.Patch(id=seq, patch={"events": [event]}).encode(serializer.buffers)


# --- what one run records ------------------------------------------------------------------------


@dataclass
class Trace:
    """Timestamps (``time.perf_counter`` seconds) of one run.

    Changes are numbered ``seq`` by the producer. A server names them by a key of its own (the
    version for bokehsite, ``seq`` for the others) that the acknowledgement tells.
    """

    viewers: int
    sent: dict[int, float] = field(default_factory=dict)  # seq -> send time
    acked: dict[int, tuple[float, int]] = field(default_factory=dict)  # seq -> (ack time, key)
    received: list[dict[int, float]] = field(default_factory=list)  # per viewer: key -> time
    by_snapshot: int = 0  # (viewer, change) pairs delivered by a snapshot rather than a patch
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.received = [{} for _ in range(self.viewers)]

    def missing(self) -> set[int]:
        """Acknowledged keys that at least one viewer has not received."""
        keys = {key for _, key in self.acked.values()}
        return {key for key in keys if any(key not in got for got in self.received)}


class Producer:
    """Sends numbered changes over ``ws``, at most ``IN_FLIGHT`` unacknowledged.

    Subclasses speak a server's protocol: ``_send`` sends change ``seq`` of ``source`` and
    ``read`` reports the server's answers to ``acknowledged`` or ``refused``.
    """

    def __init__(self, trace: Trace, ws: Any, doc: Document, source: ColumnDataSource):
        self.trace, self.ws, self.doc, self.source = trace, ws, doc, source
        self.window = asyncio.Semaphore(IN_FLIGHT)
        self.reader = asyncio.create_task(self.read())

    async def send(self, seq: int) -> None:
        """Send change ``seq`` once fewer than ``IN_FLIGHT`` are unacknowledged."""
        await self.window.acquire()
        self.trace.sent[seq] = now()
        await self._send(seq)

    def acknowledged(self, seq: int, key: int) -> None:
        self.trace.acked[seq] = (now(), key)
        self.window.release()

    def refused(self, seq: int | None, message: Any) -> None:
        self.trace.errors.append(f"change {seq} refused: {message}")
        self.window.release()

    async def _send(self, seq: int) -> None:
        raise NotImplementedError

    async def read(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        self.reader.cancel()
        await self.ws.close()


async def connect(url: str, **kwargs: Any) -> Any:
    """A websocket client connection without compression or a size limit, as the servers use."""
    return await websockets.connect(url, max_size=None, compression=None, open_timeout=30, **kwargs)


# --- system 1: bokehsite -----------------------------------------------------------------------


class Bokehsite:
    """``daphne bokehsite.asgi:application`` and its document websocket protocol
    (``bokehsite.protocol``); ``root`` is the checkout whose server runs."""

    def __init__(self, env: dict[str, str], name: str = "bokehsite", root: Path = ROOT):
        self.name = name
        self.server = DaphneServer(env=env, root=root)

    def start(self) -> int:
        self.server.start()
        return self.server.process.pid

    def stop(self) -> None:
        self.server.stop()

    async def new_document(self, name: str) -> None:
        """Push a fresh line document, and keep a local copy to encode changes against."""
        self.doc, self.source = line_document()
        with Session(self.server.url) as session:
            session.use_doc(name)
            info = await asyncio.to_thread(session.push, self.doc)
        self.doc.models.flush_synced()  # the server has every model: changes refer to them by id
        self.url = protocol.url(self.server.url, info["id"])

    async def _open(self) -> tuple[Any, protocol.Hello]:
        ws = await connect(self.url)
        hello, _ = protocol.decode(await ws.recv(), sender=protocol.SERVER)
        if not isinstance(hello, protocol.Hello):
            raise RuntimeError(f"{self.name} refused the connection: {hello}")
        return ws, hello

    async def open_viewer(self, trace: Trace, index: int) -> Any:
        ws, hello = await self._open()
        await ws.send(protocol.Sync(hello.version).encode())
        return ws, self._listen(ws, trace, index, hello.version, hello.window)

    async def _listen(self, ws: Any, trace: Trace, index: int, version: int, window: int) -> None:
        """Record each version as it arrives; confirm every ``window / 2`` versions."""
        got, reported = trace.received[index], version
        async for raw in ws:
            t = now()
            message, _ = protocol.decode(raw, sender=protocol.SERVER)
            if isinstance(message, protocol.Snapshot):
                for v in range(version + 1, message.version + 1):
                    got[v] = t
                trace.by_snapshot += max(0, message.version - version)
                version = max(version, message.version)
            elif isinstance(message, protocol.Patches):
                for item in message.items:
                    if item["version"] > version + 1:
                        trace.errors.append(f"viewer {index}: gap after version {version}")
                    got[item["version"]] = t
                    version = max(version, item["version"])
            else:
                trace.errors.append(f"viewer {index}: {message}")
                continue
            if version - reported >= window // 2 or isinstance(message, protocol.Snapshot):
                reported = version
                await ws.send(protocol.Applied(version).encode())

    async def open_producer(self, trace: Trace) -> Producer:
        ws, hello = await self._open()
        if hello.role != "write":
            raise RuntimeError(f"the producer may not write: {hello}")
        return BokehsiteProducer(trace, ws, self.doc, self.source)


class BokehsiteProducer(Producer):
    async def _send(self, seq: int) -> None:
        await self.ws.send(patch_bundle(self.doc, self.source, seq))

    async def read(self) -> None:
        async for raw in self.ws:
            message, _ = protocol.decode(raw, sender=protocol.SERVER)
            if isinstance(message, protocol.Ack):
                self.acknowledged(message.id, message.version)
            elif isinstance(message, protocol.Error):
                self.refused(message.id, message)


# --- baseline 2: bokeh serve ---------------------------------------------------------------------


class BokehMessages:
    """Reassembles Bokeh protocol messages from websocket frames.

    A message is a header, metadata and content (text frames), then for each of the header's
    ``num_buffers`` a text frame naming the buffer and a binary frame holding it.
    """

    def __init__(self) -> None:
        self.parts: list[Any] = []
        self.header: dict[str, Any] | None = None

    def feed(self, frame: str | bytes) -> tuple[dict[str, Any], str, dict[str, bytes]] | None:
        """The complete message ``(header, content JSON text, buffers by id)``, else None."""
        if self.header is None:
            self.header = json.loads(frame)
            self.parts = []
        else:
            self.parts.append(frame)
        if len(self.parts) < 2 + 2 * self.header.get("num_buffers", 0):
            return None
        header, self.header = self.header, None
        content, pairs = self.parts[1], self.parts[2:]
        buffers = {json.loads(pairs[i])["id"]: pairs[i + 1] for i in range(0, len(pairs), 2)}
        return header, content, buffers


def bokeh_frames(message: Any) -> list[str | bytes]:
    """The websocket frames of a Bokeh protocol message, in the order Bokeh sends them."""
    frames: list[str | bytes] = [message.header_json, message.metadata_json, message.content_json]
    for buffer in message.buffers:
        frames += [json.dumps(buffer.ref), buffer.to_bytes()]
    return frames


def streamed_seq(content: str, buffers: dict[str, bytes]) -> int:
    """The ``seq`` of the change a PATCH-DOC carries, from the first value of its x column."""
    [event] = json.loads(content)["events"]
    x = dict(event["data"]["entries"])["x"]
    return int(np.frombuffer(buffers[x["array"]["data"]["id"]], dtype=np.float64, count=1)[0]) // POINTS


class BokehServe:
    """Stock ``bokeh serve`` with an empty application; documents arrive by ``push_session``.

    The producer sends exactly the PATCH-DOC messages that a push session sends for
    ``source.stream(...)``, over its own websocket, and counts the server's OK replies (Bokeh's
    own client ignores them), so it can keep ``IN_FLIGHT`` changes outstanding like the others.
    The server replies OK only once it has written the change to every other connection.
    """

    name = "bokeh serve"

    def __init__(self) -> None:
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="bokeh-serve-", suffix=".log", delete=False)
        self.process: subprocess.Popen | None = None

    def start(self) -> int:
        origin = f"--allow-websocket-origin=127.0.0.1:{self.port}"
        self.process = start_server(
            [sys.executable, "-m", "bokeh", "serve", "--port", str(self.port), origin,
             "--unused-session-lifetime", "600000"],
            self.port, os.environ, self.log)
        return self.process.pid

    def stop(self) -> None:
        stop_server(self.process, self.log)

    async def new_document(self, name: str) -> None:
        """Push a fresh line document as session ``name``, then close the push session."""
        self.doc, self.source = line_document()
        self.session_id = name
        await asyncio.to_thread(self._push)
        self.doc.models.flush_synced()
        self.url = f"ws://127.0.0.1:{self.port}/ws"

    def _push(self) -> None:
        session = push_session(self.doc, session_id=self.session_id, url=f"http://127.0.0.1:{self.port}/")
        session.close()
        session._loop_until_closed()  # let the close go out: an unread connection would block the server

    async def _open(self) -> Any:
        ws = await connect(self.url, subprotocols=["bokeh", generate_jwt_token(self.session_id)])
        messages = BokehMessages()
        while (message := messages.feed(await ws.recv())) is None:
            pass
        if message[0]["msgtype"] != "ACK":
            raise RuntimeError(f"bokeh serve did not acknowledge the connection: {message[0]}")
        return ws

    async def open_viewer(self, trace: Trace, index: int) -> Any:
        """A viewer as BokehJS is one: it pulls the document, then receives PATCH-DOCs."""
        ws = await self._open()
        for frame in bokeh_frames(Protocol().create("PULL-DOC-REQ")):
            await ws.send(frame)
        return ws, self._listen(ws, trace, index)

    async def _listen(self, ws: Any, trace: Trace, index: int) -> None:
        got, messages = trace.received[index], BokehMessages()
        async for frame in ws:
            message = messages.feed(frame)
            if message is None:
                continue
            header, content, buffers = message
            if header["msgtype"] == "PATCH-DOC":
                got[streamed_seq(content, buffers)] = now()
            elif header["msgtype"] != "PULL-DOC-REPLY":
                trace.errors.append(f"viewer {index}: {header['msgtype']} {content[:200]}")

    async def open_producer(self, trace: Trace) -> Producer:
        return BokehProducer(trace, await self._open(), self.doc, self.source)


class BokehProducer(Producer):
    def __init__(self, *args: Any):
        self.protocol = Protocol()
        self.pending: dict[str, int] = {}  # msgid -> seq
        super().__init__(*args)

    async def _send(self, seq: int) -> None:
        message = self.protocol.create("PATCH-DOC", [stream_event(self.doc, self.source, seq)])
        self.pending[message.header["msgid"]] = seq
        for frame in bokeh_frames(message):
            await self.ws.send(frame)

    async def read(self) -> None:
        messages = BokehMessages()
        async for frame in self.ws:
            message = messages.feed(frame)
            if message is None:
                continue
            header, content, _ = message
            seq = self.pending.pop(header.get("reqid"), None)
            if header["msgtype"] == "OK" and seq is not None:
                self.acknowledged(seq, seq)
            elif header["msgtype"] == "ERROR":
                self.refused(seq, content)


# --- baseline 3: a bare Channels relay -----------------------------------------------------------


class Relay:
    """``bench/relay_asgi.py`` under Daphne: group_send of each frame, nothing else."""

    name = "relay"

    def __init__(self, env: dict[str, str]):
        self.port = free_port()
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.relay_settings", **env}
        self.log = tempfile.NamedTemporaryFile(prefix="relay-", suffix=".log", delete=False)
        self.process: subprocess.Popen | None = None

    def start(self) -> int:
        self.process = start_server(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "bench.relay_asgi:application"],
            self.port, self.env, self.log)
        return self.process.pid

    def stop(self) -> None:
        stop_server(self.process, self.log)

    async def new_document(self, name: str) -> None:
        """A fresh group; the document only serves to encode the same frames as bokehsite's."""
        self.doc, self.source = line_document()
        self.doc.models.flush_synced()
        self.url = f"ws://127.0.0.1:{self.port}/ws/relay/{name}/"

    async def open_viewer(self, trace: Trace, index: int) -> Any:
        ws = await connect(self.url)
        return ws, self._listen(ws, trace, index)

    async def _listen(self, ws: Any, trace: Trace, index: int) -> None:
        got = trace.received[index]
        async for raw in ws:
            t = now()
            header, _ = wire.unpack(raw)
            got[header["id"]] = t

    async def open_producer(self, trace: Trace) -> Producer:
        return RelayProducer(trace, await connect(self.url), self.doc, self.source)


class RelayProducer(Producer):
    def __init__(self, *args: Any):
        self.pending: deque[int] = deque()  # the relay acknowledges frames in order
        super().__init__(*args)

    async def _send(self, seq: int) -> None:
        self.pending.append(seq)
        await self.ws.send(patch_bundle(self.doc, self.source, seq))

    async def read(self) -> None:
        async for _ in self.ws:
            seq = self.pending.popleft()
            self.acknowledged(seq, seq)


# --- server processes -------------------------------------------------------------------------


def start_server(command: list[str], port: int, env: Any, log: Any, timeout: float = 30.0) -> subprocess.Popen:
    """Start ``command`` (cwd: the repository root) and wait until it listens on ``port``."""
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command} exited with {process.returncode}:\n{Path(log.name).read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    stop_server(process, log)
    raise RuntimeError(f"{command} did not listen on port {port} within {timeout} s")


def stop_server(process: subprocess.Popen | None, log: Any) -> None:
    if process is not None:
        stop_process(process)
    log.close()
    Path(log.name).unlink(missing_ok=True)


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime and stime, fields 14 and 15


def machine_busy() -> float:
    """CPU seconds all cores have spent not idle, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / CLK_TCK  # less idle and iowait


# --- where a server's time goes (with --profile) -----------------------------------------------

# What a sampled stack was doing, by the first of these markers found in it (so a commit inside
# a snapshot fold counts as the fold). Stacks that match none are "other": the thread hops of
# asgiref, asyncio and Twisted plumbing, Channels routing.
STACK_CATEGORIES = [
    ("DB connect", ["get_new_connection"]),
    ("snapshot fold", ["fold (documents/log.py"]),
    ("Bokeh apply", ["apply_json_patch"]),
    ("Bokeh serialize", ["Serializer.encode", "Protocol.create"]),
    ("DB commit", ["._commit ("]),
    ("DB queries", ["CursorWrapper.execute", "execute_sql", "Connection.wait (psycopg"]),
    ("log catch-up", ["catch_up (streaming/flow.py", "catch_up (streaming/consumers.py"]),
    ("close_old_connections hop", ["close_old_connections"]),
    ("channel layer", ["send_changes (streaming", "group_send", "ChannelLayer.receive"]),
    ("websocket send", ["sendMessage (autobahn", "write_message (tornado", "handle_reply (daphne"]),
    ("websocket receive", ["onMessage (autobahn", "on_message (bokeh", "dataReceived"]),
]


def is_idle(frames: list[str]) -> bool:
    """An event loop waiting for I/O, or a pool thread waiting for work."""
    if frames[-1].startswith("_worker (concurrent/futures/thread.py:81)"):
        return True
    return len(frames) > 1 and "select (selectors.py" in frames[-1] and "_run_once" in frames[-2]


def stack_category(frames: list[str]) -> str:
    """The category of one sampled stack (innermost frame last)."""
    if is_idle(frames):
        return "idle"
    for name, markers in STACK_CATEGORIES:
        if any(marker in frame for frame in frames for marker in markers):
            return name
    return "other"


def profile_costs(path: Path, changes_per_s: float) -> dict[str, dict[str, float]]:
    """Milliseconds of wall time per change, by thread and category, from py-spy's raw output.

    Every thread is sampled at the same rate, so the share of a thread's samples in a category
    is the share of its wall time; at ``changes_per_s``, a change takes ``1000 / changes_per_s`` ms.
    """
    samples: dict[str, dict[str, int]] = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        thread, *frames = stack.split(";")
        thread = thread.split(": ", 1)[-1].rstrip(")")
        by_category = samples.setdefault(thread, {})
        category = stack_category(frames) if frames else "idle"
        by_category[category] = by_category.get(category, 0) + int(count)
    costs = {}
    for thread, by_category in samples.items():
        scale = 1000 / max(changes_per_s, 1e-9) / sum(by_category.values())
        costs[thread] = {category: n * scale for category, n in sorted(by_category.items(), key=lambda kv: -kv[1])}
    return costs


def print_profile(costs: dict[str, dict[str, float]]) -> None:
    for thread, by_category in costs.items():
        busy = sum(ms for category, ms in by_category.items() if category != "idle")
        parts = ", ".join(f"{category} {ms:.2f}" for category, ms in by_category.items() if category != "idle")
        print(f"    {thread}: busy {busy:.2f} ms/change ({parts}); idle {by_category.get('idle', 0):.2f}")


# --- one run -----------------------------------------------------------------------------------


@dataclass
class Result:
    accepted: float  # changes acknowledged per second
    delivered_mean: float  # changes received per second, per viewer
    delivered_min: float
    p50_ms: float
    p99_ms: float
    lost: int
    by_snapshot: int
    server_cpu: float  # % of one core
    bench_cpu: float
    machine_cpu: float
    errors: list[str]
    profile: dict[str, dict[str, float]] | None = None  # ms per change, by server thread and category


async def produce(producer: Producer, rate: float | None, stop: asyncio.Event) -> None:
    """Send changes 1, 2, ... until ``stop``: back to back, or ``rate`` per second."""
    seq, start = 0, now()
    while not stop.is_set():
        seq += 1
        if rate:
            await asyncio.sleep(max(0.0, start + seq / rate - now()))
        await producer.send(seq)


async def wait_until(predicate: Any, timeout: float) -> None:
    deadline = now() + timeout
    while not predicate() and now() < deadline:
        await asyncio.sleep(0.05)


def start_profiler(pid: int, duration: float, output: Path) -> subprocess.Popen:
    """py-spy sampling ``pid`` for ``duration`` seconds, all threads, idle ones too, as raw stacks."""
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid), "--duration", str(max(1, round(duration))), "--idle",
         "--threads", "--nonblocking", "--format", "raw", "--output", str(output)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def run_once(system: Any, server_pid: int, viewers: int, rate: float | None, warmup: float, duration: float,
                   profile: Path | None = None) -> Result:
    """Stream to ``viewers`` viewers for ``warmup + duration`` seconds; measure the last ``duration``.

    With ``profile``, py-spy samples the server during the measured seconds into that file.
    """
    await system.new_document(f"stream-{uuid.uuid4().hex[:12]}")
    trace = Trace(viewers)
    opened = [await system.open_viewer(trace, i) for i in range(viewers)]
    listeners = [asyncio.create_task(listen) for _, listen in opened]
    producer = await system.open_producer(trace)
    stop = asyncio.Event()
    sending = asyncio.create_task(produce(producer, rate, stop))
    try:
        await asyncio.sleep(warmup)
        profiler = start_profiler(server_pid, duration, profile) if profile else None
        t0, cpu0 = now(), (process_cpu(server_pid), process_cpu(os.getpid()), machine_busy())
        await asyncio.sleep(duration)
        t1, cpu1 = now(), (process_cpu(server_pid), process_cpu(os.getpid()), machine_busy())
        stop.set()
        await asyncio.wait([sending], timeout=DRAIN_S)
        await wait_until(lambda: len(trace.acked) + len(trace.errors) >= len(trace.sent), DRAIN_S)
        await wait_until(lambda: not trace.missing(), DRAIN_S)
        if profiler:
            await asyncio.to_thread(profiler.wait)
    finally:
        sending.cancel()
        for task in listeners:
            task.cancel()
        for ws, _ in opened:
            await ws.close()
        await producer.close()
    cpu = [100 * (b - a) / (t1 - t0) for a, b in zip(cpu0, cpu1)]
    result = summarize(trace, t0, t1, cpu)
    if profile:
        result.profile = profile_costs(profile, result.accepted)
    return result


def summarize(trace: Trace, t0: float, t1: float, cpu: list[float]) -> Result:
    """Rates over ``[t0, t1)``; latencies of the changes sent in it; losses over the whole run."""
    span = t1 - t0
    accepted = sum(t0 <= t < t1 for t, _ in trace.acked.values()) / span
    delivered = [sum(t0 <= t < t1 for t in got.values()) / span for got in trace.received]
    latencies = [
        (got[key] - sent) * 1000
        for seq, sent in trace.sent.items() if t0 <= sent < t1 and seq in trace.acked
        for key in [trace.acked[seq][1]]
        for got in trace.received if key in got
    ]
    p50, p99 = (np.percentile(latencies, [50, 99]) if latencies else (float("nan"),) * 2)
    return Result(accepted, statistics.fmean(delivered), min(delivered), float(p50), float(p99),
                  len(trace.missing()), trace.by_snapshot, *cpu, trace.errors)


# --- the whole benchmark --------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", default="1,10,50", help="comma-separated viewer counts (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per run (default: %(default)s)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring (default: %(default)s)")
    parser.add_argument("--modes", default="saturated,fixed",
                        help="comma-separated: saturated, fixed (the --rate) (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each configuration; the tables show the median of each measure "
                             "(default: %(default)s)")
    parser.add_argument("--rate", type=float, default=20.0, help="changes per second in fixed-rate mode (default: %(default)s)")
    parser.add_argument("--database-url",
                        help="bokehsite's database, e.g. postgres://postgres@127.0.0.1:5432/bokehsite_bench_stream "
                             "(created for the run and dropped after); default: SQLite in a temporary directory")
    parser.add_argument("--redis", action="store_true", help=f"use the Redis channel layer ({REDIS_URL}) "
                        "for bokehsite and the relay; default: in-memory")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="sample each server with py-spy during each measured run (it slows the server "
                             "down a little) and write the stacks to DIR, one file per run")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra environment variable for the bokehsite server, e.g. DATABASE_CONN_MAX_AGE=60 "
                             "(repeatable)")
    parser.add_argument("--quiet-wait", type=float, default=10.0, metavar="SECONDS",
                        help="before each run, wait up to this long for other processes to leave the CPUs "
                             "(under half a core busy) (default: %(default)s)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset of: %(default)s")
    parser.add_argument("--baseline", metavar="REF",
                        help="also measure bokehsite as it was at this commit (e.g. HEAD~1), in the same run, "
                             "on a database of its own")
    parser.add_argument("--baseline-env", action="append", default=None, metavar="NAME=VALUE",
                        help="the baseline's extra environment, instead of --server-env (repeatable); without "
                             "--baseline, the baseline is this checkout with this environment, e.g. "
                             "--server-env BOKEHSITE_METRICS_TOKEN=x --baseline-env BOKEHSITE_METRICS_TOKEN= "
                             "measures metrics on against off in one run")
    args = parser.parse_args()
    args.viewers = [int(n) for n in args.viewers.split(",")]
    args.systems = [s.strip() for s in args.systems.split(",")]
    args.modes = [m.strip() for m in args.modes.split(",")]
    if unknown := set(args.modes) - {"saturated", "fixed"}:
        parser.error(f"unknown modes: {', '.join(unknown)}")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    if unknown := set(args.systems) - set(SYSTEMS):
        parser.error(f"unknown systems: {', '.join(unknown)}")
    args.baseline_name = (f"bokehsite@{args.baseline}" if args.baseline
                          else "baseline" if args.baseline_env is not None else None)
    if args.baseline_name:
        args.systems.insert(args.systems.index("bokehsite") + 1 if "bokehsite" in args.systems else 0, args.baseline_name)
    return args


def bokehsite_env(data_dir: str, database_url: str | None, redis: bool, extra: dict[str, str], root: Path = ROOT) -> dict[str, str]:
    """Environment for a bokehsite server of the checkout ``root`` on ``database_url`` (default:
    SQLite in ``data_dir``), created afresh and migrated."""
    if database_url and database_url.startswith(("postgres:", "postgresql:")):
        create_postgres_database(database_url, fresh=True)
    return server_env(data_dir, database_url, root=root, **extra, **({"REDIS_URL": REDIS_URL} if redis else {}))


def make_system(name: str, env: dict[str, str], redis: bool) -> Any:
    if name == "bokehsite":
        return Bokehsite(env)
    if name == "bokeh serve":
        return BokehServe()
    return Relay({"REDIS_URL": REDIS_URL} if redis else {})


Results = dict[tuple[str, int, str], Result]  # by (system, N, mode)


def median_result(runs: list[Result]) -> Result:
    """The median of each measure over repeated runs; the worst for losses; every error."""
    numbers = {name: statistics.median(getattr(r, name) for r in runs)
               for name in ("accepted", "delivered_mean", "delivered_min", "p50_ms", "p99_ms",
                            "server_cpu", "bench_cpu", "machine_cpu")}
    return Result(**numbers, lost=max(r.lost for r in runs), by_snapshot=max(r.by_snapshot for r in runs),
                  errors=[e for r in runs for e in r.errors], profile=runs[0].profile)


async def wait_for_quiet(timeout: float, busy_limit: float = 50.0) -> None:
    """Wait until the CPUs are less than ``busy_limit`` % of one core busy for a second, or ``timeout``."""
    deadline = now() + timeout
    while True:
        before = machine_busy()
        await asyncio.sleep(1.0)
        busy = 100 * (machine_busy() - before)
        if busy < busy_limit or now() > deadline:
            break
    if busy >= busy_limit:
        print(f"  (other processes keep {busy:.0f}% of a core busy; measuring anyway)", file=sys.stderr)


async def run_all(args: argparse.Namespace, env: dict[str, str], baseline: Bokehsite | None = None) -> Results:
    """Every (system, N, mode), ``--repeat`` times, summed up by ``median_result``.

    All servers run from the start, one process per system, and the systems take turns at each
    (N, mode), in an order that alternates, so that they meet the same conditions on a shared
    machine.
    """
    modes: dict[str, float | None] = {}
    if "saturated" in args.modes:
        modes["saturated"] = None
    if "fixed" in args.modes:
        modes[f"{args.rate:g}/s"] = args.rate
    systems = {name: baseline if name == args.baseline_name else make_system(name, env, args.redis)
               for name in args.systems}
    results: Results = {}
    try:
        pids = {name: system.start() for name, system in systems.items()}
        for n in args.viewers:
            for mode, rate in modes.items():
                runs: dict[str, list[Result]] = {name: [] for name in systems}
                for attempt in range(args.repeat):
                    # ABBA: each system runs first as often as second, so that order favours none.
                    for name, system in list(systems.items())[::1 if attempt % 2 == 0 else -1]:
                        profile = None
                        if args.profile:
                            profile = args.profile / f"{name.replace(' ', '-')}-{n}-{mode.replace('/', 'per')}-{attempt}.txt"
                        await wait_for_quiet(args.quiet_wait)
                        result = await run_once(system, pids[name], n, rate, args.warmup, args.duration, profile)
                        runs[name].append(result)
                        print(f"  {name}, N={n}, {mode}: {result.delivered_mean:.0f} delivered/s, "
                              f"p99 {result.p99_ms:.1f} ms, lost {result.lost}", file=sys.stderr, flush=True)
                for name, done in runs.items():
                    results[name, n, mode] = median_result(done)
    finally:
        for system in systems.values():
            system.stop()
    return results


def commit_latency_ms(directory: str, commits: int = 20) -> float:
    """Median time of a small SQLite commit in ``directory``: what one fsync costs on this disk."""
    import sqlite3

    path = Path(directory) / "fsync-probe.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE t (data BLOB)")
    times = []
    for _ in range(commits):
        start = now()
        conn.execute("INSERT INTO t VALUES (?)", [bytes(2000)])
        times.append((now() - start) * 1000)
    conn.close()
    path.unlink()
    return statistics.median(times)


def print_header(args: argparse.Namespace, env: dict[str, str], tmp: str) -> None:
    print(f"bokehsite streaming benchmark; {machine()}")
    print(f"bokehsite at {revision()}" + (f"; baseline {args.baseline_name}" if args.baseline_name else "")
          + (f" with {' '.join(args.baseline_env) or 'no extra environment'}" if args.baseline_env is not None else ""))
    print(f"database: {env['DATABASE_URL'].split('@')[-1]}; channel layer: {'Redis' if args.redis else 'in-memory'}"
          + "".join(f"; {item}" for item in args.server_env))
    print(f"disk: a small SQLite commit (one fsync) takes {commit_latency_ms(tmp):.1f} ms")
    print(f"workload: {POINTS} float64 x and y values per change, rollover {ROLLOVER:,}; "
          f"{args.warmup:g} s warm-up, {args.duration:g} s measured; saturated = {IN_FLIGHT} changes in flight")


def print_results(results: Results, args: argparse.Namespace) -> None:
    """A table per mode with the systems side by side, the ratios, and whether the goal is met."""
    modes = list(dict.fromkeys(mode for _, _, mode in results))
    for mode in modes:
        print(f"\n{mode}")
        print(f"{'N':>3} {'system':<12} {'accepted/s':>10} {'deliv/s mean':>12} {'min':>7} {'p50 ms':>8} "
              f"{'p99 ms':>8} {'lost':>5} {'snapshot':>8} {'server CPU':>10} {'bench CPU':>9} {'other CPU':>9}")
        for n in args.viewers:
            for name in args.systems:
                r = results.get((name, n, mode))
                if r is None:
                    continue
                print(f"{n:>3} {name:<12} {r.accepted:>10.1f} {r.delivered_mean:>12.1f} {r.delivered_min:>7.1f} "
                      f"{r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.lost:>5} {r.by_snapshot:>8} {r.server_cpu:>9.0f}% "
                      f"{r.bench_cpu:>8.0f}% {r.machine_cpu - r.server_cpu - r.bench_cpu:>8.0f}%")
        print_ratios(results, args, mode)
        for (name, n, run_mode), r in results.items():
            if r.profile and run_mode == mode:
                print(f"  where {name}'s time goes at N={n}, {mode} (wall ms per change, py-spy):")
                print_profile(r.profile)
    errors = [f"{key}: {e}" for key, r in results.items() for e in r.errors[:5]]
    if errors:
        print("\nerrors:\n  " + "\n  ".join(errors))
    print_goal(results, args, modes)


def print_ratios(results: Results, args: argparse.Namespace, mode: str) -> None:
    """bokehsite's delivered throughput and p99 relative to each baseline."""
    if args.baseline_name:
        print(f"{'N':>3} {'throughput / ' + args.baseline_name:>30} {'p99 / ' + args.baseline_name:>24}")
        for n in args.viewers:
            site, before = results.get(("bokehsite", n, mode)), results.get((args.baseline_name, n, mode))
            if site and before:
                print(f"{n:>3} {site.delivered_mean / before.delivered_mean:>30.2f} {site.p99_ms / before.p99_ms:>24.2f}")
    if not {"bokehsite", "bokeh serve"} & set(args.systems) or "bokehsite" not in args.systems:
        return
    print(f"{'N':>3} {'throughput / bokeh serve':>25} {'throughput / relay':>19} {'p99 / bokeh serve':>18}")
    for n in args.viewers:
        site, serve, relay = (results.get((name, n, mode)) for name in SYSTEMS)
        cells = [
            f"{site.delivered_mean / serve.delivered_mean:.2f}" if site and serve else "-",
            f"{site.delivered_mean / relay.delivered_mean:.2f}" if site and relay else "-",
            f"{site.p99_ms / serve.p99_ms:.2f}" if site and serve else "-",
        ]
        print(f"{n:>3} {cells[0]:>25} {cells[1]:>19} {cells[2]:>18}")


def print_goal(results: Results, args: argparse.Namespace, modes: list[str]) -> None:
    """The goal: on saturated runs at every N, at least 3x bokeh serve's throughput and at most
    a third of its p99, at least half the relay's throughput; and no change lost in any run."""
    if not set(SYSTEMS) <= set(args.systems) or "saturated" not in modes:
        return
    print()
    met_all = True
    for n in args.viewers:
        site, serve, relay = (results[name, n, "saturated"] for name in SYSTEMS)
        checks = {
            f">= {GOAL_VS_BOKEH_THROUGHPUT:g}x bokeh serve throughput": site.delivered_mean >= GOAL_VS_BOKEH_THROUGHPUT * serve.delivered_mean,
            "<= 1/3 of bokeh serve p99": site.p99_ms <= GOAL_VS_BOKEH_P99 * serve.p99_ms,
            f">= {GOAL_VS_RELAY_THROUGHPUT:g}x relay throughput": site.delivered_mean >= GOAL_VS_RELAY_THROUGHPUT * relay.delivered_mean,
            "no change lost": all(results["bokehsite", n, mode].lost == 0 for mode in modes),
        }
        met_all &= all(checks.values())
        print(f"goal at N={n}: " + "; ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in checks.items()))
    print(f"goal: {'met' if met_all else 'NOT met'}")


def main() -> None:
    args = parse_args()
    postgres = bool(args.database_url and args.database_url.startswith(("postgres:", "postgresql:")))
    databases = [args.database_url] + ([with_suffix(args.database_url, "_baseline")] if args.baseline_name and postgres else [])
    extra = dict(item.split("=", 1) for item in args.server_env)
    baseline_extra = extra if args.baseline_env is None else dict(item.split("=", 1) for item in args.baseline_env)
    with tempfile.TemporaryDirectory(prefix="bokehsite-bench-") as tmp, contextlib.ExitStack() as stack:
        try:
            env = bokehsite_env(tmp, args.database_url, args.redis, extra)
            baseline = None
            if args.baseline_name:
                root = stack.enter_context(checkout(args.baseline)) if args.baseline else ROOT
                data = Path(tmp) / "baseline"
                data.mkdir()
                baseline_env = bokehsite_env(str(data), databases[-1] if postgres else None, args.redis,
                                             baseline_extra, root)
                baseline = Bokehsite(baseline_env, args.baseline_name, root)
            print_header(args, env, tmp)
            results = asyncio.run(run_all(args, env, baseline))
        finally:
            if postgres:
                for url in databases:
                    drop_postgres_database(url)
    print_results(results, args)


if __name__ == "__main__":
    main()
