#!/usr/bin/env python
"""Round trip of a slider change: browser → Python callback → recomputed data drawn in the browser.

The dashboard is the one of examples/sliders.py: a sine wave of 400 points and four sliders whose
Python callback recomputes ``source.data``. The script measures it on two servers at once, each
in its own page of the same headless Chromium, making the changes on the two pages in turn:

- on bokehsite: this process pushes the dashboard to a Daphne server of its own (fresh SQLite
  database in a temporary directory) and runs the callbacks with ``session.start_background()``;
  the browser shows the plot page, which renders the document in its sandboxed frame;
- as a ``bokeh serve`` app, the same code in a ``main.py``, where the callback runs in the
  Bokeh server.

Each change is a real key press (ArrowRight, then ArrowLeft, and so on) on the amplitude
slider's handle. The latency is measured inside the page, on the browser's clock: from the
``keydown`` event to the first animation frame after the plot has repainted with the new data.
See bench/README.md, "Round trip".

Run it from the repository root:  .venv/bin/python bench/roundtrip.py
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any, Callable

import bokeh
import numpy as np
from bokeh.document import Document
from bokeh.layouts import column, row
from bokeh.models import ColumnDataSource, Slider
from playwright.sync_api import Browser, Frame, Locator, Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bokehsite.client import Session, figure  # noqa: E402
from tests.live import DaphneServer  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
DOC_TITLE = "roundtrip"
APP_NAME = "sliders"

# The dashboard of examples/sliders.py. The bokeh serve app is this same code; `stamp(start, end)`
# records when each callback ran (time.time(), seconds).
DASHBOARD = '''
x = np.linspace(0, 4 * np.pi, 400)
source = ColumnDataSource(data={"x": x, "y": np.sin(x)}, name="wave")

plot = figure(height=400, width=600, title="my sine wave", x_range=(0, 4 * np.pi), y_range=(-2.5, 2.5),
              tools="crosshair,pan,reset,save,wheel_zoom")
plot.line("x", "y", source=source, line_width=3, line_alpha=0.6)

amplitude = Slider(title="amplitude", value=1.0, start=-2.0, end=2.0, step=0.1, name="amplitude")
frequency = Slider(title="frequency", value=1.0, start=0.1, end=5.1, step=0.1, name="frequency")
phase = Slider(title="phase", value=0.0, start=0.0, end=2 * np.pi, step=0.1, name="phase")
offset = Slider(title="offset", value=0.0, start=-2.0, end=2.0, step=0.1, name="offset")


def update(attr, old, new):
    start = time.time()
    source.data = {"x": x, "y": amplitude.value * np.sin(frequency.value * x + phase.value) + offset.value}
    stamp(start, time.time())


for slider in (amplitude, frequency, phase, offset):
    slider.on_change("value", update)

layout = row(column(amplitude, frequency, phase, offset), plot)
'''

APP_MAIN = '''
import os
import time

import numpy as np
from bokeh.io import curdoc
from bokeh.models import ColumnDataSource, Slider
from bokeh.layouts import column, row
from bokeh.plotting import figure

_stamps = open(os.environ["ROUNDTRIP_STAMPS"], "a", buffering=1)


def stamp(start, end):
    _stamps.write(f"{start!r} {end!r}\\n")

''' + DASHBOARD + '''
curdoc().add_root(layout)
curdoc().title = "sliders"
'''

# Runs in every frame before the page's own scripts. Records, on the browser's clock
# (performance.now(), ms), the keydown that starts a change, every websocket message sent or
# received while a change is under way.
INIT_SCRIPT = """
(() => {
  const log = window.__rtLog = {armed: false, t0: null, sent: [], received: []};
  window.addEventListener("keydown", () => {
    if (log.armed && log.t0 === null) log.t0 = performance.now();
  }, {capture: true});
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", () => { if (log.armed) log.received.push(performance.now()); });
    }
    send(data) {
      if (log.armed) log.sent.push(performance.now());
      return super.send(data);
    }
  };
})();
"""

# Installed once the document is rendered. `__rt.arm()` prepares for one change; `__rt.done`
# then resolves when the wave's data has changed and the plot has repainted, at the next animation
# frame. Times in ms on the browser's clock; `origin` is performance.timeOrigin (epoch ms).
INSTALL = """
() => {
  const log = window.__rtLog;
  const doc = Bokeh.documents[0];
  const source = doc.get_model_by_name("wave");
  const amplitude = doc.get_model_by_name("amplitude");
  const plotView = [...Bokeh.index.all_views()].find((view) => typeof view._actual_paint === "function");
  if (!source || !amplitude || !plotView) throw new Error("the dashboard's models or plot view are missing");
  let step = null;
  source.properties.data.change.connect(() => {
    if (step === null || step.data !== null) return;
    step.data = performance.now();
    // The data is the wave recomputed for the slider's current value (frequency 1, phase 0, offset 0).
    const {x, y} = source.data;
    const k = 57;
    step.valid = Math.abs(y[k] - amplitude.value * Math.sin(x[k])) < 1e-9;
  });
  const paint = plotView._actual_paint;
  plotView._actual_paint = function (...args) {
    const result = paint.apply(this, args);
    if (step !== null && step.data !== null && step.painted === null) {
      step.painted = performance.now();
      const current = step;
      requestAnimationFrame(() => {
        current.frame = performance.now();
        current.resolve();
      });
    }
    return result;
  };
  window.__rt = {
    arm() {
      log.armed = true;
      log.t0 = null;
      log.sent = [];
      log.received = [];
      step = {data: null, painted: null, frame: null, valid: null};
      const current = step;
      window.__rt.done = new Promise((resolve, reject) => {
        current.resolve = () => {
          log.armed = false;
          step = null;
          const sent = log.sent.find((t) => t >= log.t0);
          const received = log.received.filter((t) => t <= current.data);
          resolve({
            t0: log.t0, sent: sent ?? null, received: received.length ? received[received.length - 1] : null,
            data: current.data, painted: current.painted, frame: current.frame, valid: current.valid,
            value: amplitude.value, origin: performance.timeOrigin,
          });
        };
        setTimeout(() => reject(new Error("no repaint with new data within 10 s")), 10000);
      });
    },
  };
  return {amplitude: amplitude.value};
}
"""

# The page's document is rendered: every root view reports it has finished drawing.
RENDERED = """
() => {
  const roots = window.Bokeh && Bokeh.index ? Bokeh.index.roots : [];
  return Bokeh.documents.length > 0 && roots.length > 0 && roots.every((view) => view.has_finished());
}
"""

# The browser's wall clock, epoch ms, sub-millisecond.
BROWSER_EPOCH = "() => performance.timeOrigin + performance.now()"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=200, help="measured changes for each server (default 200)")
    parser.add_argument("--warmup", type=int, default=10, help="changes made first and not counted (default 10)")
    parser.add_argument("--gap", type=float, default=0.1,
                        help="seconds to wait after each change is drawn, before the next key press (default 0.1)")
    return parser.parse_args()


# --- the two servers ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_dashboard(stamp: Callable[[float, float], None]) -> Document:
    namespace: dict[str, Any] = {
        "np": np, "time": time, "ColumnDataSource": ColumnDataSource, "Slider": Slider, "figure": figure,
        "column": column, "row": row, "stamp": stamp,
    }
    exec(DASHBOARD, namespace)
    doc = Document()
    doc.add_root(namespace["layout"])
    return doc


class Bokehsite:
    """The dashboard pushed to a fresh bokehsite server, its callbacks in this process."""

    def __init__(self, tmp: Path):
        tmp.mkdir()
        self.env = {"DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3", "BOKEHSITE_DATA_DIR": str(tmp)}
        self.callbacks: list[tuple[float, float]] = []  # (start, end), time.time()
        self.incoming: list[float] = []  # when the client's reader got a frame with others' changes
        self.server: DaphneServer | None = None
        self.session: Session | None = None

    def start(self) -> str:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env={**os.environ, **self.env},
            check=True, capture_output=True,
        )
        self.server = DaphneServer(env=self.env).start()
        self.session = Session(self.server.url)
        self.session.use_doc(DOC_TITLE)
        self.session.push(build_dashboard(lambda start, end: self.callbacks.append((start, end))))
        link = self.session._live()
        put = link._incoming.put

        def timed_put(item, *args, **kwargs):  # runs in the client's websocket thread
            header = item[0]
            if header.get("type") != "patches" or any(not i.get("own") for i in header.get("items", [])):
                self.incoming.append(time.time())
            return put(item, *args, **kwargs)

        link._incoming.put = timed_put
        self.session.start_background()
        return self.session.info["url"]

    def open(self, page: Page, url: str) -> tuple[Frame, Locator]:
        page.goto(url)
        frame_locator = page.frame_locator("#plot-frame")
        frame_locator.locator('#plot[data-state="rendered"]').wait_for(timeout=60000)
        frame_locator.locator('#live-status[data-status="live"]').wait_for(timeout=60000)
        frame = next(f for f in page.frames if "/frame/" in f.url)
        frame.wait_for_function(RENDERED, timeout=60000)
        return frame, frame_locator.locator(".noUi-handle").first

    def stop(self) -> None:
        if self.session is not None:
            self.session.close()
        if self.server is not None:
            self.server.stop()


class BokehServe:
    """The dashboard as a ``bokeh serve`` app; its callbacks run in the Bokeh server."""

    def __init__(self, tmp: Path):
        self.app = tmp / APP_NAME
        self.app.mkdir()
        (self.app / "main.py").write_text(textwrap.dedent(APP_MAIN))
        self.stamps = tmp / "serve-stamps.txt"
        self.log = tmp / "serve.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def callbacks(self) -> list[tuple[float, float]]:
        if not self.stamps.exists():
            return []
        return [tuple(map(float, line.split())) for line in self.stamps.read_text().splitlines() if line.strip()]

    def start(self) -> str:
        origin = f"127.0.0.1:{self.port}"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bokeh", "serve", str(self.app), "--port", str(self.port),
                 "--address", "127.0.0.1", f"--allow-websocket-origin={origin}"],
                env={**os.environ, "ROUNDTRIP_STAMPS": str(self.stamps)}, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"bokeh serve exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return f"http://{origin}/{APP_NAME}"
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"bokeh serve did not listen within 60 s:\n{self.log.read_text()}")

    def open(self, page: Page, url: str) -> tuple[Frame, Locator]:
        page.goto(url)
        page.main_frame.wait_for_function(RENDERED, timeout=60000)
        page.main_frame.wait_for_function("() => !!Bokeh.documents[0].get_model_by_name('wave')", timeout=60000)
        return page.main_frame, page.locator(".noUi-handle").first

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- measuring ---------------------------------------------------------------------------------


def clock_offset(frame: Frame) -> float:
    """Browser epoch ms minus Python time.time() ms, from the sample with the shortest round trip."""
    best = None
    for _ in range(15):
        before = time.time() * 1000
        browser = frame.evaluate(BROWSER_EPOCH)
        after = time.time() * 1000
        if best is None or after - before < best[0]:
            best = (after - before, browser - (before + after) / 2)
    return best[1]


class Target:
    """One server with its dashboard open in a page of its own, ready for key presses."""

    def __init__(self, name: str, server: Bokehsite | BokehServe, browser: Browser):
        self.name = name
        self.server = server
        self.browser = browser
        self.context = None
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.steps: list[dict[str, Any]] = []
        self.failures = 0
        self.offsets: list[float] = []

    def open(self) -> None:
        url = self.server.start()
        self.context = self.browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.add_init_script(INIT_SCRIPT)
        page = self.context.new_page()
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: (self.errors if m.type == "error" else self.warnings).append(m.text)
                if m.type in ("error", "warning") else None)
        self.frame, self.handle = self.server.open(page, url)
        self.frame.evaluate(INSTALL)
        self.handle.click()  # focuses the handle; a click on its centre does not move it
        time.sleep(0.5)
        self.offsets.append(clock_offset(self.frame))

    def change(self, key: str, record: bool) -> None:
        """Press ``key`` on the slider and wait until the new wave is painted."""
        callbacks_before = len(self.server.callbacks)
        incoming_before = len(getattr(self.server, "incoming", []))
        self.frame.evaluate("() => __rt.arm()")
        self.handle.press(key)
        try:
            result = self.frame.evaluate("() => __rt.done")
        except Exception as e:  # noqa: BLE001 - a lost change is counted, and the run goes on
            self.failures += 1
            print(f"  {self.name}: {e}", file=sys.stderr)
            time.sleep(1)
            return
        if record:
            # The callback's thread or process may still be writing its stamps: wait for them.
            deadline = time.monotonic() + 1
            while len(self.server.callbacks) == callbacks_before and time.monotonic() < deadline:
                time.sleep(0.005)
            callbacks = self.server.callbacks[callbacks_before:]
            result["callback"] = callbacks[0] if len(callbacks) == 1 else None
            incoming = getattr(self.server, "incoming", [])[incoming_before:]
            result["incoming"] = incoming[0] if incoming else None
            self.steps.append(result)

    def close(self) -> None:
        try:
            if self.context is not None:
                self.offsets.append(clock_offset(self.frame))
                self.context.close()
        finally:
            self.server.stop()
        for warning in self.warnings:
            print(f"  {self.name}, console warning: {warning}", file=sys.stderr)
        if self.errors:
            raise RuntimeError(f"{self.name}: the page reported errors: {self.errors}")

    @property
    def run(self) -> dict[str, Any]:
        return {"steps": self.steps, "failures": self.failures, "offset": statistics.mean(self.offsets),
                "drift": self.offsets[-1] - self.offsets[0]}


def run_changes(targets: list[Target], n: int, warmup: int, gap: float) -> None:
    """Changes on all targets in turn, so that whatever else the machine does slows them alike.
    The keys alternate, ArrowRight then ArrowLeft, so the slider stays between two values."""
    for i in range(warmup + n):
        key = "ArrowRight" if i % 2 == 0 else "ArrowLeft"
        for target in targets if i % 2 == 0 else reversed(targets):
            target.change(key, record=i >= warmup)
            time.sleep(gap)


def segments(run: dict[str, Any], bokehsite: bool) -> dict[str, list[float]]:
    """Per change, in ms: the total, and where it went (Python stamps moved to the browser's clock)."""
    out: dict[str, list[float]] = {}

    def add(name: str, value: float | None) -> None:
        if value is not None:
            out.setdefault(name, []).append(value)

    for s in run["steps"]:
        add("total", s["frame"] - s["t0"])
        # Python's time.time() → the browser's performance.now(): epoch ms + offset − timeOrigin.
        py = lambda t: t * 1000 + run["offset"] - s["origin"]  # noqa: E731
        cb = s["callback"]
        add("input → sent", s["sent"] - s["t0"] if s["sent"] is not None else None)
        if cb is not None:
            if bokehsite and s["incoming"] is not None and s["sent"] is not None:
                add("sent → client got it", py(s["incoming"]) - s["sent"])
                add("client got it → callback", py(cb[0]) - py(s["incoming"]))
            elif s["sent"] is not None:
                add("sent → callback", py(cb[0]) - s["sent"])
            add("callback", (cb[1] - cb[0]) * 1000)
            if s["received"] is not None:
                add("callback → browser got data", s["received"] - py(cb[1]))
        if s["received"] is not None:
            add("browser got data → applied", s["data"] - s["received"])
        add("applied → painted", s["painted"] - s["data"])
        add("painted → next frame", s["frame"] - s["painted"])
    return out


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 ** 2:.0f} GiB"
    except OSError:
        pass
    return "?"


