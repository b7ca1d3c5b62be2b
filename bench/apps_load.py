#!/usr/bin/env python
"""Hosted apps under load: bokehsite's ``bokeh-server`` against ``bokeh serve --num-procs 2``, many sessions at once.

The app is a sliders dashboard written to a temporary directory at run time, in the shape of
Bokeh's sliders example: a sine wave from a ColumnDataSource, four sliders (offset, amplitude,
phase, frequency) and a TextInput (the title), whose Python callbacks recompute the data. Each
system serves that one file, one after the other (the other system is stopped meanwhile):

- ``bokeh serve APP --num-procs 2``: two forked processes accept the connections and run the
  app's code;
- ``bokeh-server --workers W --app-workers 2 APP`` (``bokehsite_command()`` below): Daphne
  worker(s) and the app host processes that run the app's code (each worker starts its own);
  ``--workers 2`` runs on a throwaway PostgreSQL database and a Redis db number of its own,
  ``--workers 1`` on SQLite.

No browser: the clients speak each system's protocol from a few client processes (asyncio),
doing what a page does. A ``bokeh serve`` client is what ``bokeh.client.pull_session`` does: a
session id and token of its own, the websocket (which creates the session), ``PULL-DOC`` for the
document, ``PATCH-DOC`` for a slider change. A bokehsite client GETs the app's page (which creates
the session), takes the document and the frame token from the page's frame, and opens the
document's websocket as the frame does (``sync`` with no version: the whole document as a
snapshot), sending a slider change as a ``patch`` message.

Phases, for each system (``PHASES``, then ``FAULT_PHASES`` asked for; a phase is a function of a
``Run``, and what it has the clients do is a method of ``Share``):

- open: ``--sessions`` sessions opened as fast as ``--open-concurrency`` clients at a time can
  (a session counts once its document has arrived): sessions per second, and the servers'
  resident memory growth per session (all their processes: for bokehsite the app hosts too);
- moving: ``--moving`` of the sessions each change a slider every ``--interval`` seconds for
  ``--duration`` seconds, the others held open: the round trip from sending the change to
  receiving the callback's new data (p50, p99), the servers' CPU seconds, and the clients';
- what the servers logged beyond routine lines.
- with ``--kill worker|host``: one server process killed with SIGKILL while the sessions keep
  moving (for bokehsite a Daphne worker or the largest app host; for bokeh serve one of its two
  processes): the connections that dropped and came back (each client reconnects as its page
  would: BokehJS with the same session id, bokehsite's frame with a fresh frame token), whether
  the sessions kept their state, the changes unanswered, and the time until the hit sessions'
  changes were answered again.

Run it from the repository root:  .venv/bin/python bench/apps_load.py [--sessions 200 --moving 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import itertools
import json
import math
import multiprocessing
import os
import random
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import requests
import websockets
from bokeh.protocol import Protocol
from bokeh.protocol.receiver import Receiver
from bokeh.util.token import generate_jwt_token, generate_session_id

from common import (  # first: puts the repository on sys.path
    ROOT, command_line, create_postgres_database, descendants, drop_postgres_database, machine, revision, rss_mib,
    stop_process,
)

from bokehsite import protocol
from tests.servers import free_port, wait_for_port

APP_NAME = "sliders"
SYSTEMS = ("bokeh", "bokehsite")
KILLS = ("worker", "host")
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/bokehsite_bench_apps_load"
DEFAULT_REDIS = "redis://127.0.0.1:6379/13"
# Seconds a change may take to come back before it counts as lost.
CHANGE_TIMEOUT = 10.0
# Sessions opened first and not counted (a few per process that serves or runs apps).
WARMUP_SESSIONS = 8
# Seconds after the last session opened before memory is read (late allocations settle), and
# seconds then the servers' CPU is read with the sessions open and nobody moving.
SETTLE_S = 3.0
IDLE_S = 5.0
# bokehsite's limits would refuse a load test's one address and one user: lifted, and said so.
BOKEHSITE_LIMITS = {"BOKEHSITE_MAX_SESSIONS": "0", "BOKEHSITE_MAX_CONNECTIONS_PER_USER": "0"}
# The amplitude slider's value in a new session (APP_SOURCE).
START_VALUE = 1.0
# How long a page waits before each reconnect: BokehJS (its ClientConnection, 5 attempts), and a
# bokehsite frame (static/bokehsite/connection.js: from 0.5 s, doubling, with jitter).
BOKEHJS_RECONNECT_DELAYS = (0, 2, 4, 8, 16)
FRAME_FIRST_DELAY, FRAME_MAX_DELAY, FRAME_ATTEMPTS = 0.5, 30.0, 6

# The app: what Bokeh's sliders example does, written for this benchmark. "wave" and "amplitude"
# are the names the clients look the source and the slider up by.
APP_SOURCE = '''
import numpy as np

from bokeh.io import curdoc
from bokeh.layouts import column, row
from bokeh.models import ColumnDataSource, Slider, TextInput
from bokeh.plotting import figure

N = 200
x = np.linspace(0, 4 * np.pi, N)
source = ColumnDataSource(data=dict(x=x, y=np.sin(x)), name="wave")

plot = figure(height=400, width=400, title="my sine wave", x_range=[0, 4 * np.pi], y_range=[-2.5, 2.5])
plot.line("x", "y", source=source, line_width=3, line_alpha=0.6)

text = TextInput(title="title", value="my sine wave")
offset = Slider(title="offset", value=0.0, start=-5.0, end=5.0, step=0.1)
amplitude = Slider(title="amplitude", value=1.0, start=-5.0, end=5.0, step=0.1, name="amplitude")
phase = Slider(title="phase", value=0.0, start=0.0, end=2 * np.pi)
freq = Slider(title="frequency", value=1.0, start=0.1, end=5.1, step=0.1)


def retitle(attr, old, new):
    plot.title.text = new


def recompute(attr, old, new):
    y = amplitude.value * np.sin(freq.value * x + phase.value) + offset.value
    source.data = dict(x=x, y=y)


text.on_change("value", retitle)
for slider in (offset, amplitude, phase, freq):
    slider.on_change("value", recompute)

curdoc().add_root(row(column(text, offset, amplitude, phase, freq), plot, width=800))
curdoc().title = "Sliders"
'''


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help="comma-separated, of bokeh (bokeh serve) and bokehsite (bokeh-server) (default: %(default)s)")
    parser.add_argument("--sessions", type=int, default=200, help="sessions held open (default %(default)s)")
    parser.add_argument("--moving", type=int, default=20, help="sessions of those that move a slider (default %(default)s)")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between a mover's changes (default %(default)s)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of the moving phase (default %(default)s)")
    parser.add_argument("--open-concurrency", type=int, default=20,
                        help="sessions being opened at once, over all clients (default %(default)s)")
    parser.add_argument("--client-processes", type=int, default=2,
                        help="client processes sharing the sessions (default %(default)s)")
    parser.add_argument("--workers", type=int, default=2,
                        help="bokehsite's Daphne workers; 1 runs on SQLite, more on --database-url and --redis-url "
                             "(default %(default)s)")
    parser.add_argument("--app-workers", dest="app_processes", type=int, default=2,
                        help="bokehsite's app workers, the processes that run the app (default %(default)s)")
    parser.add_argument("--num-procs", type=int, default=2, help="bokeh serve's --num-procs (default %(default)s)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE,
                        help="PostgreSQL database for --workers over 1, created and dropped by the run (default %(default)s)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS,
                        help="Redis for --workers over 1; its db number is flushed before and after (default %(default)s)")
    parser.add_argument("--kill", choices=KILLS, default=None,
                        help="then kill -9 one server process while the sessions keep moving, and count what was lost: "
                             "for bokehsite a Daphne worker or an app host; for bokeh serve one of its processes either way")
    parser.add_argument("--after-kill", type=float, default=20.0,
                        help="seconds the sessions keep moving after the kill (default %(default)s)")
    parser.add_argument("--logs", metavar="DIR", help="keep the servers' output in DIR")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE ('-': standard output)")
    args = parser.parse_args(argv)
    args.systems = [name.strip() for name in args.systems.split(",") if name.strip()]
    unknown = sorted(set(args.systems) - set(SYSTEMS))
    if unknown or not args.systems:
        parser.error(f"--systems takes {' and/or '.join(SYSTEMS)}, not {','.join(unknown) or 'nothing'}")
    if not 0 <= args.moving <= args.sessions or args.sessions < 1:
        parser.error("--sessions must be 1 or more and --moving between 0 and --sessions")
    if args.client_processes < 1 or args.open_concurrency < 1 or args.interval <= 0 or args.duration <= 0:
        parser.error("--client-processes, --open-concurrency, --interval and --duration must be positive")
    args.client_processes = min(args.client_processes, args.sessions)
    return args


# --- the servers -------------------------------------------------------------------------------


def bokehsite_command(port: int, data_dir: Path, app: Path, *, workers: int, app_processes: int,
                      database_url: str | None, redis_url: str | None) -> list[str]:
    """bokeh-server's command line, all of it here (its options may be renamed)."""
    # bokeh-server of this checkout (the installed script may import another one).
    run = "import sys; from bokehsite.cli import bokeh_server; sys.exit(bokeh_server())"
    command = [sys.executable, "-c", run, "--port", str(port), "--data-dir", str(data_dir),
               "--app-workers", str(app_processes)]
    if workers > 1:
        command += ["--workers", str(workers), "--database-url", database_url, "--redis-url", redis_url]
    return [*command, str(app)]


