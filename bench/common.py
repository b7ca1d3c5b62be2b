"""What the benchmarks share: the machine they ran on, Chromium, server environments, baselines.

A benchmark compares this checkout against an earlier commit in the same run with
``--baseline REF``: ``checkout(REF)`` makes a git worktree of that commit in a temporary
directory, whose server (and, where it matters, client) the benchmark starts beside this one's.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]


def cpu_model() -> str:
    """The CPU's model name, as Linux reports it, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> str:
    try:
        return f"{int(Path('/proc/meminfo').read_text().split()[1]) / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        return "?"


def machine() -> str:
    """One line describing when and where a benchmark ran."""
    import bokeh

    return (f"{datetime.datetime.now():%Y-%m-%d %H:%M}; {platform.platform()}, {cpu_model()}, {os.cpu_count()} CPUs, "
            f"{memory_gib()}; Python {platform.python_version()}, Bokeh {bokeh.__version__}; "
            f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """Resident memory; ``RssAnon`` leaves out the pages of memory-mapped files, which every
    process shares through the page cache."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (children, their children, ...), from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name, in parentheses, may hold spaces: the fields after it are fixed.
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def stop_process(process: subprocess.Popen) -> None:
    """Terminate ``process`` and wait for it; kill it if it has not ended within 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def revision(root: Path = ROOT) -> str:
    """The commit a checkout is at (with ``+changes`` when its work tree differs from it)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True).stdout
    return head + ("+changes" if dirty.strip() else "")


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """A temporary git worktree of ``ref`` (a commit, tag or branch of this repository)."""
    with tempfile.TemporaryDirectory(prefix="bokehsite-baseline-") as tmp:
        path = Path(tmp) / "checkout"
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(path), ref], cwd=ROOT, check=True)
        try:
            yield path
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False)


def python_env(root: Path) -> dict[str, str]:
    """Environment variables that make Python import bokehsite from the checkout ``root``."""
    return {"PYTHONPATH": str(root)} if root != ROOT else {}


def server_env(data_dir: str, database_url: str | None = None, *, root: Path = ROOT, **extra: str) -> dict[str, str]:
    """Environment for a bokehsite server of the checkout ``root`` on ``database_url`` (default:
    SQLite in ``data_dir``); its database is created if need be and migrated."""
    if database_url and database_url.startswith(("postgres:", "postgresql:")):
        create_postgres_database(database_url)
    env = {"BOKEHSITE_DATA_DIR": data_dir, "DATABASE_URL": database_url or f"sqlite:///{data_dir}/bench.sqlite3", **extra}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=root, check=True,
                   env={**os.environ, "DJANGO_SETTINGS_MODULE": "bokehsite.settings", **python_env(root), **env},
                   stdout=subprocess.DEVNULL)
    return env


def _admin(database_url: str) -> tuple[str, str]:
    """The URL of the ``postgres`` maintenance database, and the name of the one ``database_url`` names."""
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(scheme="postgresql", path="/postgres")), parts.path.lstrip("/")


def create_postgres_database(database_url: str, *, fresh: bool = False) -> None:
    """Create the database ``database_url`` names, unless it exists (``fresh``: empty, again)."""
    import psycopg

    url, name = _admin(database_url)
    with psycopg.connect(url, autocommit=True) as conn:
        if fresh:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def drop_postgres_database(database_url: str) -> None:
    import psycopg

    url, name = _admin(database_url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def with_suffix(database_url: str | None, suffix: str) -> str | None:
    """Another database beside ``database_url`` (for a baseline's server), or None for SQLite."""
    if not database_url:
        return None
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(path=parts.path + suffix))
