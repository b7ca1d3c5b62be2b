"""The ``bokeh-server`` command: installed from a wheel into a fresh virtual environment, run from
an empty directory, and given the original guide's first example."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import requests

from tests.helpers import wait_until
from tests.servers import ROOT, children_of, free_port, wait_for_port

FIRST_EXAMPLE = (ROOT / "examples" / "line.py").read_text()
# The environment of a user's shell: nothing of the test run's Django or database settings.
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if not k.startswith(("DJANGO", "DATABASE", "REDIS", "BOKEHSITE", "BOKEH_", "PYTEST", "VIRTUAL_ENV"))}


def bokeh_server_in(venv_dir: Path) -> Path:
    return venv_dir / "bin" / "bokeh-server"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
                   check=True, env=CLEAN_ENV, timeout=300, capture_output=True)
    (built,) = out.glob("bokehsite-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel (and what it depends on) installed."""
    venv_dir = tmp_path_factory.mktemp("venv") / "env"
    venv.create(venv_dir, with_pip=True)
    subprocess.run([str(venv_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
                   check=True, env=CLEAN_ENV, timeout=600, capture_output=True)
    return venv_dir


def repository_packages() -> set[str]:
    """Every Python package of the server in the repository (tests and benchmarks aside)."""
    found = set()
    for init in ROOT.glob("**/__init__.py"):
        package = init.parent.relative_to(ROOT)
        if package.parts[0] in ("tests", "bench", ".venv", "build") or package.parts[0].startswith("."):
            continue
        found.add(".".join(package.parts))
    return found


@pytest.mark.embedded
@pytest.mark.timeout(600)
def test_the_wheel_holds_every_app_its_migrations_templates_and_static_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {name.rsplit("/", 1)[0].replace("/", ".") for name in names if name.endswith("/__init__.py")}
    assert repository_packages() <= packages, f"missing from the wheel: {repository_packages() - packages}"
    for path in ROOT.glob("templates/**/*.html"):
        assert f"bokehsite/templates/{path.relative_to(ROOT / 'templates')}" in names
    for path in ROOT.glob("static/**/*.js"):
        assert f"bokehsite/static/{path.relative_to(ROOT / 'static')}" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "bokeh-server = bokehsite.cli:bokeh_server" in text and "bokehsite = bokehsite.cli:main" in text


@pytest.mark.embedded
@pytest.mark.daphne
@pytest.mark.timeout(900)
def test_bokeh_server_from_a_wheel_serves_from_an_empty_directory_and_stores_the_first_example(installed, tmp_path):
    here = tmp_path / "empty"
    here.mkdir()
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([str(bokeh_server_in(installed)), "--port", str(port)], cwd=here, env=CLEAN_ENV,
                              stdout=log, stderr=subprocess.STDOUT)
    output = lambda: (tmp_path / "server.log").read_text()  # noqa: E731
    try:
        wait_for_port(port, 60, server, output)
        assert f"serving http://localhost:{port}/" in output()
        # Its data is in a folder of the directory it runs from, owner-only.
        data = here / "bokehsite-data"
        assert (data / "db.sqlite3").is_file() and (data / "secret_key").is_file()
        assert data.stat().st_mode & 0o077 == 0

        script = tmp_path / "line.py"
        script.write_text(FIRST_EXAMPLE)
        url = f"http://localhost:{port}/"
        done = subprocess.run([str(installed / "bin" / "python"), str(script)], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, env={**CLEAN_ENV, "BOKEH_SERVER_URL": url,
                                                           "BOKEH_CONFIG_DIR": str(tmp_path / "config")})
        assert done.returncode == 0, done.stderr
        assert f"line: {url}documents/" in done.stdout

        (listed,) = requests.get(f"{url}api/documents/?title=line", timeout=10).json()
        page = requests.get(listed["url"], timeout=10)
        assert page.status_code == 200 and "plot-frame" in page.text
        # BokehJS and the site's scripts come from the installed packages.
        assert requests.get(f"{url}static/bokeh/js/bokeh.min.js", timeout=10).status_code == 200
        assert requests.get(f"{url}static/bokehsite/viewer.js", timeout=10).status_code == 200

        server.send_signal(signal.SIGINT)  # Ctrl-C
        assert server.wait(20) == 0
        assert "bokeh-server: stopped" in output()
        assert "Traceback" not in output()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.close()


def run_cli(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bokehsite.cli", *args], cwd=cwd, env=CLEAN_ENV, input=stdin,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.embedded
def test_help_names_every_option(tmp_path):
    done = subprocess.run([str(Path(sys.executable).parent / "bokeh-server"), "-h"], cwd=tmp_path, env=CLEAN_ENV,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for option in ("--ip", "--port", "-m, --multi-user", "--data-dir", "--database-url", "--redis-url",
                   "--allow-registration, --no-allow-registration", "--workers"):
        assert option in done.stdout
    assert not (tmp_path / "bokehsite-data").exists()  # asking for help creates nothing


@pytest.mark.embedded
def test_several_workers_without_postgresql_and_redis_are_refused_with_the_reason(tmp_path):
    done = run_cli("serve", "--workers", "2", cwd=tmp_path)
    assert done.returncode == 2
    assert "needs PostgreSQL and Redis" in done.stderr and "--database-url" in done.stderr and "--redis-url" in done.stderr
    done = run_cli("serve", "--workers", "2", "--database-url", "postgres://u@127.0.0.1:1/x", cwd=tmp_path)
    assert done.returncode == 2 and "--redis-url" in done.stderr and "--database-url" not in done.stderr


@pytest.mark.embedded
def test_a_port_in_use_is_said_plainly(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = run_cli("serve", "--port", str(taken.getsockname()[1]), cwd=tmp_path)
    assert done.returncode == 2
    assert "cannot listen on 127.0.0.1:" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.embedded
def test_createuser_makes_an_account_in_the_servers_data_and_secret_prints_a_key(tmp_path):
    done = run_cli("createuser", "erin", "--staff", cwd=tmp_path, stdin="a long passphrase here\n")
    assert done.returncode == 0, done.stderr
    assert "created staff user erin" in done.stdout
    assert (tmp_path / "bokehsite-data" / "db.sqlite3").stat().st_size > 0
    again = run_cli("createuser", "erin", cwd=tmp_path, stdin="a long passphrase here\n")
    assert again.returncode == 2 and "already a user called 'erin'" in again.stderr
    weak = run_cli("createuser", "frank", cwd=tmp_path, stdin="123\n")
    assert weak.returncode == 2 and "password refused" in weak.stderr
    secret = run_cli("secret", cwd=tmp_path)
    assert secret.returncode == 0 and len(secret.stdout.strip()) >= 50


@pytest.mark.embedded
@pytest.mark.daphne
def test_multi_user_mode_from_the_command_line_asks_for_credentials(tmp_path):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bokehsite.cli", "serve", "-m", "--no-allow-registration",
                               "--port", str(port), "--data-dir", str(tmp_path / "data")],
                              cwd=tmp_path, env=CLEAN_ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(port, 60, server, lambda: "")
        answer = requests.get(f"http://127.0.0.1:{port}/api/documents/", timeout=10)
        assert answer.status_code == 401 and answer.json()["error"] == "not_authenticated"
        closed = requests.post(f"http://127.0.0.1:{port}/api/auth/register/", json={"username": "gina", "password": "x" * 20},
                               timeout=10)
        assert closed.status_code == 403 and closed.json()["error"] == "registration_closed"
        assert (tmp_path / "data" / "db.sqlite3").is_file()
        server.send_signal(signal.SIGTERM)
        assert server.wait(20) == 0
        wait_until(lambda: server.poll() is not None)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.mark.faults  # a PostgreSQL and a Redis of its own, as the fault tests have
@pytest.mark.daphne
@pytest.mark.timeout(150)
def test_several_workers_share_one_port_over_postgresql_and_redis_restart_when_one_dies_and_stop_together(tmp_path):
    import asyncio

    from bokehsite.client import Session
    from bokehsite.client.follower import Follower
    from tests import faults
    from tests.helpers import line_document

    if missing := faults.missing_programs():
        if os.environ.get("CI") == "true":
            pytest.fail(f"this test needs {' and '.join(missing)}")
        pytest.skip(f"this test needs {' and '.join(missing)}")
    with faults.services() as (_, _, env):
        port = free_port()
        log = (tmp_path / "server.log").open("w")
        server = subprocess.Popen(
            [sys.executable, "-m", "bokehsite.cli", "serve", "--workers", "2", "--port", str(port),
             "--database-url", env["DATABASE_URL"], "--redis-url", env["REDIS_URL"]],
            cwd=tmp_path, env=CLEAN_ENV, stdout=log, stderr=subprocess.STDOUT)
        output = lambda: (tmp_path / "server.log").read_text()  # noqa: E731
        try:
            wait_for_port(port, 60, server, output)
            assert "2 workers" in output()
            wait_until(lambda: len(children_of(server.pid)) == 2, timeout=30)
            workers = children_of(server.pid)
            assert all("daphne" in Path(f"/proc/{pid}/cmdline").read_text() for pid in workers)
            url = f"http://127.0.0.1:{port}/"
            # Each connection goes to whichever worker accepts it; every one sees every change.
            with Session(url) as session:
                session.use_doc("workers")
                doc = line_document()
                info = session.push(doc)

                async def follow() -> list[int]:
                    followers = [Follower(Session(url), info["id"]) for _ in range(4)]
                    for follower in followers:
                        await follower.__aenter__()
                    doc.get_model_by_name("ex_line").data_source.stream({"x": [6], "y": [1]})
                    version = await asyncio.to_thread(session.push)
                    try:
                        return [await f.wait_for(version["version"], 20) or f.version for f in followers]
                    finally:
                        for follower in followers:
                            await follower.__aexit__(None, None, None)

                assert asyncio.run(follow()) == [2, 2, 2, 2]
            # A worker that dies is started again, as a process manager would; the other serves meanwhile.
            os.kill(workers[0], signal.SIGKILL)
            wait_until(lambda: len(children_of(server.pid)) == 2 and workers[0] not in children_of(server.pid), timeout=30)
            assert f"Daphne worker 1 (pid {workers[0]}) exited with status -9; starting it again" in output()
            workers = children_of(server.pid)
            with Session(url) as session:
                assert session.load_document("workers") is not None
            server.send_signal(signal.SIGINT)
            assert server.wait(30) == 0
            assert "bokeh-server: stopped" in output()
            assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
            for pid in children_of(server.pid):
                os.kill(pid, signal.SIGKILL)
            log.close()
