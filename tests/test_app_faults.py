"""Apps on several processes, with faults: two Daphnes on a PostgreSQL and a Redis of this
module's own, behind a round-robin TCP balancer, and app workers apart from them
(``bokehsite app-hosts``), with the app's page in Chromium. A Daphne is killed with ``kill -9``,
an app worker too, and Redis is restarted; sessions go on where nothing of theirs died.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bokehsite import protocol
from tests import faults
from tests.apps_helpers import app_frame, model_value, open_app, press_slider, wait_for_model, write_script
from tests.helpers import wait_until
from tests.servers import ROOT, Balancer, DaphneServer, children_of

pytestmark = [pytest.mark.faults, pytest.mark.daphne, pytest.mark.browser, pytest.mark.timeout(180)]

# Each build writes its session's id to BUILDS; a slider's callback counts its calls (the
# session's Python state), and a periodic callback ticks four times a second.
STATEFUL = """
import os
from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import Div, Slider

with open(BUILDS, "a") as f:
    f.write(curdoc().session_context.id + "\\n")
calls, ticks = [0], [0]
echo = Div(text="value 1 after 0 calls", name="echo")
clock = Div(text="0", name="clock")
slider = Slider(title="value", value=1, start=0, end=30, step=1, name="value", width=300)

def moved(attr, old, new):
    calls[0] += 1
    echo.text = f"value {new} after {calls[0]} calls"

def tick():
    ticks[0] += 1
    clock.text = str(ticks[0])

slider.on_change("value", moved)
curdoc().add_periodic_callback(tick, 250)
curdoc().add_root(column(slider, echo, clock, Div(text=str(os.getpid()), name="pid")))
"""


@pytest.fixture(scope="module")
def services():
    with faults.services_for_tests() as running:
        yield running


@dataclass
class AppCluster:
    servers: list[DaphneServer]
    balancer: Balancer
    hosts: subprocess.Popen[bytes]
    builds: Path
    log: Path

    @property
    def app_url(self) -> str:
        return f"{self.balancer.url}apps/stateful/"

    def host_pids(self) -> list[int]:
        return children_of(self.hosts.pid)

    def page_socket_server(self) -> DaphneServer:
        """The Daphne that serves the browser's document websocket, the newest one open (the
        hosts' carry the host key)."""
        ports = [link["port"] for link in self.balancer.links
                 if link["first"].startswith(b"GET /ws/documents/") and not link["closed"]
                 and protocol.APP_HOST_HEADER.lower().encode() not in link["first"].lower()]
        assert ports, [link["first"].split(b"\r\n")[0] for link in self.balancer.links]
        return next(server for server in self.servers if server.port == ports[-1])

    def built(self) -> list[str]:
        return self.builds.read_text().split() if self.builds.exists() else []


@contextmanager
def app_cluster(services, tmp_path: Path) -> Iterator[AppCluster]:
    postgres, redis, env = services
    builds = tmp_path / "builds.txt"
    app = write_script(tmp_path / "apps", "stateful", STATEFUL.replace("BUILDS", repr(str(builds))))
    env = {**env, "BOKEHSITE_APPS": str(app), "BOKEHSITE_APP_PROCESSES": "0", "BOKEHSITE_THUMBNAILS": "0",
           "BOKEHSITE_UNUSED_SESSION_LIFETIME": "60"}
    with ExitStack() as stack:
        servers = [DaphneServer(env=env).launch() for _ in range(2)]
        for server in servers:
            stack.callback(server.stop)
            server.wait_listening()
        balancer = stack.enter_context(Balancer([s.port for s in servers]))
        log = tmp_path / "app-hosts.log"
        hosts = subprocess.Popen([sys.executable, "-m", "bokehsite.cli", "app-hosts", balancer.url, "--app-workers", "2"],
                                 cwd=ROOT, env={**os.environ, **env}, stdout=log.open("w"), stderr=subprocess.STDOUT)

        def stop_hosts() -> None:
            hosts.send_signal(signal.SIGTERM)
            try:
                hosts.wait(20)
            except subprocess.TimeoutExpired:
                hosts.kill()
                hosts.wait()

        stack.callback(stop_hosts)
        running = AppCluster(servers, balancer, hosts, builds, log)
        wait_until(lambda: len(running.host_pids()) == 2, timeout=60)
        builds.unlink(missing_ok=True)  # the check before they started ran the app once
        try:
            yield running
        except BaseException:  # what the processes said, beside the failure
            for server in servers:
                print(f"--- Daphne on {server.port}:\n{server.output()[-4000:]}")
            print(f"--- app workers:\n{log.read_text()[-4000:]}")
            raise


