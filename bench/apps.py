#!/usr/bin/env python
"""Hosted Bokeh apps: bokehsite's ``bokeh-server APP`` against ``bokeh serve APP``, the same app in the same run.

The app is a sliders dashboard written to a temporary directory at run time: a line of N points
from a ColumnDataSource and a Slider whose Python callback recomputes the data (N from the
page's ``?n=`` argument, default 400). Both servers serve that one file:

- ``bokeh serve APP``: the page is ``/<name>``; the app's code runs in the server process;
- ``bokeh-server APP``: the page is ``/apps/<name>/``; the document renders in the page's
  sandboxed frame (``iframe.plot-frame``, as on a plot page), and the app's code runs in app host processes
  (``python -m appserver.host``, children of the server).

Figures: the time from opening the page to the plot drawn; the round trip of a slider change
through the Python callback until the new data is painted; resident memory of the processes
that run app code for each open session, and how much of it comes back once the pages are closed;
and sessions created per second when 20 pages are asked for at once. See bench/README.md, "Apps".

Run it from the repository root:  .venv/bin/python bench/apps.py [--systems bokeh,bokehsite] [--json FILE]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests
from playwright.sync_api import Browser, Frame, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from common import (  # first: puts the repository on sys.path
    CHROMIUM, CHROMIUM_ARGS, ROOT, command_line, descendants, machine, revision, rss_mib, stop_process,
)
from push_render import time_render
from load import percentile
from roundtrip import INIT_SCRIPT, INSTALL, RENDERED

from tests.servers import free_port, wait_for_port

APP_NAME = "sliders"
# In milliseconds, as bokeh serve takes it: short, so that closed pages' sessions go soon.
UNUSED_SESSION_LIFETIME_MS = 2000
OPEN_TIMEOUT_MS = 60000
SETTLE_S = 30  # after the lifetime, before memory given back is read
SYSTEMS = ("bokeh", "bokehsite")

# The names "wave" and "amplitude" and y = amplitude * sin(x) are what roundtrip.INSTALL watches.
APP_SOURCE = '''
import numpy as np

from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, Slider
from bokeh.plotting import figure


def points() -> int:
    context = curdoc().session_context
    arguments = getattr(getattr(context, "request", None), "arguments", None) or {}
    value = (arguments.get("n") or [b"400"])[0]
    return int(value.decode() if isinstance(value, bytes) else value)


x = np.linspace(0, 4 * np.pi, points())
source = ColumnDataSource(data=dict(x=x, y=np.sin(x)), name="wave")
plot = figure(width=800, height=400, title="Sliders", name="plot")
plot.line("x", "y", source=source, line_width=2)
amplitude = Slider(title="amplitude", value=1.0, start=-5.0, end=5.0, step=0.1, name="amplitude")


def update(attr, old, new):
    source.data = dict(x=x, y=new * np.sin(x))


amplitude.on_change("value", update)
curdoc().add_root(column(amplitude, plot))
curdoc().title = "Sliders"
'''

# One change made from script in the page: a key press dispatched on the slider's handle, which the
# widget handles as a real one (it sets value and value_throttled) and which marks the change as
# the user's for bokehsite's frame (it forwards changes that follow an input event). The keydown
# starts roundtrip.INIT_SCRIPT's clock; `roundtrip.INSTALL`'s `__rt.done` then resolves once the
# recomputed data is painted.
CHANGE = """
(key) => {
  __rt.arm();
  const slider = [...Bokeh.index.all_views()].find((view) => view.model.name === "amplitude");
  const handle = slider.shadow_el.querySelector(".noUi-handle");
  handle.dispatchEvent(new KeyboardEvent("keydown", {key, bubbles: true, cancelable: true, composed: true}));
}
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help="comma-separated, of bokeh (bokeh serve) and bokehsite (bokeh-server) (default: %(default)s)")
    parser.add_argument("--points", type=int, default=400, help="points of the line, the app's ?n= (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=10, help="fresh pages opened for the open → drawn figure (default %(default)s)")
    parser.add_argument("--changes", type=int, default=200, help="measured slider changes per system (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=10, help="slider changes made first and not counted (default %(default)s)")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between changes (default %(default)s)")
    parser.add_argument("--sessions", type=int, default=50, help="pages held open for the memory figure (default %(default)s)")
    parser.add_argument("--unused-session-lifetime", type=int, default=UNUSED_SESSION_LIFETIME_MS, metavar="MS",
                        help="both servers' unused-session lifetime, ms (default %(default)s)")
    parser.add_argument("--burst", type=int, default=20, help="app pages asked for at once (default %(default)s)")
    parser.add_argument("--bursts", type=int, default=5, help="bursts per system (default %(default)s)")
    parser.add_argument("--processes", type=int, default=1,
                        help="server processes: bokeh serve --num-procs N, bokeh-server --workers N --app-workers N "
                             "(over 1 on a throwaway PostgreSQL database and a Redis database: --database-url, "
                             "--redis-url) (default 1)")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL server where a throwaway database is made for --processes over 1")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12",
                        help="a Redis database for --processes over 1, emptied first (default %(default)s)")
    parser.add_argument("--only", default="open,round_trip,memory,bursts",
                        help="which figures, comma-separated (default: all, %(default)s)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE ('-': standard output)")
    args = parser.parse_args()
    args.only = {name.strip() for name in args.only.split(",")}
    args.systems = [name.strip() for name in args.systems.split(",") if name.strip()]
    unknown = sorted(set(args.systems) - set(SYSTEMS))
    if unknown or not args.systems:
        parser.error(f"--systems takes {' and/or '.join(SYSTEMS)}, not {','.join(unknown) or 'nothing'}")
    return args


