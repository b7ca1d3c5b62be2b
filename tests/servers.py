"""A real Daphne server in a child process, for end-to-end tests and benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
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
        if self.runserver:  # it reads the websocket limits from the settings
            command = ["manage.py", "runserver", "--noreload", f"127.0.0.1:{self.port}"]
        else:  # Daphne's command line does not read settings: it is told the limit of the settings
            limit = str(self.max_body_bytes)
            command = ["-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "--websocket-max-message-size", limit,
                       "--websocket-max-frame-size", limit, "bokehsite.asgi:application"]
        self.process = subprocess.Popen(
            [sys.executable, *command], cwd=self.root, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited with {self.process.returncode}:\n{self.output()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"daphne did not listen on port {self.port} within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

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