class Server:
    """One system serving the app file."""

    name: str
    kind: str  # what its clients speak: "bokeh" or "bokehsite"

    def __init__(self, tmp: Path, app: Path):
        self.tmp, self.app = tmp, app
        self.port = free_port()
        self.log = tmp / f"{self.kind}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.seen: dict[int, tuple[str, str]] = {}

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def ready_url(self) -> str:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def victim(self, what: str) -> int | None:
        """The process the fault phase kills: ``what`` is one of ``KILLS``."""
        raise NotImplementedError

    def setup(self) -> None:
        """Before it starts (its database, say)."""

    def teardown(self) -> None:
        """After it stopped."""

    def start(self) -> None:
        self.setup()
        command, env = self.command()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=self.tmp, env={**os.environ, **env}, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port, 120, self.process, self.output)
        deadline = time.monotonic() + 60
        while True:  # listening is not answering yet
            try:
                if requests.get(self.ready_url(), timeout=30).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} does not answer {self.ready_url()}:\n{self.output()}")
            time.sleep(0.2)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def answers(self) -> bool:
        """Whether it still answers (its process may outlive its workers for a while)."""
        try:
            return self.process.poll() is None and requests.get(self.ready_url(), timeout=10).status_code == 200
        except requests.RequestException:
            return False

    def processes(self) -> list[int]:
        pids = [self.process.pid, *descendants(self.process.pid)]
        for pid in pids:  # remembered, to end at stop() any left behind by a killed parent
            self.seen.setdefault(pid, identity(pid))
        return pids

    def role(self, pid: int) -> str:
        """What the process ``pid`` of this server does, for the CPU figures."""
        return "server"

    def stop(self) -> None:
        if self.process is None:
            return
        below = {**self.seen, **{pid: identity(pid) for pid in descendants(self.process.pid)}}
        below.pop(self.process.pid, None)
        stop_process(self.process)
        time.sleep(1)
        # Its workers and app hosts end with it; any left over are ended here (the same command
        # line and start time: the same process, not another that got its id since).
        for pid, known in below.items():
            if known[0] and identity(pid) == known:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.teardown()


class BokehServe(Server):
    kind = "bokeh"

    def __init__(self, tmp: Path, app: Path, num_procs: int):
        super().__init__(tmp, app)
        self.num_procs = num_procs
        self.name = f"bokeh serve --num-procs {num_procs}"

    def command(self) -> tuple[list[str], dict[str, str]]:
        return [sys.executable, "-m", "bokeh", "serve", str(self.app), "--port", str(self.port),
                "--address", "127.0.0.1", f"--allow-websocket-origin=127.0.0.1:{self.port}",
                "--num-procs", str(self.num_procs)], {}

    def ready_url(self) -> str:
        return f"{self.base}/static/js/bokeh.min.js"  # a page would make a session

    def describe(self) -> str:
        return f"{self.name}: {len(self.processes())} processes"

    def role(self, pid: int) -> str:
        return "parent" if pid == self.process.pid else "forked processes"

    def victim(self, what: str) -> int | None:
        children = descendants(self.process.pid)  # the forked processes (the first one waits on them)
        return children[0] if children else None