# --- the servers -------------------------------------------------------------------------------


class Server:
    """One system serving the app file; ``url`` is the app's page."""

    name: str
    framed: bool  # the document renders in the page's sandboxed frame

    def __init__(self, tmp: Path, app: Path, points: int, lifetime_ms: int = UNUSED_SESSION_LIFETIME_MS,
                 processes: int = 1, stores: tuple[str, str] | None = None):
        self.tmp, self.app, self.points, self.lifetime_ms = tmp, app, points, lifetime_ms
        self.processes, self.stores = processes, stores  # stores: (database URL, Redis URL) when processes > 1
        self.port = free_port()
        self.log = tmp / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        raise NotImplementedError

    def command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def app_processes(self) -> list[int]:
        """The processes that run the app's code."""
        raise NotImplementedError

    def start(self) -> None:
        command, env = self.command()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=self.tmp, env={**os.environ, **env}, stdout=log,
                                            stderr=subprocess.STDOUT)
        wait_for_port(self.port, 60, self.process, self.output)
        # Listening is not answering yet (bokeh-server migrates first): wait for a page.
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(self.url, timeout=30).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} does not serve {self.url}:\n{self.output()}")
            time.sleep(0.2)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def all_processes(self) -> list[int]:
        return [self.process.pid, *descendants(self.process.pid)]

    def open(self, page: Page, timeout: float = OPEN_TIMEOUT_MS) -> Frame:
        """Open the app in ``page``; returns the frame its document is drawn in, live."""
        raise NotImplementedError

    def stop(self) -> None:
        if self.process is None:
            return
        below = {pid: command_line(pid) for pid in descendants(self.process.pid)}
        stop_process(self.process)
        time.sleep(1)
        # Its workers and app hosts end with it; any left over are ended here (the same command
        # line: the same process, not another that got its id since).
        for pid, command in below.items():
            if command and command_line(pid) == command:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


class BokehServe(Server):
    name = "bokeh serve"
    framed = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{APP_NAME}?n={self.points}"

    def command(self) -> tuple[list[str], dict[str, str]]:
        return [sys.executable, "-m", "bokeh", "serve", str(self.app), "--port", str(self.port),
                "--address", "127.0.0.1", f"--allow-websocket-origin=127.0.0.1:{self.port}",
                "--unused-session-lifetime", str(self.lifetime_ms), "--check-unused-sessions", "500",
                "--num-procs", str(self.processes)], {}

    def app_processes(self) -> list[int]:
        return [self.process.pid, *descendants(self.process.pid)]  # --num-procs forks the server

    def open(self, page: Page, timeout: float = OPEN_TIMEOUT_MS) -> Frame:
        page.goto(self.url, timeout=timeout)
        page.main_frame.wait_for_function(RENDERED, timeout=timeout)
        return page.main_frame


