"""Ways in: how long ``bokeh-server`` takes to answer after it starts, how long ``autoload.js``
takes to answer, and how long an embedded plot takes to draw in another origin's page compared
with the plot page itself.

    .venv/bin/python bench/ways_in.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from common import CHROMIUM, CHROMIUM_ARGS, machine, revision  # first: puts the repository on sys.path

from tests.servers import StaticSite, free_port


def time_until_healthy(command: list[str], cwd: Path, port: int) -> tuple[float, subprocess.Popen]:
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return time.perf_counter() - start, process
        except requests.RequestException:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"bokeh-server exited with {process.returncode}")
        time.sleep(0.02)


def stop(process: subprocess.Popen) -> float:
    start = time.perf_counter()
    process.send_signal(signal.SIGINT)
    process.wait(30)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"# {machine()}; bokehsite {revision()}")
    bokeh_server = str(Path(sys.executable).parent / "bokeh-server")
    figures: dict[str, list[float]] = {"cold start (migrates a new database)": [], "warm start": [], "Ctrl-C to exit": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            here = Path(tmp) / f"run{i}"
            here.mkdir()
            port = free_port()
            cold, process = time_until_healthy([bokeh_server, "--port", str(port)], here, port)
            figures["cold start (migrates a new database)"].append(cold)
            figures["Ctrl-C to exit"].append(stop(process))
            warm, process = time_until_healthy([bokeh_server, "--port", str(port)], here, port)
            figures["warm start"].append(warm)
            stop(process)

        # One server for the embeds.
        here = Path(tmp) / "embeds"
        here.mkdir()
        port = free_port()
        _, server = time_until_healthy([bokeh_server, "--port", str(port)], here, port)
        url = f"http://localhost:{port}/"
        try:
            from bokehsite.client import Session, autoload_server
            from tests.helpers import line_document

            with Session(url) as session:
                session.use_doc("bench")
                session.push(line_document())
                session.publish()
                snippet = autoload_server(session=session, public=True)
                page_url = session.url
            src = snippet.split('src="')[1].split('"')[0].replace("&amp;", "&")
            answers = []
            for _ in range(20 * args.repeat):
                start = time.perf_counter()
                requests.get(src, timeout=10).raise_for_status()
                answers.append(time.perf_counter() - start)
            figures["autoload.js answer"] = answers

            site_dir = Path(tmp) / "site"
            site_dir.mkdir()
            (site_dir / "index.html").write_text(f"<!DOCTYPE html><html><body>{snippet}</body></html>")
            from playwright.sync_api import sync_playwright

            with StaticSite(site_dir) as site, sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                for name, target, selector in (
                        ("plot page: open to drawn", page_url, "#plot-frame[data-state=rendered]"),
                        ("embed in another origin's page: open to drawn", f"{site.origin}/index.html",
                         "iframe.bokehsite-embed-frame[data-state=rendered]")):
                    figures[name] = []
                    for _ in range(args.repeat):
                        context = browser.new_context()
                        page = context.new_page()
                        start = time.perf_counter()
                        page.goto(target)
                        page.wait_for_selector(selector, timeout=30_000)
                        figures[name].append(time.perf_counter() - start)
                        context.close()
                browser.close()
        finally:
            stop(server)

    print("\n| what | median | min | max | runs |\n|---|---|---|---|---|")
    for name, values in figures.items():
        print(f"| {name} | {statistics.median(values) * 1000:.0f} ms | {min(values) * 1000:.0f} ms | "
              f"{max(values) * 1000:.0f} ms | {len(values)} |")


if __name__ == "__main__":
    main()
