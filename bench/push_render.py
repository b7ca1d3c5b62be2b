#!/usr/bin/env python
"""How long a line plot of N points takes to push to bokehsite and to render in a browser.

For each N, the script pushes the plot with the Python client, opens its plot page in headless
Chromium, and opens the same plot saved as a standalone HTML file by ``bokeh.io.save``, for
comparison. It starts its own Daphne server on a fresh database. See bench/README.md.

Run it from the repository root:  .venv/bin/python bench/push_render.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bokeh.document import Document
from bokeh.io import save
from bokeh.resources import Resources
from playwright.sync_api import Browser, sync_playwright

from common import CHROMIUM, CHROMIUM_ARGS, machine, server_env  # first: puts the repository on sys.path

from bokehsite import wire
from bokehsite.client import Session, figure
from tests.servers import DaphneServer

# The BokehJS bundles the plot page loads; the standalone file is made to load the same ones.
BUNDLES = ["bokeh", "bokeh-gl", "bokeh-widgets", "bokeh-tables"]
PUSH_TARGET_S = 2.0  # for 1,000,000 points
RENDER_TARGET_S = 3.0
Timings = dict[str, list[float]]  # seconds, one value per measurement, by what was measured

# Runs in every page before its own scripts. `window.benchRendered` resolves, with the time
# since navigation start, once every root view BokehJS has built reports that it has finished
# rendering and the next frame has been painted. Both pages render through
# `Bokeh.embed.add_document_standalone`, which registers its root views in `Bokeh.index`.
WATCH_RENDER = """
window.benchRendered = new Promise((resolve) => {
  const finished = () => {
    const roots = window.Bokeh && Bokeh.index ? Bokeh.index.roots : [];
    return roots.length > 0 && roots.every((view) => view.has_finished());
  };
  const afterPaint = () => setTimeout(() => resolve(performance.now()), 0);
  const poll = () => requestAnimationFrame(finished() ? afterPaint : poll);
  poll();
});
"""

# Milestones of the document that renders the plot, in ms since its own navigation start, and
# that start (`origin`, ms since the epoch).
MILESTONES = """
async () => {
  const rendered = await window.benchRendered;
  const [navigation] = performance.getEntriesByType("navigation");
  const fetches = performance.getEntriesByType("resource").filter((e) => e.initiatorType === "fetch");
  const plot = document.getElementById("plot");
  return {
    origin: performance.timeOrigin,
    rendered,
    dom_ready: navigation.domContentLoadedEventEnd,
    fetched: fetches.length ? Math.max(...fetches.map((e) => e.responseEnd)) : null,
    state: plot ? plot.dataset.state : null,
  };
}
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e4,1e5,1e6",
                        help="comma-separated numbers of points (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per figure (default: %(default)s)")
    parser.add_argument("--database-url",
                        help="benchmark this database, e.g. postgres://postgres@127.0.0.1:5432/bokehsite_bench "
                             "(created if missing); default: SQLite in a temporary directory")
    args = parser.parse_args()
    args.sizes = [int(float(size)) for size in args.sizes.split(",")]
    return args


def line_plot(n: int):
    """A line plot of a random walk of ``n`` float64 points, as the only root of its document."""
    rng = np.random.default_rng(0)
    x = np.arange(n, dtype=np.float64)
    y = np.cumsum(rng.standard_normal(n))
    plot = figure(width=800, height=400, title=f"{n:,} points")
    plot.line(x, y)
    Document().add_root(plot)
    return plot


def time_push(root_url: str, title: str, doc: Document, repeat: int) -> tuple[Timings, str]:
    """Wall time of ``session.push(doc)`` in a new session, as a script that pushes a plot does,
    and of its HTTP exchanges and client-side encoding; and the plot page's URL.

    The first push creates the document, the others replace it. (A session's later pushes of
    the same document only send what changed since, so each push gets a session of its own.)
    """
    http: list[float] = []

    def record(response, **_):
        http.append(response.elapsed.total_seconds())

    times: Timings = {"push": [], "http": [], "encode": []}
    for _ in range(repeat):
        start = time.perf_counter()
        serialized = wire.document_json(doc)
        wire.pack({"doc": serialized.content}, serialized.buffers)
        times["encode"].append(time.perf_counter() - start)

        with Session(root_url) as session:
            session.use_doc(title)
            session.http.hooks["response"].append(record)
            http.clear()
            start = time.perf_counter()
            session.push(doc)
            times["push"].append(time.perf_counter() - start)
            times["http"].append(sum(http))
            url = session.url
    return times, url


