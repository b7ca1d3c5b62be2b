#!/usr/bin/env python
"""Round trip of a slider change: browser → Python callback → recomputed data drawn in the browser.

The dashboard is examples/sliders.py: a sine wave of 400 points and four sliders whose Python
callback recomputes ``source.data``. The script measures it on several servers at once, each in
its own page of the same headless Chromium, making the changes on the pages in turn:

- on bokehsite: the example runs as a script of its own against a Daphne server of its own
  (fresh SQLite database in a temporary directory), as a user runs it; the browser shows the
  plot page, which renders the document in its sandboxed frame;
- with ``--baseline REF``, the same on bokehsite as it was at commit REF (its server and its
  client);
- as a ``bokeh serve`` app: the same example, its import line swapped for ``bokeh serve``'s
  equivalents, where the callback runs in the Bokeh server.

Each change is a real key press (ArrowRight, then ArrowLeft, and so on) on the amplitude
slider's handle. The latency is measured inside the page, on the browser's clock: from the
``keydown`` event to the first animation frame after the plot has repainted with the new data.
See bench/README.md, "Round trip".

Run it from the repository root:  .venv/bin/python bench/roundtrip.py
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from playwright.sync_api import Browser, Frame, Locator, Page, sync_playwright

import roundtrip_probe
from common import (  # first: puts the repository on sys.path
    CHROMIUM, CHROMIUM_ARGS, ROOT, checkout, machine, python_env, revision, server_env, stop_process,
)

from tests.servers import DaphneServer, free_port

EXAMPLE = Path("examples") / "sliders.py"
PROBE = Path(__file__).resolve().with_name("roundtrip_probe.py")
APP_NAME = "sliders"
EXAMPLE_IMPORT = "from bokehsite.client import cursession, figure, output_server, show"

# The example as a bokeh serve app: the same file, its import line replaced by these.
APP_MAIN = f'''
import sys
sys.path.insert(0, {str(PROBE.parent)!r})
import roundtrip_probe
roundtrip_probe.install()

from bokeh.io import curdoc
from bokeh.plotting import figure


def output_server(title):
    curdoc().title = title


def show(obj):
    curdoc().add_root(obj)


class _Session:
    def loop_until_closed(self):
        pass  # bokeh serve runs the callbacks


def cursession():
    return _Session()


with open({str(ROOT / EXAMPLE)!r}) as example:
    exec(compile(example.read().replace({EXAMPLE_IMPORT!r}, ""), {str(ROOT / EXAMPLE)!r}, "exec"))
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
    parser.add_argument("--baseline", metavar="REF", help="also measure bokehsite as it was at this commit (e.g. HEAD~1)")
    return parser.parse_args()


# --- the servers -------------------------------------------------------------------------------


class Bokehsite:
    """A fresh bokehsite server of the checkout ``root``, and the example running against it as a
    script of its own (with that checkout's client), its callbacks probed."""

    def __init__(self, tmp: Path, root: Path = ROOT):
        tmp.mkdir()
        self.tmp, self.root = tmp, root
        self.stamps = tmp / "stamps.txt"
        self.server: DaphneServer | None = None
        self.script: subprocess.Popen[str] | None = None

    @property
    def callbacks(self) -> list[tuple[float, float]]:
        return roundtrip_probe.read(self.stamps)[0]

    @property
    def incoming(self) -> list[float]:
        return roundtrip_probe.read(self.stamps)[1]

    def start(self) -> str:
        self.server = DaphneServer(env=server_env(str(self.tmp), root=self.root), root=self.root).start()
        env = {**os.environ, **python_env(self.root), "BOKEH_SERVER_URL": self.server.url, "PYTHONUNBUFFERED": "1",
               "ROUNDTRIP_STAMPS": str(self.stamps)}
        with (self.tmp / "script.log").open("w") as log:
            self.script = subprocess.Popen([sys.executable, str(PROBE), str(self.root / EXAMPLE)], cwd=self.root,
                                           env=env, stdout=subprocess.PIPE, stderr=log, text=True)
        line = self.script.stdout.readline()  # "sliders: <url>", once the example has pushed
        if ": http" not in line:
            raise RuntimeError(f"the example did not push: {line!r}\n{(self.tmp / 'script.log').read_text()}")
        return line.split(": ", 1)[1].strip()

    def open(self, page: Page, url: str) -> tuple[Frame, Locator]:
        page.goto(url)
        frame_locator = page.frame_locator("#plot-frame")
        frame_locator.locator('#plot[data-state="rendered"]').wait_for(timeout=60000)
        frame_locator.locator('#live-status[data-status="live"]').wait_for(timeout=60000)
        frame = next(f for f in page.frames if "/frame/" in f.url)
        frame.wait_for_function(RENDERED, timeout=60000)
        return frame, frame_locator.locator(".noUi-handle").first

    def stop(self) -> None:
        if self.script is not None and self.script.poll() is None:
            self.script.send_signal(signal.SIGINT)  # as Ctrl-C: it sends what it has, then exits
            try:
                self.script.wait(30)
            except subprocess.TimeoutExpired:
                self.script.kill()
        if self.server is not None:
            self.server.stop()


class BokehServe:
    """The example as a ``bokeh serve`` app; its callbacks run in the Bokeh server."""

    def __init__(self, tmp: Path):
        self.app = tmp / APP_NAME
        self.app.mkdir()
        (self.app / "main.py").write_text(APP_MAIN)
        self.stamps = tmp / "serve-stamps.txt"
        self.log = tmp / "serve.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def callbacks(self) -> list[tuple[float, float]]:
        return roundtrip_probe.read(self.stamps)[0]

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
        if self.process is not None:
            stop_process(self.process)


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
            if bokehsite and s.get("incoming") is not None and s["sent"] is not None:
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


def summary(name: str, run: dict[str, Any]) -> str:
    total = segments(run, name.startswith("bokehsite"))["total"]
    valid = sum(1 for s in run["steps"] if s["valid"])
    return (f"{name:<22} {len(total):>8} {run['failures']:>5} {percentile(total, 50):>7.1f} {percentile(total, 99):>7.1f} "
            f"{statistics.mean(total):>7.1f} {min(total):>7.1f} {max(total):>7.1f} {valid:>6}")


def ratio(a: list[float], b: list[float]) -> str:
    return (f"p50 {percentile(a, 50) / percentile(b, 50):.2f}, p99 {percentile(a, 99) / percentile(b, 99):.2f}, "
            f"mean {statistics.mean(a) / statistics.mean(b):.2f}, min {min(a) / min(b):.2f}")


def main() -> None:
    args = parse_args()
    print(f"bokehsite round-trip benchmark; {machine()}")
    print(f"bokehsite at {revision()}" + (f"; baseline bokehsite@{args.baseline}" if args.baseline else ""))
    print(f"{args.changes} changes per server after {args.warmup} warm-up changes, the servers in turn, "
          f"{args.gap * 1000:.0f} ms apart")
    with tempfile.TemporaryDirectory(prefix="roundtrip-") as tmp, contextlib.ExitStack() as stack, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        chromium = browser.version
        targets = [Target("bokehsite", Bokehsite(Path(tmp) / "site"), browser)]
        if args.baseline:
            root = stack.enter_context(checkout(args.baseline))
            targets.append(Target(f"bokehsite@{args.baseline}", Bokehsite(Path(tmp) / "baseline", root), browser))
        targets.append(Target("bokeh serve", BokehServe(Path(tmp)), browser))
        try:
            for target in targets:
                target.open()
            print("measuring, the servers in turn…", flush=True)
            run_changes(targets, args.changes, args.warmup, args.gap)
        finally:
            try:
                for target in targets:
                    target.close()
            finally:
                browser.close()
    runs = {target.name: target.run for target in targets}
    print(f"Chromium {chromium}; load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print("Round trip, key press → recomputed wave painted (ms):")
    print(f"{'':<22} {'changes':>8} {'lost':>5} {'p50':>7} {'p99':>7} {'mean':>7} {'min':>7} {'max':>7} {'valid':>6}")
    for name, run in runs.items():
        print(summary(name, run))
    totals = {name: segments(run, name.startswith("bokehsite"))["total"] for name, run in runs.items()}
    for name in totals:
        if name != "bokehsite":
            print(f"ratio bokehsite / {name}: {ratio(totals['bokehsite'], totals[name])}")
    for name, run in runs.items():
        print()
        print(f"Where the time goes, {name} (ms, median and p99 of each segment; the medians need not add up;"
              f" clock offset browser − Python {run['offset']:.1f} ms, drift {run['drift']:.2f} ms):")
        for segment, values in segments(run, name.startswith("bokehsite")).items():
            print(f"  {segment:<30} {percentile(values, 50):>7.2f} {percentile(values, 99):>7.2f}  (n={len(values)})")


if __name__ == "__main__":
    main()