class Bokehsite(Server):
    name = "bokehsite"
    framed = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/apps/{APP_NAME}/?n={self.points}"

    def command(self) -> tuple[list[str], dict[str, str]]:
        # bokeh-server of this checkout (the installed script may import another one).
        run = "import sys; from bokehsite.cli import bokeh_server; sys.exit(bokeh_server())"
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        return [sys.executable, "-c", run, "--port", str(self.port), "--data-dir", str(self.tmp / "bokehsite-data"),
                "--unused-session-lifetime", str(self.lifetime_ms), "--workers", str(self.processes),
                "--app-workers", str(self.processes), str(self.app),
                *(["--database-url", self.stores[0], "--redis-url", self.stores[1]] if self.stores else [])], env

    def app_processes(self) -> list[int]:
        return [pid for pid in descendants(self.process.pid) if "appserver.host" in command_line(pid)]

    def open(self, page: Page, timeout: float = OPEN_TIMEOUT_MS) -> Frame:
        page.goto(self.url, timeout=timeout)
        frame_locator = page.frame_locator("iframe.plot-frame")
        frame_locator.locator('#plot[data-state="rendered"]').wait_for(timeout=timeout)
        frame_locator.locator('#live-status[data-status="live"]').wait_for(timeout=timeout)
        frame = next(f for f in page.frames if "/frame/" in f.url)
        frame.wait_for_function(RENDERED, timeout=timeout)
        return frame


def total_rss(pids: list[int]) -> float:
    """MiB; a process that has gone meanwhile counts nothing."""
    total = 0.0
    for pid in pids:
        try:
            total += rss_mib(pid)
        except OSError:
            pass
    return total


# --- the figures -------------------------------------------------------------------------------


def open_to_drawn(servers: list[Server], browser: Browser, repeat: int) -> dict[str, list[float]]:
    """Seconds from navigation start to the plot drawn and painted, each load in a fresh context;
    the systems in turn."""
    times: dict[str, list[float]] = {server.name: [] for server in servers}
    for _ in range(repeat):
        for server in servers:
            times[server.name] += time_render(browser, server.url, 1, framed=server.framed)["rendered"]
    return times


def round_trips(servers: list[Server], browser: Browser, changes: int, warmup: int, gap: float) -> dict[str, Any]:
    """Milliseconds from a key press on the slider, made by script in the page, to the recomputed
    line painted, on the browser's clock; the systems in turn."""
    contexts, frames = [], {}
    for server in servers:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.add_init_script(INIT_SCRIPT)
        contexts.append(context)
        for attempt in range(3):  # a session may end unused before a slow page connects: another page
            page = context.new_page()
            try:
                frames[server.name] = server.open(page, timeout=30000)
                break
            except PlaywrightError as e:
                if attempt == 2:
                    raise
                print(f"  {server.name}: the page did not go live, opening another: {str(e).splitlines()[0]}",
                      file=sys.stderr)
                page.close()
        frames[server.name].evaluate(INSTALL)
    results: dict[str, Any] = {server.name: {"ms": [], "lost": 0, "invalid": 0} for server in servers}
    for server in servers:  # the app read ?n= on both, or the two do not draw the same line
        drawn = frames[server.name].evaluate("() => Bokeh.documents[0].get_model_by_name('wave').data.x.length")
        results[server.name]["points"] = drawn
        if drawn != server.points:
            print(f"  {server.name}: the line has {drawn} points, not the {server.points} asked for", file=sys.stderr)
    try:
        for i in range(warmup + changes):
            key = "ArrowRight" if i % 2 == 0 else "ArrowLeft"  # the slider goes back and forth, 1.0 and 1.1
            for server in servers if i % 2 == 0 else reversed(servers):
                result = results[server.name]
                frame = frames[server.name]
                frame.evaluate(CHANGE, key)
                try:
                    step = frame.evaluate("() => __rt.done")
                except Exception as e:  # noqa: BLE001 - a lost change is counted, and the run goes on
                    result["lost"] += 1
                    print(f"  {server.name}: {e}", file=sys.stderr)
                    continue
                if i >= warmup:
                    result["ms"].append(step["frame"] - step["t0"])
                    result["invalid"] += not step["valid"]
                time.sleep(gap)
    finally:
        for context in contexts:
            context.close()
    return results