class Bokehsite(Server):
    kind = "bokehsite"

    def __init__(self, tmp: Path, app: Path, workers: int, app_processes: int, database_url: str, redis_url: str):
        super().__init__(tmp, app)
        self.workers, self.app_processes = workers, app_processes
        self.database_url = database_url if workers > 1 else None
        self.redis_url = redis_url if workers > 1 else None
        self.name = f"bokehsite --workers {workers}"

    def command(self) -> tuple[list[str], dict[str, str]]:
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               **BOKEHSITE_LIMITS}
        return bokehsite_command(self.port, self.tmp / "bokehsite-data", self.app, workers=self.workers,
                                 app_processes=self.app_processes, database_url=self.database_url,
                                 redis_url=self.redis_url), env

    def ready_url(self) -> str:
        return f"{self.base}/apps/"

    def setup(self) -> None:
        if self.database_url:
            create_postgres_database(self.database_url, fresh=True)
            self._flush_redis()

    def teardown(self) -> None:
        if self.database_url:
            drop_postgres_database(self.database_url)
            self._flush_redis()

    def _flush_redis(self) -> None:
        import redis

        client = redis.Redis.from_url(self.redis_url)
        try:
            client.flushdb()  # this run's db number only
        finally:
            client.close()

    def workers_pids(self) -> list[int]:
        return [pid for pid in descendants(self.process.pid) if "daphne" in command_line(pid)]

    def hosts_pids(self) -> list[int]:
        return [pid for pid in descendants(self.process.pid) if "appserver.host" in command_line(pid)]

    def role(self, pid: int) -> str:
        command = command_line(pid)
        if "appserver.host" in command:
            return "app hosts"
        if "daphne" in command or (pid == self.process.pid and self.workers == 1):
            return "Daphne"
        return "bokeh-server" if pid == self.process.pid else "other"

    def describe(self) -> str:
        database = "PostgreSQL + Redis" if self.database_url else "SQLite"
        return (f"{self.name}: {len(self.workers_pids()) or 1} Daphne worker(s), {len(self.hosts_pids())} app host "
                f"processes, {database}; {len(self.processes())} processes")

    def victim(self, what: str) -> int | None:
        if what == "host":  # the one with the most memory: the most sessions
            hosts = self.hosts_pids()
            return max(hosts, key=lambda pid: total_rss([pid])) if hosts else None
        workers = self.workers_pids()  # with --workers 1, bokeh-server is the Daphne
        return workers[0] if workers else self.process.pid


def identity(pid: int) -> tuple[str, str]:
    """A process's command line and start time: what tells it from a later one with its id."""
    try:
        started = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ("", "")
    return (command_line(pid), started)


def total_rss(pids: list[int]) -> float:
    """MiB; a process that has gone meanwhile counts nothing."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += rss_mib(pid)
    return total


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each process (those that have gone are left out)."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return used


def cpu_by_role(server: Server, before: dict[int, float], after: dict[int, float]) -> dict[str, float]:
    """CPU seconds between two readings, by what the processes do."""
    by_role: dict[str, float] = {}
    for pid, seconds in after.items():
        role = server.role(pid)
        by_role[role] = by_role.get(role, 0.0) + seconds - before.get(pid, 0.0)
    return by_role


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two readings, of the processes in the second (new ones from zero)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


# --- the clients: one session each, speaking the system's protocol -----------------------------


def now() -> float:
    return time.monotonic()  # system-wide: the client processes' clocks agree with the parent's


def find_object(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """The model named ``name`` in a serialized Bokeh document (``{"type": "object", "id", "attributes"}``)."""
    todo: list[Any] = [doc]
    while todo:
        value = todo.pop()
        if isinstance(value, dict):
            if value.get("type") == "object" and value.get("attributes", {}).get("name") == name:
                return value
            todo += value.values()
        elif isinstance(value, list):
            todo += value
    raise LookupError(f"no model called {name!r} in the document")


def touches(events: list[dict[str, Any]], model_id: str) -> bool:
    """Whether any of the patch's events changes the model ``model_id`` (the callback's new data)."""
    for event in events:
        model = event.get("model") or event.get("column_source")
        if isinstance(model, dict) and model.get("id") == model_id:
            return True
    return False


class Refused(Exception):
    """The server refused the connection for good."""


@dataclass
class Client:
    """One session, as a page holds it: opened, then changes sent and the callback's data received."""

    base: str
    http: Callable[[str], str]  # GET, run in a thread
    ws: Any = None
    slider: str | None = None
    source: str | None = None
    waiting: asyncio.Future | None = None  # the change in flight: resolved when its data arrives
    reader: asyncio.Task | None = None
    closed_at: float | None = None
    reconnects: int = 0
    answered: float | None = None  # the slider's value of the last change whose data came back
    sending: float | None = None  # the value of the change in flight
    kept: bool | None = None  # after a reconnect: whether the server still had the slider where it was
    seq: itertools.count = field(default_factory=itertools.count)

    async def open(self) -> None:
        raise NotImplementedError

    async def send_change(self, value: float) -> None:
        raise NotImplementedError

    async def reconnect(self) -> bool:
        """After a dropped connection, what the system's page does; whether it is back (and
        ``kept`` set)."""
        return False

    def data_arrived(self) -> None:
        if self.waiting is not None and not self.waiting.done():
            self.answered = self.sending
            self.waiting.set_result(now())

    def connection_lost(self) -> None:
        if self.closed_at is None:
            self.closed_at = now()
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_exception(ConnectionError("the connection dropped"))

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)


