"""Load: many idle viewers and some active ones on one server process, and a soak.

One Daphne process serves ``--idle`` viewers of documents that do not change (spread over
``--idle-documents``) and ``--active`` viewers of one document a producer streams into at
``--rate`` changes a second (100 float64 x and y values each). It prints:

- the server's memory (RSS) before and after the idle viewers connect, and per idle connection;
- the active viewers' latency from the producer's send to each viewer's receipt (p50, p99), with
  and without the idle viewers connected, and the changes any viewer missed;
- with ``--soak SECONDS``, the same load held that long: memory and p99 sampled every
  ``--sample`` seconds, and the memory's slope over the second half (flat is the goal).

With ``--hammer SECONDS`` it measures the connection limit instead: a multi-user server, one
account that opens ``--hold`` connections and then, from ``--hammer-workers`` loops, as many more
as it can for that long. With ``--per-user`` at ``--hold`` (the default) each is refused with
``too_many_connections``; with ``--per-user 0`` (no limit) each is let in and closed at once by
the client, for comparison. It prints the attempts a second, the server's CPU meanwhile, and
``/healthz`` latency (asked from a process of its own, one request after another) before and
during the hammering.

Everything speaks ``bokehsite.protocol``; viewers are websocket clients in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import os
import resource
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import requests
import websockets
from bokeh.core.serialization import Serializer
from bokeh.document import Document
from bokeh.document.events import ColumnsStreamedEvent
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

from common import create_postgres_database, machine, revision, rss_mib, server_env  # noqa: I001

from bokehsite import protocol
from bokehsite.client import Session
from tests.servers import DaphneServer

POINTS = 100
ROLLOVER = 10_000


def now() -> float:
    return time.perf_counter()


def raise_open_files_limit() -> int:
    """As many open files as the machine allows: a thousand sockets need more than the usual 1024.
    The server process started afterwards inherits it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def line_document(title: str) -> tuple[Document, ColumnDataSource]:
    source = ColumnDataSource({"x": np.arange(1000, dtype=np.float64), "y": np.zeros(1000)})
    plot = figure(width=800, height=400, title=title)
    plot.line("x", "y", source=source)
    doc = Document(title=title)
    doc.add_root(plot)
    return doc, source


def push(url: str, title: str) -> tuple[str, Document, ColumnDataSource]:
    doc, source = line_document(title)
    with Session(url) as session:
        session.use_doc(title)
        info = session.push(doc)
    doc.models.flush_synced()
    return info["id"], doc, source