def main() -> None:
    args = parse_args()
    print(f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"machine: {platform.platform()}, {cpu_model()}, {os.cpu_count()} CPUs, {memory_gib()}; "
          f"Python {platform.python_version()}, Bokeh {bokeh.__version__}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{args.changes} changes per server after {args.warmup} warm-up changes, the servers in turn, "
          f"{args.gap * 1000:.0f} ms apart")
    with tempfile.TemporaryDirectory(prefix="roundtrip-") as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        chromium = browser.version
        targets = [Target("bokehsite", Bokehsite(Path(tmp) / "site"), browser),
                   Target("bokeh serve", BokehServe(Path(tmp)), browser)]
        try:
            for target in targets:
                target.open()
            print("measuring, the two in turn…", flush=True)
            run_changes(targets, args.changes, args.warmup, args.gap)
        finally:
            try:
                for target in targets:
                    target.close()
            finally:
                browser.close()
    runs = {target.name: target.run for target in targets}
    print(f"Chromium {chromium}; load average after: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print("Round trip, key press → recomputed wave painted (ms):")
    print(f"{'':<12} {'changes':>8} {'lost':>5} {'p50':>7} {'p99':>7} {'mean':>7} {'min':>7} {'max':>7} {'valid':>6}")
    totals = {}
    for name, run in runs.items():
        total = totals[name] = segments(run, name == "bokehsite")["total"]
        valid = sum(1 for s in run["steps"] if s["valid"])
        print(f"{name:<12} {len(total):>8} {run['failures']:>5} {percentile(total, 50):>7.1f} "
              f"{percentile(total, 99):>7.1f} {statistics.mean(total):>7.1f} {min(total):>7.1f} {max(total):>7.1f} "
              f"{valid:>6}")
    a, b = totals["bokehsite"], totals["bokeh serve"]
    print(f"ratio bokehsite / bokeh serve: p50 {percentile(a, 50) / percentile(b, 50):.2f}, "
          f"p99 {percentile(a, 99) / percentile(b, 99):.2f}, mean {statistics.mean(a) / statistics.mean(b):.2f}, "
          f"min {min(a) / min(b):.2f}")
    for name, run in runs.items():
        print()
        print(f"Where the time goes, {name} (ms, median and p99 of each segment; the medians need not add up;"
              f" clock offset browser − Python {run['offset']:.1f} ms, drift {run['drift']:.2f} ms):")
        for segment, values in segments(run, name == "bokehsite").items():
            print(f"  {segment:<30} {percentile(values, 50):>7.2f} {percentile(values, 99):>7.2f}  (n={len(values)})")


if __name__ == "__main__":
    main()