class BokehClient(Client):
    """``bokeh serve``'s protocol, as ``bokeh.client`` speaks it."""

    async def open(self) -> None:
        self.token = generate_jwt_token(generate_session_id())
        await self._connect()

    async def _connect(self) -> None:
        """Connect with the session's token (the session is created the first time), and pull
        the document."""
        url = f"ws{self.base.removeprefix('http')}/{APP_NAME}/ws"
        self.ws = await websockets.connect(url, subprotocols=["bokeh", self.token], max_size=None, compression=None,
                                           open_timeout=60, ping_interval=None)
        self.receiver = Receiver(Protocol())
        ack = await self._next()
        if ack.header["msgtype"] != "ACK":
            raise RuntimeError(f"bokeh serve began with {ack.header['msgtype']}")
        await self._send("PULL-DOC-REQ", {})
        reply = await self._next()
        if reply.header["msgtype"] != "PULL-DOC-REPLY":
            raise RuntimeError(f"bokeh serve answered PULL-DOC-REQ with {reply.header['msgtype']}: {reply.content}")
        doc = reply.content["doc"]
        slider = find_object(doc, "amplitude")
        self.slider, self.source, self.value = slider["id"], find_object(doc, "wave")["id"], slider["attributes"]["value"]
        self.reader = asyncio.create_task(self._read())

    async def reconnect(self) -> bool:
        """As BokehJS does (``reconnect_session``): at once, then after 2, 4, 8 and 16 s; the
        same session id, whose document it pulls again."""
        for delay in BOKEHJS_RECONNECT_DELAYS:
            await asyncio.sleep(delay)
            try:
                await self._connect()
            except (OSError, RuntimeError, websockets.exceptions.WebSocketException):
                continue
            self.reconnects += 1
            self.kept = self.answered is not None and self.value == self.answered
            return True
        return False

    async def _next(self) -> Any:
        while True:
            message = await self.receiver.consume(await self.ws.recv())
            if message is not None:
                return message

    async def _send(self, msgtype: str, content: dict[str, Any]) -> None:
        header = {"msgid": str(next(self.seq)), "msgtype": msgtype}
        for part in (header, {}, content):
            await self.ws.send(json.dumps(part))

    async def _read(self) -> None:
        try:
            while True:
                message = await self._next()
                if message.header["msgtype"] == "PATCH-DOC" and touches(message.content.get("events", []), self.source):
                    self.data_arrived()
        except websockets.exceptions.ConnectionClosed:
            self.connection_lost()

    async def send_change(self, value: float) -> None:
        await self._send("PATCH-DOC", {"events": [
            {"kind": "ModelChanged", "model": {"id": self.slider}, "attr": "value", "new": value},
            {"kind": "ModelChanged", "model": {"id": self.slider}, "attr": "value_throttled", "new": value},
        ]})


class BokehsiteClient(Client):
    """bokehsite's protocol, as an app page's frame speaks it."""

    version: int = 0
    window: int = protocol.DEFAULT_WINDOW
    reported: int = 0

    async def open(self) -> None:
        page = await asyncio.get_running_loop().run_in_executor(None, self.http, f"{self.base}/apps/{APP_NAME}/")
        frame = re.search(r'<iframe[^>]*\bid="app-frame"[^>]*\bsrc="([^"]+)"', page)
        document = re.search(r'name="document" value="([^"]+)"', page)
        if not (frame and document):
            raise RuntimeError(f"no app frame in the page: {page[:300]!r}")
        token_url = re.search(r'<iframe[^>]*\bdata-token-url="([^"]+)"', page)
        self.document = document.group(1)
        self.frame_token = parse_qs(urlsplit(html.unescape(frame.group(1))).query)["frame_token"][0]
        self.token_url = f"{self.base}{html.unescape(token_url.group(1))}" if token_url else None
        await self._connect(None)
        snapshot, _ = await self._next_document()
        if not isinstance(snapshot, protocol.Snapshot):
            raise RuntimeError(f"bokehsite answered sync with {snapshot.TYPE}")
        self.version = snapshot.version
        self.slider, self.source = find_object(snapshot.doc, "amplitude")["id"], find_object(snapshot.doc, "wave")["id"]
        self.reader = asyncio.create_task(self._read())

    async def _connect(self, version: int | None) -> None:
        url = f"{protocol.url(self.base, self.document)}?frame_token={self.frame_token}"
        # A sandboxed frame has an opaque origin.
        self.ws = await websockets.connect(url, origin="null", max_size=None, compression=None, open_timeout=60,
                                           ping_interval=None)
        hello, _ = protocol.decode(await self.ws.recv(), sender=protocol.SERVER)
        if isinstance(hello, protocol.Error):
            raise Refused(f"bokehsite refused the connection: {hello.code}: {hello.detail}")
        if not isinstance(hello, protocol.Hello):
            raise RuntimeError(f"bokehsite began with {hello.TYPE}")
        self.window = hello.window
        await self.ws.send(protocol.Sync(version).encode())

    async def _next_document(self) -> tuple[protocol.Message, list]:
        while True:
            message, buffers = protocol.decode(await self.ws.recv(), sender=protocol.SERVER)
            if isinstance(message, (protocol.Snapshot, protocol.Patches)):
                return message, buffers

    async def _read(self) -> None:
        try:
            while True:
                message, _ = protocol.decode(await self.ws.recv(), sender=protocol.SERVER)
                if isinstance(message, protocol.Patches):
                    self.version = message.version
                    if any("patch" in item and touches(item["patch"].get("events", []), self.source)
                           for item in message.items):
                        self.data_arrived()
                elif isinstance(message, protocol.Snapshot):
                    self.version = message.version
                    self.data_arrived()
                else:
                    continue
                if self.version - self.reported >= self.window // 2:  # flow control, as the frame does
                    self.reported = self.version
                    await self.ws.send(protocol.Applied(self.version).encode())
        except websockets.exceptions.ConnectionClosed:
            self.connection_lost()

    async def send_change(self, value: float) -> None:
        key = f"{id(self):x}:{next(self.seq)}"
        patch = {"events": [
            {"kind": "ModelChanged", "model": {"id": self.slider}, "attr": "value", "new": value},
            {"kind": "ModelChanged", "model": {"id": self.slider}, "attr": "value_throttled", "new": value},
        ]}
        await self.ws.send(protocol.Patch(key, patch, key=key).encode())

    async def reconnect(self) -> bool:
        """As the frame does: after a pause that doubles with each failure, a fresh frame token
        from the page's token URL, then ``sync`` from the version it has."""
        delay = FRAME_FIRST_DELAY
        loop = asyncio.get_running_loop()
        for _ in range(FRAME_ATTEMPTS):
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, FRAME_MAX_DELAY)
            if self.token_url:
                with contextlib.suppress(Exception):
                    self.frame_token = json.loads(await loop.run_in_executor(None, self.http, self.token_url))["token"]
            try:
                await self._connect(self.version)
            except Refused:  # the session is gone (or its document): the frame says so and stops
                return False
            except websockets.exceptions.ConnectionClosed as e:
                if e.rcvd is not None and e.rcvd.code in protocol.FINAL_CLOSES:
                    return False
                continue
            except (OSError, RuntimeError, websockets.exceptions.WebSocketException):
                continue
            self.reconnects += 1
            self.reader = asyncio.create_task(self._read())
            self.kept = self.answered is not None and await self._stored_value() == self.answered
            return True
        return False

    async def _stored_value(self) -> float | None:
        """The slider's value in the session's document as the server has it now (a second
        connection, asking for the whole document)."""
        url = f"{protocol.url(self.base, self.document)}?frame_token={self.frame_token}"
        async with websockets.connect(url, origin="null", max_size=None, compression=None, open_timeout=60,
                                      ping_interval=None) as ws:
            await ws.recv()  # hello
            await ws.send(protocol.Sync(None).encode())
            while True:
                message, _ = protocol.decode(await ws.recv(), sender=protocol.SERVER)
                if isinstance(message, protocol.Snapshot):
                    return find_object(message.doc, "amplitude")["attributes"].get("value")


