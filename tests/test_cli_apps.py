"""``bokeh-server APP...``: the apps are checked, each run once in a process of its own, before the
server starts; one that cannot run stops it with exit status 2 and a message naming the file and
the error. The app options become the settings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bokehsite import cli
from tests.apps_helpers import get
from tests.helpers import wait_until
from tests.servers import ROOT, children_of, free_port, wait_for_port
from tests.test_app_loading import write_directory_app, write_notebook_app, write_script_app
from tests.test_bokeh_server_command import CLEAN_ENV

BOKEH_SERVER = str(Path(sys.executable).parent / "bokeh-server")
# This checkout's code, before the installed (editable) package's.
ENV = {**CLEAN_ENV, "PYTHONPATH": str(ROOT)}
APP_SETTINGS = ("BOKEHSITE_APPS", "BOKEHSITE_PUBLIC_APPS", "BOKEHSITE_APP_DEV", "BOKEHSITE_UNUSED_SESSION_LIFETIME",
                "BOKEHSITE_APP_PROCESSES")


def bokeh_server(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BOKEH_SERVER, "--port", str(free_port()), *map(str, args)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=100)


def test_help_names_the_app_options_and_says_the_lifetime_is_in_milliseconds(tmp_path):
    done = subprocess.run([BOKEH_SERVER, "-h"], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for option in ("APP", "--dev", "--public-app NAME", "--unused-session-lifetime MILLISECONDS", "--app-workers M"):
        assert option in done.stdout
    assert "in milliseconds as for `bokeh serve`" in " ".join(done.stdout.split())


def test_a_missing_app_stops_the_server_naming_the_path(tmp_path):
    done = bokeh_server("gone.py", cwd=tmp_path)
    assert done.returncode == 2
    assert f"bokeh-server: error: {tmp_path / 'gone.py'}: no such file or directory" in done.stderr
    assert not (tmp_path / "bokehsite-data").exists()  # it stopped before making anything


def test_an_app_importing_a_missing_module_stops_the_server_naming_the_file_and_the_error(tmp_path):
    app = write_directory_app(tmp_path)
    (app / "main.py").write_text("import no_such_module\n")
    done = bokeh_server(app, cwd=tmp_path)
    assert done.returncode == 2
    assert "an app fails when run once to check" in done.stderr
    assert f"{app}: ModuleNotFoundError: No module named 'no_such_module'" in done.stderr
    assert "'main.py', line 1" in done.stderr and "Traceback" not in done.stderr


def test_every_failing_app_is_named_and_a_syntax_error_is_one(tmp_path):
    broken = write_script_app(tmp_path, "broken", "def (:\n")
    raises = write_script_app(tmp_path, "raises", "print('hello from the app')\nraise RuntimeError('no data')\n")
    done = bokeh_server(write_script_app(tmp_path), broken, raises, cwd=tmp_path)
    assert done.returncode == 2
    assert "2 apps fail when run once to check" in done.stderr
    assert f"{broken}: SyntaxError: invalid syntax" in done.stderr
    assert f"{raises}: RuntimeError: no data" in done.stderr
    assert "hello from the app" not in done.stdout + done.stderr  # what the apps print stays in the check


def test_two_apps_with_one_name_stop_the_server(tmp_path):
    write_script_app(tmp_path, "weather")
    app = write_directory_app(tmp_path / "more")
    done = bokeh_server("weather.py", app, cwd=tmp_path)
    assert done.returncode == 2 and "another app is also called 'weather'" in done.stderr


def test_a_public_app_must_be_one_of_the_apps(tmp_path):
    done = bokeh_server(write_script_app(tmp_path), "--public-app", "sliders", "--public-app", "other", cwd=tmp_path)
    assert done.returncode == 2
    assert "--public-app other: no app of that name (apps: sliders)" in done.stderr


def test_the_same_apps_and_options_work_under_bokehsite_serve(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bokehsite.cli", "serve", "--app-workers", "0", "x.py"], cwd=tmp_path,
                          env=ENV, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--app-workers must be 1 or more, not 0" in done.stderr
    done = subprocess.run([sys.executable, "-m", "bokehsite.cli", "serve", "x.py"], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and f"bokehsite: error: {tmp_path / 'x.py'}: no such file" in done.stderr


def test_the_options_become_the_settings_the_server_reads(tmp_path, monkeypatch):
    for name in APP_SETTINGS:
        monkeypatch.delenv(name, raising=False)  # restored after the test, whatever the command sets
    paths = [write_script_app(tmp_path), write_directory_app(tmp_path), write_notebook_app(tmp_path)]
    args = cli._parser("bokeh-server", subcommands=False).parse_args(
        [*map(str, paths), "--dev", "--public-app", "weather", "--unused-session-lifetime", "2500"])
    assert cli._check_apps(args) == ["sliders", "weather", "explore"]
    assert os.environ["BOKEHSITE_APPS"].split(os.pathsep) == list(map(str, paths))
    assert os.environ["BOKEHSITE_PUBLIC_APPS"] == "weather"
    assert os.environ["BOKEHSITE_APP_DEV"] == "1"
    assert os.environ["BOKEHSITE_UNUSED_SESSION_LIFETIME"] == "2.5"  # seconds, from Bokeh's milliseconds
    # Each app ran once, the directory app with its hooks (in the checking process).
    assert (tmp_path / "weather" / "loaded.txt").read_text() == "loaded\nsession\n"


@pytest.mark.parametrize(("name", "value", "message"), [
    ("BOKEHSITE_APP_PROCESSES", "-1", "BOKEHSITE_APP_PROCESSES must be 0 or more, not -1"),
    ("BOKEHSITE_UNUSED_SESSION_LIFETIME", "soon", "BOKEHSITE_UNUSED_SESSION_LIFETIME must be a number of seconds"),
    ("BOKEHSITE_UNUSED_SESSION_LIFETIME", "0", "BOKEHSITE_UNUSED_SESSION_LIFETIME must be more than 0 seconds"),
    ("BOKEHSITE_MAX_SESSIONS", "-1", "BOKEHSITE_MAX_SESSIONS must be 0 or more"),
    ("BOKEHSITE_APP_MEMORY_LIMIT", "-1", "BOKEHSITE_APP_MEMORY_LIMIT must be 0 or more, not -1"),
    ("BOKEHSITE_APP_CALLBACK_TIMEOUT", "-1", "BOKEHSITE_APP_CALLBACK_TIMEOUT must be 0 or more, not -1"),
    ("BOKEHSITE_APP_CALLBACK_TIMEOUT", "soon", "BOKEHSITE_APP_CALLBACK_TIMEOUT must be an integer"),
    ("BOKEHSITE_APP_DEV", "maybe", "BOKEHSITE_APP_DEV must be a boolean"),
])
def test_the_settings_refuse_bad_app_values_with_the_reason(tmp_path, name, value, message):
    done = subprocess.run([sys.executable, "-c", "import bokehsite.settings"], cwd=tmp_path,
                          env={**ENV, "BOKEHSITE_DATA_DIR": str(tmp_path), name: value},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "ImproperlyConfigured" in done.stderr and message in done.stderr


def test_the_settings_read_the_apps_and_their_defaults(tmp_path):
    code = ("from bokehsite import settings as s; print(repr((s.BOKEHSITE_APPS, s.BOKEHSITE_PUBLIC_APPS, "
            "s.BOKEHSITE_UNUSED_SESSION_LIFETIME, s.BOKEHSITE_MAX_SESSIONS, s.BOKEHSITE_APP_DEV, "
            "s.BOKEHSITE_APP_PROCESSES, s.BOKEHSITE_SERVER_URL)))")
    env = {**ENV, "BOKEHSITE_DATA_DIR": str(tmp_path)}
    defaults = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=60)
    assert defaults.stdout.strip() == "([], [], 15.0, 100, False, 1, '')", defaults.stderr
    given = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                           env={**env, "BOKEHSITE_APPS": os.pathsep.join(["/a/x.py", "/b/y"]),
                                "BOKEHSITE_PUBLIC_APPS": "x, y", "BOKEHSITE_UNUSED_SESSION_LIFETIME": "0.5",
                                "BOKEHSITE_MAX_SESSIONS": "0", "BOKEHSITE_APP_DEV": "1", "BOKEHSITE_APP_PROCESSES": "2",
                                "BOKEHSITE_SERVER_URL": "http://127.0.0.1:5006/"})
    assert given.stdout.strip() == "(['/a/x.py', '/b/y'], ['x', 'y'], 0.5, 0, True, 2, 'http://127.0.0.1:5006/')", given.stderr


@pytest.mark.embedded
@pytest.mark.daphne
def test_a_server_with_apps_lists_their_urls_and_never_runs_their_code_itself(tmp_path):
    # The app records which process ran it.
    app = write_script_app(tmp_path, "whoami", "import os\nopen(__file__ + '.pids', 'a').write(f'{os.getpid()}\\n')\n")
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([BOKEH_SERVER, "--port", str(port), "--dev", "--app-workers", "2", str(app),
                               str(write_directory_app(tmp_path))], cwd=tmp_path, env=ENV, stdout=log, stderr=subprocess.STDOUT)
    output = lambda: (tmp_path / "server.log").read_text()  # noqa: E731
    pids = lambda: list(map(int, Path(f"{app}.pids").read_text().split()))  # noqa: E731
    try:
        wait_for_port(port, 90, server, output)
        assert f"bokeh-server: app whoami at http://localhost:{port}/apps/whoami/" in output()
        assert f"bokeh-server: app weather at http://localhost:{port}/apps/weather/" in output()
        assert "dev mode: new sessions use changed code" in output()
        assert pids()[0] != server.pid  # it ran once, in the checking process
        # The server's children: a Daphne worker and two app workers, which run each session.
        wait_until(lambda: len(app_workers(server.pid)) == 2, timeout=60)
        workers = app_workers(server.pid)
        assert len(children_of(server.pid)) == 3
        assert get(f"http://127.0.0.1:{port}/apps/whoami/")[0] == 200
        assert pids()[-1] in workers
        # An app worker that dies is started again, and sessions open on the workers there are.
        os.kill(workers[0], signal.SIGKILL)
        wait_until(lambda: len(app_workers(server.pid)) == 2 and workers[0] not in app_workers(server.pid), timeout=60)
        assert f"(pid {workers[0]}) exited with status -9; starting it again" in output()
        assert get(f"http://127.0.0.1:{port}/apps/whoami/")[0] == 200
        assert pids()[-1] in app_workers(server.pid)
        workers = app_workers(server.pid)
        server.send_signal(signal.SIGINT)
        assert server.wait(30) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)  # stopped with the server
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.close()


def app_workers(pid: int) -> list[int]:
    def command(child: int) -> bytes:
        try:
            return Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:  # gone meanwhile
            return b""

    return [child for child in children_of(pid) if b"appserver.host" in command(child)]