def memory(server: Server, browser: Browser, sessions: int) -> dict[str, Any]:
    """Resident memory of the processes running app code (and of all the system's processes) with
    0 to ``sessions`` pages open, then after the pages are closed and their sessions are gone. A
    page that is not drawn and live within 20 s is closed and counted, and the next one opened."""
    wait = server.lifetime_ms / 1000
    time.sleep(wait + 3)  # the sessions of earlier figures end first
    nan = float("nan")
    if not server.app_processes():  # nothing to weigh: say so rather than report zero
        print(f"  {server.name}: no process running app code found", file=sys.stderr)
        return {"app_mib": [nan], "total_mib": [nan], "after_app_mib": nan, "after_total_mib": nan,
                "app_slope_mib": nan, "total_slope_mib": nan, "app_processes": 0, "not_live": 0, "lifetime_ms": server.lifetime_ms}
    app, total = [total_rss(server.app_processes())], [total_rss(server.all_processes())]
    not_live = 0
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    try:
        for _ in range(sessions):
            page = context.new_page()
            try:
                server.open(page, timeout=20000)
            except PlaywrightError as e:
                not_live += 1
                print(f"  {server.name}: a page did not go live: {str(e).splitlines()[0]}", file=sys.stderr)
                page.close()
                continue
            app.append(total_rss(server.app_processes()))
            total.append(total_rss(server.all_processes()))
    finally:
        context.close()
    time.sleep(wait + SETTLE_S)
    after_app, after_total = total_rss(server.app_processes()), total_rss(server.all_processes())
    # The slope leaves out the first session, which also pays for what the app imports once.
    counts = np.arange(2, len(app))

    def slope(values: list[float]) -> float:
        return float(np.polyfit(counts, values[2:], 1)[0]) if len(counts) > 1 else nan

    return {
        "app_mib": app, "total_mib": total, "after_app_mib": after_app, "after_total_mib": after_total,
        "app_slope_mib": slope(app), "total_slope_mib": slope(total), "app_processes": len(server.app_processes()),
        "not_live": not_live, "lifetime_ms": server.lifetime_ms,
    }


def given_back(figures: dict[str, Any]) -> float:
    """The share of what the sessions added to the app processes that came back after they ended."""
    grown = figures["app_mib"][-1] - figures["app_mib"][0]
    return (figures["app_mib"][-1] - figures["after_app_mib"]) / grown if grown > 0 else float("nan")


def bursts(server: Server, size: int, rounds: int) -> dict[str, Any]:
    """``size`` GETs of the app page at once (each creates a session), ``rounds`` times: sessions
    created per second of each burst (answered 200, from the first request sent to the last
    answer), and each request's seconds."""
    rates, latencies, statuses = [], [], {}
    with concurrent.futures.ThreadPoolExecutor(size) as pool:
        for _ in range(rounds):
            barrier = threading.Barrier(size)

            def get() -> tuple[float, float, int]:
                with requests.Session() as http:
                    barrier.wait()
                    start = time.perf_counter()
                    status = http.get(server.url, timeout=120).status_code
                    return start, time.perf_counter(), status

            answers = list(pool.map(lambda _: get(), range(size)))
            elapsed = max(end for _, end, _ in answers) - min(start for start, _, _ in answers)
            for _, _, status in answers:
                statuses[str(status)] = statuses.get(str(status), 0) + 1
            rates.append(sum(status == 200 for _, _, status in answers) / elapsed)
            latencies += [end - start for start, end, _ in answers]
            time.sleep(1)
    failures = sum(count for status, count in statuses.items() if status != "200")
    return {"sessions_per_s": rates, "request_s": latencies, "failures": failures, "statuses": statuses}