CLIENTS = {"bokeh": BokehClient, "bokehsite": BokehsiteClient}


# --- a client process: a share of the sessions, driven phase by phase from the parent ----------


def mover_result() -> dict[str, Any]:
    """What a moving phase reports of one session."""
    return {"ms": [], "lost": 0, "late": 0, "sent": 0, "after_kill_ms": [], "hit_at": None, "resumed_at": None,
            "dropped_at": None, "reconnected": False, "kept": None, "errors": []}


class Share:
    """The sessions of one client process. Each method is one phase's work and returns its figures."""

    def __init__(self, kind: str, base: str, concurrency: int):
        self.kind, self.base = kind, base
        self.clients: list[Client] = []
        self.pool = ThreadPoolExecutor(max(1, concurrency))
        self.http = requests.Session()
        self.http.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=max(1, concurrency)))

    def get(self, url: str) -> str:
        response = self.http.get(url, timeout=120)
        if response.status_code != 200:  # an app page that failed says why (appserver/failed.html)
            error = re.search(r'id="app-error" data-code="([^"]*)".*?<pre>(.*?)</pre>', response.text, re.DOTALL)
            why = f"{error.group(1)}: {html.unescape(error.group(2)).strip()[:200]}" if error else response.text[:200]
            raise RuntimeError(f"HTTP {response.status_code} for {urlsplit(url).path}: {why}")
        return response.text

    async def open(self, count: int, concurrency: int) -> dict[str, Any]:
        asyncio.get_running_loop().set_default_executor(self.pool)
        gate = asyncio.Semaphore(concurrency)
        times, failures = [], []

        async def one() -> None:
            async with gate:
                client = CLIENTS[self.kind](self.base, self.get)
                start = now()
                try:
                    await client.open()
                except Exception as e:  # noqa: BLE001 - a failed session is counted, and the run goes on
                    failures.append(f"{type(e).__name__}: {e}")
                    await client.close()
                    return
                times.append(now() - start)
                self.clients.append(client)

        start = now()
        await asyncio.gather(*(one() for _ in range(count)))
        return {"start": start, "end": now(), "open_s": times, "failures": failures}

    async def move(self, movers: int, interval: float, until: float, kill_at: float | None = None) -> dict[str, Any]:
        """``movers`` of the sessions change the slider every ``interval`` s until ``until``; one
        change in flight per session (a change whose data has not come back delays the next)."""
        # After ``kill_at``: when the session was first hit (its connection dropped, or a change
        # went unanswered) and when a change was answered again after that.
        results = [mover_result() for _ in range(movers)]

        async def mover(client: Client, result: dict[str, Any], offset: float) -> None:
            tick = now() + offset
            # Never the app's starting value: a session made anew (bokeh serve's, after a kill)
            # would see no change, and run no callback.
            values = itertools.cycle([v for v in np.round(np.arange(-2.0, 2.01, 0.1), 1).tolist() if v != START_VALUE])
            while True:
                await asyncio.sleep(max(0.0, tick - now()))
                if now() >= until:
                    return
                if client.closed_at is not None:  # the connection dropped: come back, as the page does
                    result["dropped_at"] = result["dropped_at"] or client.closed_at
                    result["hit_at"] = result["hit_at"] or client.closed_at
                    if not await client.reconnect():
                        result["errors"].append("no reconnection")
                        return
                    client.closed_at = None
                    result["reconnected"], result["kept"] = True, client.kept
                client.waiting = asyncio.get_running_loop().create_future()
                client.sending = next(values)
                sent = now()
                try:
                    await client.send_change(client.sending)
                    result["sent"] += 1
                    await asyncio.wait_for(client.waiting, CHANGE_TIMEOUT)
                except (TimeoutError, ConnectionError, websockets.exceptions.ConnectionClosed) as e:
                    client.waiting.cancel()  # the send itself failed: nobody waits for its answer
                    result["lost"] += 1
                    if len(result["errors"]) < 3:
                        result["errors"].append(f"{type(e).__name__}: {e}")
                    if kill_at is not None and now() >= kill_at:
                        result["hit_at"] = result["hit_at"] or min(sent, client.closed_at or sent)
                    tick = now()
                    continue
                ms = (now() - sent) * 1000
                if kill_at is not None and sent >= kill_at:
                    result["after_kill_ms"].append(ms)
                    if result["hit_at"] is not None and result["resumed_at"] is None:
                        result["resumed_at"] = now()
                else:
                    result["ms"].append(ms)
                tick += interval
                if tick < now():  # the answer took longer than the interval: the next goes at once
                    result["late"] += 1
                    tick = now()

        await asyncio.gather(*(mover(client, result, interval * i / max(1, movers))
                               for i, (client, result) in enumerate(zip(self.clients[:movers], results))))
        if kill_at is not None:  # sessions held open but not moving: did their connection drop?
            async def idle(client: Client) -> dict[str, Any]:
                dropped_at = client.closed_at
                reconnected = await client.reconnect()
                if reconnected:
                    client.closed_at = None
                return {**mover_result(), "hit_at": dropped_at, "dropped_at": dropped_at, "reconnected": reconnected}

            results += await asyncio.gather(*(idle(client) for client in self.clients[movers:]
                                              if client.closed_at is not None))
        return {"movers": results, "open": sum(client.closed_at is None for client in self.clients)}

    async def close(self) -> dict[str, Any]:
        await asyncio.gather(*(client.close() for client in self.clients))
        self.clients.clear()
        return {}