@dataclass
class Latencies:
    """Send times by version, and each active viewer's receive times by version."""

    sent: dict[int, float] = field(default_factory=dict)
    received: list[dict[int, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def window(self, start: float, end: float) -> tuple[list[float], int]:
        """Latencies (ms) of the changes sent in [start, end), and how many (viewer, change) were missed."""
        versions = [v for v, t in self.sent.items() if start <= t < end]
        values, missed = [], 0
        for got in self.received:
            for v in versions:
                if v in got:
                    values.append((got[v] - self.sent[v]) * 1000)
                else:
                    missed += 1
        return values, missed


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def open_viewer(url: str) -> tuple[Any, protocol.Hello]:
    ws = await websockets.connect(url, max_size=None, compression=None, open_timeout=60, ping_interval=None)
    hello, _ = protocol.decode(await ws.recv(), sender=protocol.SERVER)
    if not isinstance(hello, protocol.Hello):
        raise RuntimeError(f"refused: {hello}")
    await ws.send(protocol.Sync(hello.version).encode())
    return ws, hello


async def listen(ws: Any, hello: protocol.Hello, got: dict[int, float] | None, errors: list[str]) -> None:
    """Record when each version arrives (``got``), and confirm what was applied, as viewers do."""
    version, reported = hello.version, hello.version
    async for raw in ws:
        t = now()
        message, _ = protocol.decode(raw, sender=protocol.SERVER)
        if isinstance(message, protocol.Patches):
            for item in message.items:
                if got is not None:
                    got[item["version"]] = t
                version = max(version, item["version"])
        elif isinstance(message, protocol.Snapshot):
            version = message.version
        elif isinstance(message, protocol.Error):
            errors.append(message.detail)
            continue
        if version - reported >= hello.window // 2:
            reported = version
            await ws.send(protocol.Applied(version).encode())


async def open_many(url: str, count: int, latencies: Latencies | None, errors: list[str], tasks: list) -> list[Any]:
    """``count`` viewers of ``url``, opened 25 at a time."""
    sockets = []
    for start in range(0, count, 25):
        opened = await asyncio.gather(*(open_viewer(url) for _ in range(min(25, count - start))))
        for ws, hello in opened:
            got = None
            if latencies is not None:
                got = {}
                latencies.received.append(got)
            tasks.append(asyncio.create_task(listen(ws, hello, got, errors)))
            sockets.append(ws)
    return sockets


async def produce(url: str, doc: Document, source: ColumnDataSource, rate: float, latencies: Latencies,
                  stop: asyncio.Event) -> None:
    """Stream one change every 1/rate seconds; record each send time under its acknowledged version."""
    ws, hello = await open_viewer(url)
    pending: dict[int, float] = {}
    ys = np.random.default_rng(0).standard_normal(POINTS)

    async def acks() -> None:
        async for raw in ws:
            message, _ = protocol.decode(raw, sender=protocol.SERVER)
            if isinstance(message, protocol.Ack):
                latencies.sent[message.version] = pending.pop(message.id)
            elif isinstance(message, protocol.Error):
                latencies.errors.append(message.detail)

    reader = asyncio.create_task(acks())
    seq = 0
    next_at = now()
    while not stop.is_set():
        seq += 1
        xs = np.arange(seq * POINTS, (seq + 1) * POINTS, dtype=np.float64)
        serializer = Serializer(references=doc.models.synced_references)
        event = serializer.encode(ColumnsStreamedEvent(doc, source, "data", {"x": xs, "y": ys}, rollover=ROLLOVER))
        pending[seq] = now()
        await ws.send(protocol.Patch(id=seq, patch={"events": [event]}).encode(serializer.buffers))
        next_at += 1 / rate
        await asyncio.sleep(max(0.0, next_at - now()))
    await asyncio.sleep(1)  # the last acknowledgements and deliveries
    reader.cancel()
    await ws.close()


async def measure(args: argparse.Namespace, server: DaphneServer) -> None:
    pid = server.process.pid
    errors: list[str] = []
    tasks: list[asyncio.Task] = []
    idle_ids = [push(server.url, f"idle {i}")[0] for i in range(args.idle_documents)]
    active_id, doc, source = push(server.url, "active")
    active_url = protocol.url(server.url, active_id)

    await asyncio.sleep(1)
    base = rss_mib(pid)
    latencies = Latencies()
    await open_many(active_url, args.active, latencies, errors, tasks)
    await asyncio.sleep(2)
    with_active = rss_mib(pid)

    async def stream_for(seconds: float) -> tuple[float, float]:
        stop = asyncio.Event()
        producer = asyncio.create_task(produce(active_url, doc, source, args.rate, latencies, stop))
        start = now()
        await asyncio.sleep(seconds)
        stop.set()
        await producer
        return start + 1, start + seconds  # the first second is warm-up

    window = await stream_for(args.duration)
    alone, missed_alone = latencies.window(*window)

    started = now()
    per_document = -(-args.idle // len(idle_ids))
    opened = 0
    for document_id in idle_ids:
        count = min(per_document, args.idle - opened)
        await open_many(protocol.url(server.url, document_id), count, None, errors, tasks)
        opened += count
    connect_s = now() - started
    await asyncio.sleep(3)
    with_idle = rss_mib(pid)
    per_idle_kib = (with_idle - with_active) * 1024 / args.idle

    window = await stream_for(args.duration)
    crowded, missed_crowded = latencies.window(*window)

    print(f"server RSS: {base:.1f} MiB at start, {with_active:.1f} MiB with {args.active} active viewers, "
          f"{with_idle:.1f} MiB with {args.idle} idle viewers too")
    print(f"memory per idle connection: {per_idle_kib:.1f} KiB ({args.idle} connected in {connect_s:.1f} s)")
    print(f"active viewers, {args.rate:g} changes/s, {args.duration:g} s each (p50 / p99 / max ms, missed):")
    for name, values, missed in (("alone", alone, missed_alone), (f"beside {args.idle} idle", crowded, missed_crowded)):
        print(f"  {name:>18}: {percentile(values, 50):6.1f} / {percentile(values, 99):6.1f} / "
              f"{max(values, default=float('nan')):6.1f}   missed {missed} of {len(values) + missed}")

    if args.soak:
        print(f"soak: {args.soak:g} s at {args.rate:g} changes/s, sampled every {args.sample:g} s")
        print(f"  {'t (s)':>7} {'RSS MiB':>8} {'p50 ms':>7} {'p99 ms':>7} {'missed':>6}")
        samples = []
        stop = asyncio.Event()
        producer = asyncio.create_task(produce(active_url, doc, source, args.rate, latencies, stop))
        start = now()
        while now() - start < args.soak:
            t0 = now()
            await asyncio.sleep(args.sample)
            values, missed = latencies.window(t0, now() - 0.5)
            samples.append((now() - start, rss_mib(pid)))
            print(f"  {samples[-1][0]:7.0f} {samples[-1][1]:8.1f} {percentile(values, 50):7.1f} "
                  f"{percentile(values, 99):7.1f} {missed:6d}", flush=True)
        stop.set()
        await producer
        half = [s for s in samples if s[0] >= args.soak / 2]
        slope = np.polyfit([t for t, _ in half], [m for _, m in half], 1)[0] * 60 if len(half) > 1 else float("nan")
        memory = [m for _, m in samples]
        print(f"  RSS: first {memory[0]:.1f}, last {memory[-1]:.1f}, max {max(memory):.1f} MiB; "
              f"slope over the second half {slope:+.2f} MiB/min")
        values, missed = latencies.window(start + 1, now() - 1)
        print(f"  whole soak: p50 {percentile(values, 50):.1f} ms, p99 {percentile(values, 99):.1f} ms, "
              f"missed {missed} of {len(values) + missed}")

    for task in tasks:
        task.cancel()
    problems = errors + latencies.errors
    print(f"errors: {len(problems)}" + (f" (first: {problems[0]})" if problems else ""))


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def health_latencies(url: str, seconds: float) -> list[float]:
    """``/healthz`` answered one request after another for ``seconds``: each one's latency (ms)."""
    latencies = []
    with requests.Session() as http:
        end = now() + seconds
        while now() < end:
            start = now()
            http.get(f"{url}healthz", timeout=30).raise_for_status()
            latencies.append((now() - start) * 1000)
    return latencies


def summary(values: list[float]) -> str:
    return (f"p50 {percentile(values, 50):6.1f}, p99 {percentile(values, 99):6.1f}, "
            f"max {max(values, default=float('nan')):6.1f} ms ({len(values)} requests)")


async def hammer(args: argparse.Namespace, server: DaphneServer) -> None:
    """One account past its connection limit, as fast as it can, while ``/healthz`` is timed."""
    pid = server.process.pid
    with Session(server.url) as session:
        token = session.register("hammer", "correct horse battery staple")
        session.use_doc("hammered")
        url = protocol.url(server.url, session.push(line_document("hammered")[0])["id"])
    headers = {"Authorization": f"Token {token}"}
    timer = concurrent.futures.ProcessPoolExecutor(1)  # apart from this process's busy event loop
    loop = asyncio.get_running_loop()
    print(f"/healthz, idle:              {summary(await loop.run_in_executor(timer, health_latencies, server.url, 3))}")

    started = now()
    held = []
    for start in range(0, args.hold, 25):
        held += await asyncio.gather(*(websockets.connect(url, additional_headers=headers, compression=None,
                                                          ping_interval=None, open_timeout=60)
                                       for _ in range(min(25, args.hold - start))))
    hellos = [protocol.decode(await ws.recv(), sender=protocol.SERVER)[0] for ws in held]
    assert all(isinstance(m, protocol.Hello) for m in hellos), "the account's own connections were refused"
    fill_s = now() - started
    print(f"the account's {args.hold} connections opened in {fill_s:.2f} s ({args.hold / fill_s:.0f}/s)")

    counts = {"refused": 0, "other": 0}
    stop = asyncio.Event()

    async def attempts() -> None:
        while not stop.is_set():
            async with websockets.connect(url, additional_headers=headers, compression=None, ping_interval=None,
                                          open_timeout=60) as ws:
                message, _ = protocol.decode(await ws.recv(), sender=protocol.SERVER)
                refused = isinstance(message, protocol.Error) and message.code == protocol.TOO_MANY_CONNECTIONS
                counts["refused" if refused else "other"] += 1
                if refused:
                    with contextlib.suppress(websockets.exceptions.ConnectionClosed):
                        await ws.recv()  # the server closes it (4429)

    cpu_before, started = cpu_seconds(pid), now()
    workers = [asyncio.create_task(attempts()) for _ in range(args.hammer_workers)]
    health = await loop.run_in_executor(timer, health_latencies, server.url, args.hammer)
    stop.set()
    await asyncio.gather(*workers)
    elapsed, cpu = now() - started, cpu_seconds(pid) - cpu_before
    for ws in held:
        await ws.close()
    print(f"/healthz, while hammered:    {summary(health)}")
    timer.shutdown()
    attempts_made = counts["refused"] + counts["other"]
    print(f"hammering for {elapsed:.1f} s from {args.hammer_workers} loops: {attempts_made} attempts "
          f"({attempts_made / elapsed:.0f}/s), {counts['refused']} refused, {counts['other']} let in; "
          f"server CPU {cpu / elapsed * 100:.0f}% of a core, {cpu / max(attempts_made, 1) * 1000:.1f} ms an attempt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=1000, help="idle viewers (default %(default)s)")
    parser.add_argument("--idle-documents", type=int, default=20, help="documents they view (default %(default)s)")
    parser.add_argument("--active", type=int, default=50, help="viewers of the streamed document (default %(default)s)")
    parser.add_argument("--rate", type=float, default=20, help="changes per second (default %(default)s)")
    parser.add_argument("--duration", type=float, default=15, help="seconds of each latency run (default %(default)s)")
    parser.add_argument("--soak", type=float, default=0, help="then hold the load this many seconds (e.g. 600)")
    parser.add_argument("--sample", type=float, default=10, help="seconds between soak samples (default %(default)s)")
    parser.add_argument("--hammer", type=float, default=0,
                        help="measure the connection limit instead: one account past it for this many seconds")
    parser.add_argument("--hold", type=int, default=200,
                        help="with --hammer, connections the account holds open (default %(default)s)")
    parser.add_argument("--per-user", type=int, default=None,
                        help="with --hammer, BOKEHSITE_MAX_CONNECTIONS_PER_USER (default: --hold; 0: no limit)")
    parser.add_argument("--hammer-workers", type=int, default=8,
                        help="with --hammer, connections attempted at once (default %(default)s)")
    parser.add_argument("--database-url", help="PostgreSQL instead of SQLite in a temporary directory")
    parser.add_argument("--redis-url", help="the Redis channel layer instead of the in-memory one")
    args = parser.parse_args()

    limit = raise_open_files_limit()
    print(f"bokehsite load benchmark; {machine()}")
    print(f"bokehsite at {revision()}; open files limit {limit}")
    with tempfile.TemporaryDirectory(prefix="bokehsite-load-") as tmp:
        if args.database_url:
            create_postgres_database(args.database_url, fresh=True)
        layer = {"REDIS_URL": args.redis_url} if args.redis_url else {}
        if args.hammer:
            os.environ["BOKEH_CONFIG_DIR"] = str(Path(tmp) / "client")  # the account's token, not the user's
            per_user = args.hold if args.per_user is None else args.per_user
            limits = {"BOKEHSITE_MULTI_USER": "1", "BOKEHSITE_MAX_CONNECTIONS_PER_USER": str(per_user)}
        else:  # the viewers all come from this address: counted, but allowed
            limits = {"BOKEHSITE_MAX_CONNECTIONS_PER_USER": str(args.idle + args.active + 10),
                      "BOKEHSITE_MAX_CONNECTIONS_PER_PROCESS": "0"}
        env = server_env(tmp, args.database_url, **layer, **limits)
        print(f"database: {env['DATABASE_URL']}; channel layer: {'Redis' if args.redis_url else 'in-memory'}")
        with DaphneServer(env=env) as server:
            asyncio.run(hammer(args, server) if args.hammer else measure(args, server))


if __name__ == "__main__":
    main()