# --- the report --------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(figures: dict[str, dict[str, Any]]) -> None:
    names = list(figures)
    has = lambda key: all(key in f for f in figures.values())  # noqa: E731  (--only leaves some out)
    print()
    if has("open_s"):
        print("Page open → app drawn (s, from navigation start, fresh context each):")
        print(f"  {'':<12} {'loads':>6} {'median':>7} {'p90':>7} {'min':>7}")
        for name, f in figures.items():
            t = f["open_s"]
            print(f"  {name:<12} {len(t):>6} {percentile(t, 50):>7.3f} {percentile(t, 90):>7.3f} {min(t):>7.3f}")
        print()
    if has("round_trip"):
        print("Slider round trip, key press on the slider → recomputed line painted (ms):")
        print(f"  {'':<12} {'changes':>8} {'lost':>5} {'invalid':>8} {'p50':>7} {'p99':>7} {'mean':>7}")
        for name, f in figures.items():
            r = f["round_trip"]
            ms = r["ms"]
            print(f"  {name:<12} {len(ms):>8} {r['lost']:>5} {r['invalid']:>8} {percentile(ms, 50):>7.1f} "
                  f"{percentile(ms, 99):>7.1f} {np.mean(ms) if ms else float('nan'):>7.1f}")
        print()
    if has("memory"):
        print("Memory, resident MiB of the processes running app code (all the system's processes in brackets):")
        print(f"  {'':<12} {'before':>15} {'sessions open':>15} {'per session':>13} {'after closing':>15} {'given back':>11}"
              f" {'live':>5} {'not live':>9}")
        for name, f in figures.items():
            m = f["memory"]
            print(f"  {name:<12} {m['app_mib'][0]:>6.0f} ({m['total_mib'][0]:>6.0f}) {m['app_mib'][-1]:>6.0f} ({m['total_mib'][-1]:>6.0f})"
                  f" {m['app_slope_mib']:>5.2f} ({m['total_slope_mib']:>5.2f}) {m['after_app_mib']:>6.0f} ({m['after_total_mib']:>6.0f})"
                  f" {given_back(m):>10.0%} {len(m['app_mib']) - 1:>5} {m['not_live']:>9}")
        lifetime = next(iter(figures.values()))["memory"]["lifetime_ms"]
        print(f"  (live: pages drawn with their websocket live, held open together; per session: the slope over the "
              f"live sessions from the second on; after closing: {lifetime / 1000:g} s unused-session lifetime + {SETTLE_S} s)")
        print()
    if has("bursts"):
        print("Sessions created per second, pages asked for at once:")
        print(f"  {'':<12} {'bursts':>6} {'failed':>6} {'median/s':>9} {'min/s':>7} {'GET p50 s':>10} {'GET max s':>10}")
        for name, f in figures.items():
            b = f["bursts"]
            print(f"  {name:<12} {len(b['sessions_per_s']):>6} {b['failures']:>6} {percentile(b['sessions_per_s'], 50):>9.1f} "
                  f"{min(b['sessions_per_s']):>7.1f} {percentile(b['request_s'], 50):>10.3f} {max(b['request_s']):>10.3f}"
                  + (f"  (HTTP status: {b['statuses']})" if b["failures"] else ""))
        print()
    if names != ["bokeh serve", "bokehsite"]:
        print("targets: need both systems (--systems bokeh,bokehsite)")
        return
    serve, site = figures["bokeh serve"], figures["bokehsite"]
    if has("open_s"):
        a, b = percentile(site["open_s"], 50), percentile(serve["open_s"], 50)
        print(f"target: open → drawn no slower than bokeh serve (median): {verdict(a <= b)} ({a:.3f} s vs {b:.3f} s)")
    for q in (50, 99) if has("round_trip") else ():
        a, b = percentile(site["round_trip"]["ms"], q), percentile(serve["round_trip"]["ms"], q)
        print(f"target: round trip p{q} no slower than bokeh serve: {verdict(a <= b)} ({a:.1f} ms vs {b:.1f} ms)")
    if has("memory"):
        a, b = site["memory"]["app_slope_mib"], serve["memory"]["app_slope_mib"]
        print(f"target: memory per session half of bokeh serve's or less: {verdict(a <= b / 2)} ({a:.2f} MiB vs {b:.2f} MiB)")
        a, b = given_back(site["memory"]), given_back(serve["memory"])
        print(f"target: memory given back (half or more of what the sessions added): {verdict(a >= 0.5)} "
              f"({a:.0%}; bokeh serve {b:.0%})")