def client_process(connection: Any, kind: str, base: str, concurrency: int) -> None:
    """A client process: runs each phase the parent sends (name, arguments), answers its figures
    and the CPU seconds the process used for it."""

    async def serve() -> None:
        share = Share(kind, base, concurrency)
        loop = asyncio.get_running_loop()
        while True:
            message = await loop.run_in_executor(None, connection.recv)
            if message is None:
                return
            phase, kwargs = message
            before = resource.getrusage(resource.RUSAGE_SELF)
            try:
                figures = await getattr(share, phase)(**kwargs)
            except Exception as e:  # noqa: BLE001 - reported to the parent, which stops the run
                figures = {"error": f"{type(e).__name__}: {e}"}
            after = resource.getrusage(resource.RUSAGE_SELF)
            figures["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            connection.send(figures)

    asyncio.run(serve())


class Clients:
    """The client processes of one system's run."""

    def __init__(self, kind: str, base: str, processes: int, concurrency: int):
        context = multiprocessing.get_context("fork")
        self.connections, self.processes = [], []
        for _ in range(processes):
            ours, theirs = context.Pipe()
            process = context.Process(target=client_process, args=(theirs, kind, base, concurrency), daemon=True)
            process.start()
            self.connections.append(ours)
            self.processes.append(process)

    def run(self, phase: str, shares: list[dict[str, Any]], timeout: float = 600) -> list[dict[str, Any]]:
        """Every client process runs ``phase`` with its share of the arguments, at once."""
        for connection, kwargs in zip(self.connections, shares):
            connection.send((phase, kwargs))
        answers = []
        for connection in self.connections:
            if not connection.poll(timeout):
                raise RuntimeError(f"a client process did not finish {phase} within {timeout} s")
            answers.append(connection.recv())
        if errors := [answer["error"] for answer in answers if "error" in answer]:
            raise RuntimeError(f"{phase} failed in a client process: {errors[0]}")
        return answers

    def stop(self) -> None:
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.send(None)
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.kill()


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (i < total % parts) for i in range(parts)]


# --- the phases --------------------------------------------------------------------------------


@dataclass
class Run:
    """One system's run: its server, its clients, and the figures of each phase so far."""

    server: Server
    clients: Clients
    args: argparse.Namespace
    figures: dict[str, Any] = field(default_factory=dict)

    def shares(self, **totals: int) -> list[dict[str, int]]:
        """Each client process's part of ``totals`` (sessions, movers, concurrency)."""
        parts = {name: split(total, len(self.clients.processes)) for name, total in totals.items()}
        return [{name: parts[name][i] for name in totals} for i in range(len(self.clients.processes))]


def steady(server: Server, quiet: float = 3.0, longest: float = 30.0) -> None:
    """Wait until no process of ``server`` has started or ended for ``quiet`` seconds."""
    deadline = time.monotonic() + longest
    last, since = sorted(server.processes()), time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() < deadline:
        time.sleep(0.5)
        current = sorted(server.processes())
        if current != last:
            last, since = current, time.monotonic()


def phase_open(run: Run) -> None:
    """Warm up (sessions not counted: they pay for what is done once, and start the processes
    that start with the first pages), then open the sessions as fast as the clients can:
    sessions per second and memory per session."""
    args = run.args
    run.clients.run("open", [{"count": share["count"], "concurrency": 1}
                             for share in run.shares(count=WARMUP_SESSIONS)])
    steady(run.server)
    time.sleep(SETTLE_S)
    rss_before = total_rss(run.server.processes())
    answers = run.clients.run("open", [{"count": share["count"], "concurrency": max(1, share["concurrency"])}
                                       for share in run.shares(count=args.sessions, concurrency=args.open_concurrency)])
    elapsed = max(a["end"] for a in answers) - min(a["start"] for a in answers)
    opened = sum(len(a["open_s"]) for a in answers)
    time.sleep(SETTLE_S)
    rss_after = total_rss(run.server.processes())
    rss_by_process = sorted(((run.server.role(pid), round(total_rss([pid]), 1)) for pid in run.server.processes()),
                            key=lambda item: (item[0], -item[1]))
    before = cpu_seconds(run.server.processes())
    time.sleep(IDLE_S)  # nobody moves: what holding the sessions open costs
    after = cpu_seconds(run.server.processes())
    idle_cpu = cpu_used(before, after)
    run.figures["server"] = run.server.describe()  # now: some processes start with the first pages
    run.figures["open"] = {
        "sessions": opened, "failures": sum(len(a["failures"]) for a in answers),
        "failure_examples": [f for a in answers for f in a["failures"]][:3],
        "elapsed_s": elapsed, "sessions_per_s": opened / elapsed if elapsed else float("nan"),
        "open_s": [t for a in answers for t in a["open_s"]],
        "rss_before_mib": rss_before, "rss_after_mib": rss_after, "rss_by_process_mib": rss_by_process,
        "mib_per_session": (rss_after - rss_before) / opened if opened else float("nan"),
        "client_cpu_s": sum(a["cpu_s"] for a in answers), "idle_cpu_share": idle_cpu / IDLE_S,
        "idle_cpu_by_role_s": cpu_by_role(run.server, before, after),
    }


def phase_moving(run: Run) -> None:
    """The movers change the slider for ``--duration`` s: round trips, and who used the CPU."""
    args = run.args
    pids = run.server.processes()
    before = cpu_seconds(pids)
    started = now()
    answers = run.clients.run("move", [{"movers": share["movers"], "interval": args.interval,
                                        "until": started + args.duration} for share in run.shares(movers=args.moving)],
                              timeout=args.duration + 120)
    elapsed = now() - started
    after = cpu_seconds(run.server.processes())
    server_cpu = cpu_used(before, after)
    by_role = cpu_by_role(run.server, before, after)
    movers = [m for a in answers for m in a["movers"]]
    run.figures["moving"] = {
        "ms": [ms for m in movers for ms in m["ms"]], "sent": sum(m["sent"] for m in movers),
        "lost": sum(m["lost"] for m in movers), "late": sum(m["late"] for m in movers),
        "errors": [e for m in movers for e in m["errors"]][:5],
        "elapsed_s": elapsed, "server_cpu_s": server_cpu, "server_cpu_by_role_s": by_role, "client_cpu_s": sum(a["cpu_s"] for a in answers),
        "rss_mib": total_rss(run.server.processes()), "open": sum(a["open"] for a in answers),
    }