def time_render(browser: Browser, url: str, repeat: int, *, framed: bool) -> Timings:
    """Seconds from navigation start to the plot at ``url`` rendered and painted, with milestones.

    With ``framed``, the plot renders in the page's sandboxed frame (the plot page): the
    milestones are read there and counted from the page's navigation start. Every load uses a
    fresh browser context, so nothing is cached. Raises if the page logs an error or the plot
    reports a failure.
    """
    times: Timings = {"rendered": [], "dom_ready": [], "fetched": []}
    for _ in range(repeat):
        context = browser.new_context(viewport={"width": 1000, "height": 700})
        try:
            context.add_init_script(WATCH_RENDER)
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url, wait_until="commit")
            target = page.main_frame
            if framed:
                target = page.wait_for_selector("iframe.plot-frame").content_frame()
                target.wait_for_url("**/frame/**")
            milestones = target.evaluate(MILESTONES)
            shift = milestones["origin"] - page.evaluate("performance.timeOrigin")
        finally:
            context.close()
        if errors or milestones["state"] not in (None, "rendered"):
            raise RuntimeError(f"{url} did not render cleanly (state {milestones['state']}): {errors}")
        for key in times:
            if milestones[key] is not None:
                times[key].append((milestones[key] + shift) / 1000)
    return times


def save_standalone(plot, path: Path) -> None:
    """Save ``plot`` with ``bokeh.io.save``, loading the same BokehJS bundles as the plot page.

    ``save`` links only the bundles a plot needs (just ``bokeh`` for a line plot); the template
    adds the others, from the installed bokeh package (file:// URLs, no CDN).
    """
    resources = Resources(mode="absolute")
    scripts = Resources(mode="absolute", components=BUNDLES).render_js()
    template = "{% block js_resources %}" + scripts + "{% endblock %}"
    save(plot, filename=path, resources=resources, title=plot.title.text, template=template)


def measure(n: int, session: Session, browser: Browser, tmp: Path, repeat: int) -> dict[str, Timings]:
    """Push, page and standalone timings for a plot of ``n`` points; then deletes the document."""
    plot = line_plot(n)
    session.use_doc(f"bench {n}")
    push, url = time_push(session.root_url, session.title, plot.document, repeat)
    standalone = tmp / f"standalone-{n}.html"
    save_standalone(plot, standalone)
    page = time_render(browser, url, repeat, framed=True)
    session.delete_document(session.title)
    return {"push": push, "page": page, "standalone": time_render(browser, standalone.as_uri(), repeat, framed=False)}


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_header(database_url: str) -> None:
    print(f"bokehsite push/render benchmark; {machine()}")
    print(f"database: {database_url.split('@')[-1]}", flush=True)


def print_results(results: dict[int, dict[str, Timings]]) -> None:
    """The main table, the breakdown table, and whether the targets are met."""
    print()
    print(f"{'N':>10} {'push med':>9} {'push min':>9} {'page med':>9} {'standalone':>11} {'ratio':>6}")
    for n, r in results.items():
        page, alone = median(r["page"]["rendered"]), median(r["standalone"]["rendered"])
        print(f"{n:>10,} {median(r['push']['push']):>9.3f} {min(r['push']['push']):>9.3f} "
              f"{page:>9.3f} {alone:>11.3f} {page / alone:>6.2f}")
    print("(seconds; page and standalone: navigation start to rendered and painted, median)")

    print()
    print("where the time goes (medians, seconds)")
    print(f"{'':>10} {'push:':<19} {'page, since navigation:':<29} {'standalone:':<19}")
    print(f"{'N':>10} {'encode':>9} {'http':>9} {'DOM ready':>9} {'fetched':>9} {'rendered':>9} "
          f"{'DOM ready':>9} {'rendered':>9}")
    for n, r in results.items():
        push, page, alone = r["push"], r["page"], r["standalone"]
        print(f"{n:>10,} {median(push['encode']):>9.3f} {median(push['http']):>9.3f} "
              f"{median(page['dom_ready']):>9.3f} {median(page['fetched']):>9.3f} "
              f"{median(page['rendered']):>9.3f} "
              f"{median(alone['dom_ready']):>9.3f} {median(alone['rendered']):>9.3f}")

    print()
    if 1_000_000 in results:
        push = median(results[1_000_000]["push"]["push"])
        verdict = "met" if push < PUSH_TARGET_S else "NOT met"
        print(f"target: push of 1,000,000 points under {PUSH_TARGET_S:g} s: {verdict} ({push:.3f} s)")
    for n, r in results.items():
        page = median(r["page"]["rendered"])
        verdict = "met" if page < RENDER_TARGET_S else "NOT met"
        print(f"target: page of {n:,} points renders under {RENDER_TARGET_S:g} s: {verdict} ({page:.3f} s)")


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bokehsite-bench-") as tmp:
        env = server_env(tmp, args.database_url)
        print_header(env["DATABASE_URL"])
        results = {}
        with DaphneServer(env=env) as server, Session(server.url) as session, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for n in args.sizes:
                    results[n] = measure(n, session, browser, Path(tmp), args.repeat)
                    print(f"  {n:,} points done", file=sys.stderr)
            except Exception:
                print(f"server log:\n{server.output()}", file=sys.stderr)
                raise
            finally:
                browser.close()
    print_results(results)


if __name__ == "__main__":
    main()