def ticks(frame) -> int:
    return int(model_value(frame, "clock", "m.text"))


def wait_ticking(frame, beyond: int, timeout: float = 30_000) -> None:
    wait_for_model(frame, "clock", f"Number(m.text) > {beyond}", timeout=timeout)


def test_a_page_whose_daphne_is_killed_reconnects_through_the_balancer_and_keeps_its_session(services, tmp_path, browser):
    with app_cluster(services, tmp_path) as cluster:
        page = browser.new_page()
        frame = open_app(page, cluster.app_url)
        press_slider(page, 3)
        wait_for_model(frame, "echo", "m.text.startsWith('value 4 after ')")
        calls = int(model_value(frame, "echo", "m.text").split()[3])
        wait_ticking(frame, 2)
        assert len(cluster.built()) == 1  # the app ran once for the page, whichever Daphne served what
        killed = cluster.page_socket_server()
        killed.kill()
        before = ticks(frame)
        # The page reconnects through the balancer to the other Daphne; the same session answers,
        # with its state (the calls go on counting) and its periodic callback.
        wait_ticking(frame, before + 4)
        page.frame_locator("#app-frame").locator("#live-status[data-status=live]").wait_for(timeout=30_000)
        press_slider(page, 2)
        wait_for_model(frame, "echo", "m.text.startsWith('value 6 after ')")
        assert int(model_value(frame, "echo", "m.text").split()[3]) > calls  # the same Python state, counting on
        assert cluster.page_socket_server() is not killed
        assert len(cluster.built()) == 1
        assert page.locator("#session-ended").is_hidden()


def test_an_app_worker_killed_ends_its_sessions_pages_with_an_offer_and_no_other(services, tmp_path, browser):
    with app_cluster(services, tmp_path) as cluster:
        first, second = browser.new_page(), browser.new_page()
        frames = [open_app(first, cluster.app_url), open_app(second, cluster.app_url)]
        pids = [int(model_value(frame, "pid", "m.text")) for frame in frames]
        assert pids[0] != pids[1] and set(pids) == set(cluster.host_pids())  # spread over both workers
        os.kill(pids[0], signal.SIGKILL)
        ended = first.locator("#session-ended")
        ended.wait_for(state="visible", timeout=60_000)
        assert "This session has ended: the app process running this session stopped" in ended.inner_text()
        # The other session goes on, ticking and answering.
        wait_ticking(frames[1], ticks(frames[1]) + 4)
        press_slider(second, 1)
        wait_for_model(frames[1], "echo", "m.text === 'value 2 after 1 calls'")
        assert second.locator("#session-ended").is_hidden()
        # The worker is started again, and the ended page's offer opens a new session.
        wait_until(lambda: len(cluster.host_pids()) == 2 and pids[0] not in cluster.host_pids(), timeout=30)
        first.get_by_role("link", name="Start a new session").click()
        first.frame_locator("#app-frame").locator("#live-status[data-status=live]").wait_for(timeout=60_000)
        wait_ticking(app_frame(first), 2)
        assert len(cluster.built()) == 3


def test_a_redis_restart_leaves_every_session_working(services, tmp_path, browser):
    postgres, redis, env = services
    with app_cluster(services, tmp_path) as cluster:
        page = browser.new_page()
        frame = open_app(page, cluster.app_url)
        press_slider(page, 1)
        wait_for_model(frame, "echo", "m.text === 'value 2 after 1 calls'")
        redis.kill()
        page.wait_for_timeout(1000)
        redis.start()
        before = ticks(frame)
        wait_ticking(frame, before + 4, timeout=60_000)
        page.frame_locator("#app-frame").locator("#live-status[data-status=live]").wait_for(timeout=30_000)
        press_slider(page, 1)
        wait_for_model(frame, "echo", "m.text === 'value 3 after 2 calls'", timeout=60_000)
        # A new page opens a session as before (the page asks a host through the layer).
        other = browser.new_page()
        wait_ticking(open_app(other, cluster.app_url), 2)
        assert len(cluster.built()) == 2