def phase_kill(run: Run) -> None:
    """One server process killed with SIGKILL a few seconds into a moving phase: what dropped,
    what came back, the changes lost and how long the movers were without answers."""
    args = run.args
    victim = run.server.victim(args.kill)
    victim_command = command_line(victim) if victim else ""
    started = now()
    kill_at = started + 3.0
    until = kill_at + args.after_kill
    shares = run.shares(movers=args.moving)
    for connection, share in zip(run.clients.connections, shares):
        connection.send(("move", {"movers": share["movers"], "interval": args.interval, "until": until,
                                  "kill_at": kill_at}))
    time.sleep(max(0.0, kill_at - now()))
    killed = False
    if victim and command_line(victim) == victim_command:
        os.kill(victim, signal.SIGKILL)
        killed = True
    answers = []
    for connection in run.clients.connections:
        if not connection.poll(args.after_kill + 120):
            raise RuntimeError("a client process did not finish the kill phase")
        answers.append(connection.recv())
    if errors := [answer["error"] for answer in answers if "error" in answer]:
        raise RuntimeError(f"the kill phase failed in a client process: {errors[0]}")
    time.sleep(1)
    entries = [m for a in answers for m in a["movers"]]  # the movers of each share, then its dropped idle sessions
    movers = [m for a, share in zip(answers, shares) for m in a["movers"][:share["movers"]]]
    dropped = [m for m in entries if m["dropped_at"] is not None]
    movers_dropped = [m for m in movers if m["dropped_at"] is not None]
    hit = [m for m in movers if m["hit_at"] is not None]
    resumed = [m for m in hit if m["resumed_at"] is not None]
    run.figures["kill"] = {
        "killed": killed, "victim": victim_command[:120],
        "server_alive": run.server.answers(), "processes_after": len(run.server.processes()),
        "sessions_dropped": len(dropped), "reconnected": sum(bool(m["reconnected"]) for m in dropped),
        "movers": len(movers), "movers_dropped": len(movers_dropped), "movers_hit": len(hit),
        "movers_resumed": len(resumed),
        "movers_state_kept": sum(m["kept"] is True for m in movers_dropped),
        "resume_s": [m["resumed_at"] - kill_at for m in resumed],
        "dropped_after_s": [m["dropped_at"] - kill_at for m in dropped],
        "lost_by_mover": [m["lost"] for m in hit],
        "changes_lost": sum(m["lost"] for m in movers), "changes_sent": sum(m["sent"] for m in movers),
        "ms_after": [ms for m in movers for ms in m["after_kill_ms"]],
        "open_after": sum(a["open"] for a in answers),
        "errors": [e for m in movers for e in m["errors"]][:5],
    }


PHASES: dict[str, Callable[[Run], None]] = {"open": phase_open, "moving": phase_moving}
FAULT_PHASES: dict[str, Callable[[Run], None]] = {"kill": phase_kill}  # run with --kill


# Lines of a server's output that are not news: access logs, start and stop.
ROUTINE = re.compile(r"^(\d+\.\d+\.\d+\.\d+:\d+ - - |bokeh-server: |Starting server|Configuring endpoint|Listening on|"
                     r"HTTP/2 support|Killed \d+ pending|\d{4}-\d\d-\d\d [\d:,]+ (Starting Bokeh|Bokeh app running|Starting"
                     r"|User authentication|Websocket origin|Cannot start Bokeh server|Torndado|Tornado)|.*\bWebSocket connection "
                     r"(opened|closed)|.*\bServerConnection created|.*\b200 GET )")


TRACEBACK_FRAMING = ("Traceback (most recent call last)", "During handling of the above exception",
                     "The above exception was the direct cause")


def log_news(output: str, top: int = 8) -> list[tuple[int, str]]:
    """What the server said beyond routine lines, alike lines together (ids and numbers
    masked), the most frequent first."""
    counts: dict[str, int] = {}
    for line in output.splitlines():
        if not line.strip() or line[0].isspace() or ROUTINE.match(line) or line.startswith(TRACEBACK_FRAMING):
            continue  # a traceback counts by its last line, the exception
        line = line.strip()
        key = re.sub(r"\b[0-9a-f]{32}\b|\b[0-9a-f-]{36}\b", "ID", line)
        key = re.sub(r"\d+(\.\d+)?", "N", key)
        key = key if len(key) <= 200 else f"{key[:100]} … {key[-90:]}"
        counts[key] = counts.get(key, 0) + 1
    return sorted(((n, key) for key, n in counts.items()), reverse=True)[:top]