def without_nan(value: Any) -> Any:
    """``value`` with every NaN (a figure that could not be read) as None: strict JSON has no NaN."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nan(v) for v in value]
    return value


def shared_stores(args: argparse.Namespace, stack: contextlib.ExitStack) -> tuple[str, str]:
    """A throwaway PostgreSQL database (dropped at the end) and an emptied Redis database."""
    import psycopg
    import redis

    name = f"bench_apps_{os.getpid()}"
    with psycopg.connect(args.database_url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")

    def drop() -> None:
        with psycopg.connect(args.database_url, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    stack.callback(drop)
    redis.Redis.from_url(args.redis_url).flushdb()
    return args.database_url.rsplit("/", 1)[0] + f"/{name}", args.redis_url


def main() -> None:
    args = parse_args()
    print(f"bokehsite hosted apps against bokeh serve; {machine()}")
    print(f"bokehsite at {revision()}; systems: {', '.join(args.systems)}; {args.points} points; unused-session "
          f"lifetime {args.unused_session_lifetime} ms; {args.processes} process(es)", flush=True)
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-apps-") as tmp, \
            sync_playwright() as pw:
        app = Path(tmp) / f"{APP_NAME}.py"
        app.write_text(APP_SOURCE)
        kinds = {"bokeh": BokehServe, "bokehsite": Bokehsite}
        stores = shared_stores(args, stack) if args.processes > 1 else None
        servers = [kinds[name](Path(tmp), app, args.points, args.unused_session_lifetime, args.processes, stores)
                   for name in SYSTEMS if name in args.systems]
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        chromium = browser.version
        figures: dict[str, dict[str, Any]] = {server.name: {} for server in servers}
        try:
            for server in servers:
                server.start()
            if "open" in args.only:
                print("open → drawn…", file=sys.stderr, flush=True)
                for name, times in open_to_drawn(servers, browser, args.repeat).items():
                    figures[name]["open_s"] = times
            if "round_trip" in args.only:
                print("round trips…", file=sys.stderr, flush=True)
                for name, result in round_trips(servers, browser, args.changes, args.warmup, args.gap).items():
                    figures[name]["round_trip"] = result
            for server in servers if "memory" in args.only else []:  # one at a time: the other system stays idle
                print(f"memory, {server.name}…", file=sys.stderr, flush=True)
                figures[server.name]["memory"] = memory(server, browser, args.sessions)
            for server in servers if "bursts" in args.only else []:
                print(f"bursts, {server.name}…", file=sys.stderr, flush=True)
                figures[server.name]["bursts"] = bursts(server, args.burst, args.bursts)
                if figures[server.name]["bursts"]["failures"]:
                    errors = [line for line in server.output().splitlines() if "Error" in line or "Traceback" in line]
                    print(f"  {server.name}: failed pages; its log's errors:", *errors[-10:], sep="\n    ", file=sys.stderr)
        except Exception:
            for server in servers:
                print(f"--- {server.name} log:\n{server.output()[-5000:]}", file=sys.stderr)
            raise
        finally:
            browser.close()
            for server in servers:
                server.stop()
    print(f"Chromium {chromium}; load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    report(figures)
    if args.json:
        out = json.dumps(without_nan({"machine": machine(), "revision": revision(), "points": args.points,
                                      "figures": figures}), indent=1)
        if args.json == "-":
            print(out)
        else:
            Path(args.json).write_text(out + "\n")


if __name__ == "__main__":
    main()
