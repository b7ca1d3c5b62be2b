"""Real server processes for end-to-end tests and benchmarks: Daphne, a static site of another
origin, and for fault tests a PostgreSQL and a Redis of their own and a TCP balancer in front of
several Daphnes."""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The largest body or websocket message test servers accept, unless the environment says
# (BOKEHSITE_MAX_BODY_BYTES): enough for a million-point stream.
MAX_BODY_BYTES = 64 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(db: dict[str, Any]) -> str:
    """A DATABASE_URL for Django database settings (after the test database is set up)."""
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class DaphneServer:
    """``daphne bokehsite.asgi:application`` on a free port, with extra environment variables.

    ``root`` is the checkout whose code it runs (default: this one; benchmarks compare others).
    With ``runserver``, it is ``manage.py runserver`` instead, as ``scripts/serve.sh`` runs it.
    """

    def __init__(self, env: dict[str, str] | None = None, port: int | None = None, root: Path = ROOT,
                 runserver: bool = False):
        self.root = root
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bokehsite.settings", **(env or {})}
        self.max_body_bytes = int(self.env.setdefault("BOKEHSITE_MAX_BODY_BYTES", str(MAX_BODY_BYTES)))
        self.runserver = runserver
        if root != ROOT:  # its own code first, before the installed (editable) bokehsite
            self.env["PYTHONPATH"] = os.pathsep.join([str(root), self.env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self.log = tempfile.NamedTemporaryFile(prefix="daphne-", suffix=".log", delete=False)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> DaphneServer:
        return self.launch().wait_listening(timeout)

    def launch(self) -> DaphneServer:
        """Start the process, without waiting for it to listen (to start several at once)."""
        if self.runserver:  # it reads the websocket limits from the settings
            command = ["manage.py", "runserver", "--noreload", f"127.0.0.1:{self.port}"]
        else:  # Daphne's command line does not read settings: it is told the limit of the settings
            limit = str(self.max_body_bytes)
            command = ["-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "--websocket-max-message-size", limit,
                       "--websocket-max-frame-size", limit, "bokehsite.asgi:application"]
        self.process = subprocess.Popen(
            [sys.executable, *command], cwd=self.root, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        return self

    def wait_listening(self, timeout: float = 30.0) -> DaphneServer:
        try:
            wait_for_port(self.port, timeout, self.process, self.output)
        except RuntimeError:
            self.stop()
            raise
        return self

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def pause(self) -> None:
        """Freeze the process (SIGSTOP), as a machine that stalls does; ``resume()`` thaws it."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """``kill -9``: gone at once, with whatever it had not yet sent."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)

    def __enter__(self) -> DaphneServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class StaticSite:
    """Serves the files of ``root`` on a free port of 127.0.0.1, in a thread: a page of another
    origin than the server's (a site that embeds plots, a notebook's page)."""

    def __init__(self, root: Path):
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> StaticSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- a fault harness: services of its own, killed and restarted by their ids -------------------


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its programs as the ``postgres`` user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def postgres_bindir() -> Path | None:
    """Where this machine's PostgreSQL server programs are (``initdb``, ``postgres``), if anywhere."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return candidates[-1].parent if candidates else None


class ThrowawayPostgres:
    """A PostgreSQL server of its own, in a temporary folder, on a free port: stopped and
    started by its process id, never touching the machine's own server."""

    def __init__(self) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError("no PostgreSQL server programs (initdb) on this machine")
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="bokehsite-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.root / "postgres.log"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                                     "-E", "UTF8", "--no-sync"]), check=True, capture_output=True, timeout=60)

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 30.0) -> ThrowawayPostgres:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                _as_postgres([str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                              "-k", str(self.root), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]),
                stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, timeout, self.process, self.output)
        import psycopg

        deadline = time.monotonic() + timeout
        while True:  # listening is not yet accepting: wait for the first connection to succeed
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster, by the id in its pid file): open transactions
        are rolled back, clients are disconnected."""
        if self.process and self.process.poll() is None:
            pid_file = self.data / "postmaster.pid"
            pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else self.process.pid
            os.kill(pid, signal.SIGINT)
            self.process.wait(30)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class ThrowawayRedis:
    """A ``redis-server`` of its own on a free port, keeping nothing on disk."""

    def __init__(self) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("no redis-server on this machine")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> ThrowawayRedis:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", tempfile.gettempdir()], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, timeout, self.process, lambda: "")
        return self

    def kill(self) -> None:
        """Gone at once, as a crashed server is."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def children_of(pid: int) -> list[int]:
    """The ids of the processes whose parent is ``pid``."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes], output) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the process exited with {process.returncode}:\n{output()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} within {timeout} s:\n{output()}")


class Balancer:
    """A round-robin TCP balancer in front of several servers, as an operator would put one: each
    new connection goes to the next server that accepts it. It can lose what one server sends to
    its clients from some moment on (``hold_replies``), as a network that loses the way back would;
    when either side of a connection closes, it closes the other."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = list(ports)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.links: list[dict[str, Any]] = []  # each proxied connection: its server, first line, state
        self._next = {"ws": 0, "http": 0}
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="balancer", daemon=True)

    def __enter__(self) -> Balancer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the balancer did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_forever()

    async def _shutdown(self) -> None:
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def hold_replies(self, port: int) -> None:
        """From now on, what the server on ``port`` sends to its clients is lost in the network."""
        for link in list(self.links):
            if link["port"] == port:
                link["held"] = True

    def websocket_ports(self) -> list[int]:
        """The servers of the open websocket connections."""
        return [link["port"] for link in self.links if link["first"].startswith(b"GET /ws/") and not link["closed"]]

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        first = await client_reader.read(65536)
        # Websockets and plain requests each take turns, so that websockets spread over the
        # servers whatever the requests between them.
        kind = "ws" if first.startswith(b"GET /ws/") else "http"
        for _ in range(len(self.ports)):  # the next server that answers, as balancers skip dead ones
            port = self.ports[self._next[kind] % len(self.ports)]
            self._next[kind] += 1
            try:
                server_reader, server_writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                continue
        else:
            client_writer.close()
            return
        link = {"port": port, "first": first.split(b"\r\n", 1)[0], "held": False, "closed": False}
        self.links.append(link)
        server_writer.write(first)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool) -> None:
            try:
                while data := await reader.read(65536):
                    if not upstream and link["held"]:
                        continue  # lost on the way back
                    writer.write(data)
                    await writer.drain()
            except OSError:
                pass

        pipes = [asyncio.ensure_future(pipe(client_reader, server_writer, True)),
                 asyncio.ensure_future(pipe(server_reader, client_writer, False))]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass  # the balancer is shutting down
        finally:
            link["closed"] = True
            for task in pipes:
                task.cancel()
            for writer in (client_writer, server_writer):
                writer.close()