def run_system(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    print(f"{server.name}: starting…", file=sys.stderr, flush=True)
    server.start()
    figures: dict[str, Any] = {"server": server.name}
    clients = Clients(server.kind, server.base, args.client_processes, args.open_concurrency)
    run = Run(server, clients, args, figures)
    try:
        phases = {**PHASES, **(FAULT_PHASES if args.kill else {})}
        for name, phase in phases.items():
            print(f"{server.name}: {name}…", file=sys.stderr, flush=True)
            phase(run)
        clients.run("close", [{} for _ in clients.processes])
    except Exception:
        print(f"--- {server.name} log:\n{server.output()[-5000:]}", file=sys.stderr)
        raise
    finally:
        clients.stop()
        server.stop()
        if args.logs:
            Path(args.logs).mkdir(parents=True, exist_ok=True)
            (Path(args.logs) / server.log.name).write_bytes(server.log.read_bytes())
    figures["log"] = log_news(server.output())
    return figures


# --- the report --------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def report(figures: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    width = max(len(name) for name in figures) + 2
    print()
    for name, f in figures.items():
        print(f"  {name}: {f['server']}")
    print()
    print(f"Opening {args.sessions} sessions, {args.open_concurrency} at a time (a session counts once its document "
          f"has arrived):")
    print(f"  {'':<{width}} {'opened':>6} {'failed':>6} {'per s':>7} {'open p50 s':>10} {'open p99 s':>10} "
          f"{'RSS before':>10} {'RSS after':>10} {'MiB/session':>11} {'client CPU s':>12} {'idle CPU':>8}")
    for name, f in figures.items():
        o = f["open"]
        print(f"  {name:<{width}} {o['sessions']:>6} {o['failures']:>6} {o['sessions_per_s']:>7.1f} "
              f"{percentile(o['open_s'], 50):>10.3f} {percentile(o['open_s'], 99):>10.3f} {o['rss_before_mib']:>10.0f} "
              f"{o['rss_after_mib']:>10.0f} {o['mib_per_session']:>11.2f} {o['client_cpu_s']:>12.1f} "
              f"{o['idle_cpu_share']:>8.0%}")
    print(f"  (RSS: resident MiB of all the server's processes, app processes included, after {WARMUP_SESSIONS} warm-up sessions "
          f"and {SETTLE_S:g} s after the last session opened; idle CPU: the servers' CPU, in cores, over the "
          f"{IDLE_S:g} s after that, every session open and none moving)")
    for name, f in figures.items():
        print(f"  {name}: RSS MiB by process: " + ", ".join(f"{role} {mib:.0f}" for role, mib in f["open"]["rss_by_process_mib"]))
        roles = ", ".join(f"{role} {seconds:.1f}" for role, seconds in sorted(f["open"]["idle_cpu_by_role_s"].items()))
        print(f"  {name}: idle CPU s by process: {roles}")
    print()
    print(f"Moving: {args.moving} of the sessions change a slider every {args.interval:g} s for {args.duration:g} s "
          "(round trip: change sent → callback's new data received):")
    print(f"  {'':<{width}} {'changes':>7} {'lost':>5} {'late':>5} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
          f"{'server CPU s':>12} {'(% of a core)':>13} {'client CPU s':>12}")
    for name, f in figures.items():
        m = f["moving"]
        ms = m["ms"]
        print(f"  {name:<{width}} {len(ms):>7} {m['lost']:>5} {m['late']:>5} {percentile(ms, 50):>7.1f} "
              f"{percentile(ms, 99):>7.1f} {max(ms) if ms else float('nan'):>7.1f} {m['server_cpu_s']:>12.1f} "
              f"{m['server_cpu_s'] / m['elapsed_s']:>13.0%} {m['client_cpu_s']:>12.1f}")
    print("  (late: answers that took longer than the interval, so the next change went later; lost: no answer "
          f"within {CHANGE_TIMEOUT:g} s)")
    for name, f in figures.items():
        roles = ", ".join(f"{role} {seconds:.1f}" for role, seconds in sorted(f["moving"]["server_cpu_by_role_s"].items()))
        print(f"  {name}: server CPU s by process: {roles}")
    for name, f in figures.items():
        for error in f["moving"]["errors"]:
            print(f"  {name}: {error}")
    if any(f["log"] for f in figures.values()):
        print()
        print("What the servers logged beyond routine lines (times; numbers and ids masked):")
        for name, f in figures.items():
            for count, line in f["log"]:
                print(f"  {name}: {count:>5} × {line}")
    if not any("kill" in f for f in figures.values()):
        return
    print()
    print(f"kill -9 of one server process ({args.kill}) 3 s into a moving phase, the sessions moving {args.after_kill:g} s more:")
    print(f"  {'':<{width}} {'answers':>9} {'dropped':>7} {'back':>5} {'movers hit':>12} {'back':>5} "
          f"{'state kept':>10} {'resume p50 s':>12} {'resume max s':>12} {'unanswered':>12} {'open at end':>11}")
    for name, f in figures.items():
        k = f.get("kill")
        if not k:
            continue
        r = k["resume_s"]
        print(f"  {name:<{width}} {'yes' if k['server_alive'] else 'NO':>9} {k['sessions_dropped']:>7} "
              f"{k['reconnected']:>5} {k['movers_hit']:>5}/{k['movers']:<6} {k['movers_resumed']:>5} "
              f"{k['movers_state_kept']:>10} {percentile(r, 50):>12.2f} {max(r) if r else float('nan'):>12.2f} "
              f"{k['changes_lost']:>5}/{k['changes_sent']:<6} {k['open_after']:>11}")
        print(f"  {'':<{width}} killed: {k['victim']}; {k['processes_after']} server processes after")
        for error in k["errors"]:
            print(f"  {'':<{width}} {error}")
    print("  (dropped: sessions whose connection closed; back: reconnected, as the page would; movers hit: whose "
          "connection dropped or a change went unanswered after the kill, and back: answered again after that; state "
          "kept: dropped movers whose session still had the slider at the last value answered before the drop; "
          "resume: from the kill to a hit mover's first answered change; unanswered: changes with no answer within "
          f"{CHANGE_TIMEOUT:g} s or cut by the drop)")


def without_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nan(v) for v in value]
    return value


def main() -> None:
    args = parse_args()
    print(f"bokehsite hosted apps under load against bokeh serve; {machine()}")
    print(f"bokehsite at {revision()}; systems: {', '.join(args.systems)}; {args.sessions} sessions, {args.moving} "
          f"moving every {args.interval:g} s for {args.duration:g} s; {args.client_processes} client processes; "
          f"bokehsite limits lifted: {', '.join(f'{k}={v}' for k, v in BOKEHSITE_LIMITS.items())}", flush=True)
    figures: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-apps-load-") as tmp:
        app = Path(tmp) / f"{APP_NAME}.py"
        app.write_text(APP_SOURCE)
        for system in SYSTEMS:
            if system not in args.systems:
                continue
            if system == "bokeh":
                server: Server = BokehServe(Path(tmp), app, args.num_procs)
            else:
                server = Bokehsite(Path(tmp), app, args.workers, args.app_processes, args.database_url, args.redis_url)
            figures[server.name] = run_system(server, args)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    report(figures, args)
    if args.json:
        out = json.dumps(without_nan({"machine": machine(), "revision": revision(), "options": {
            k: v for k, v in vars(args).items() if k != "json"}, "figures": figures}), indent=1)
        if args.json == "-":
            print(out)
        else:
            Path(args.json).write_text(out + "\n")


if __name__ == "__main__":
    main()
