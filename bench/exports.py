"""Exports: how long a document takes to come out as standalone HTML, document JSON and PNG, how
much memory the answer costs beside the document itself, and how long a whole account's zip,
its import on another account and a thumbnail take.

It runs in this process on a fresh SQLite database in a temporary directory, through the
in-process test client (the same views, renderers and streaming as a server), with line plots
of N float64 points (x and y, sent as binary arrays).

    .venv/bin/python bench/exports.py [--sizes 1e5,1e6,4e6] [--documents 100]

"Peak memory" is the most that Python allocated at once (tracemalloc, NumPy's arrays included)
while one request was answered and its answer read, beyond what was held before it: the
document's version unpacked (about the size of its arrays) and what the export holds at once,
which for a streamed export is a chunk, not what it sends.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import machine, revision, server_env  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1e5,1e6,4e6", help="points of the plots exported (default %(default)s)")
    parser.add_argument("--documents", type=int, default=100, help="documents in the account exported as a zip")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bokehsite-bench-exports-") as data_dir:
        os.environ.update(server_env(data_dir, BOKEHSITE_MAX_BODY_BYTES=str(1 << 30), BOKEHSITE_THUMBNAILS="0",
                                     BOKEHSITE_EXPORT_TIMEOUT="120"))  # a 1e6-point PNG takes 15 to 25 s here
        os.environ["DJANGO_SETTINGS_MODULE"] = "bokehsite.settings"
        import django

        django.setup()
        run(args)


def line_plot(n: int):
    import numpy as np
    from bokeh.document import Document
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure

    rng = np.random.default_rng(n)
    source = ColumnDataSource(data={"x": np.arange(n, dtype=np.float64), "y": np.cumsum(rng.standard_normal(n))})
    plot = figure(width=800, height=400, output_backend="webgl" if n > 100_000 else "canvas")
    plot.line("x", "y", source=source)
    doc = Document()
    doc.add_root(plot)
    return doc


def read(client, url: str) -> tuple[float, float, int]:
    """Seconds from the request to the first chunk of the answer and to the last, and the bytes."""
    started = time.perf_counter()
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    first, size = None, 0
    for chunk in response.streaming_content:
        if first is None:
            first = time.perf_counter() - started
        size += len(chunk)
    return first or 0.0, time.perf_counter() - started, size


def run(args: argparse.Namespace) -> None:
    from django.test import Client

    from accounts.users import default_user
    from documents import bokeh_json, images, services, thumbnails

    user = default_user()
    client = Client(HTTP_HOST="localhost")
    print(f"# bench/exports.py at {revision()}; {machine()}")
    print("| points | format | bytes | first byte ms | whole ms (median) | peak memory while answering |")
    print("|---:|---|---:|---:|---:|---:|")
    for n in (int(float(s)) for s in args.sizes.split(",")):
        document = services.create_document(user, f"line {n}", *bokeh_json.dump(line_plot(n)))
        arrays = 2 * 8 * n
        formats = ["json", "html"] + (["png"] if n <= 1_000_000 and images.unavailable() is None else [])
        for fmt in formats:
            url = f"/api/documents/{document.id}/export/?format={fmt}"
            read(client, url)  # the live document loaded, BokehJS read once
            times = [read(client, url) for _ in range(args.repeat if fmt != "png" else 1)]
            memory = ""
            if fmt != "png":
                tracemalloc.start()
                held = tracemalloc.get_traced_memory()[0]
                _, _, size = read(client, url)
                peak = tracemalloc.get_traced_memory()[1] - held
                tracemalloc.stop()
                memory = f"{peak / 1e6:.1f} MB ({peak / arrays:.2f}x the arrays, {peak / size:.0%} of the export)"
            size = times[0][2]
            print(f"| {n:,} | {fmt} | {size / 1e6:,.1f} MB | {statistics.median(t[0] for t in times) * 1000:,.0f} | "
                  f"{statistics.median(t[1] for t in times) * 1000:,.0f} | {memory} |")
        if n == min(int(float(s)) for s in args.sizes.split(",")) and images.unavailable() is None:
            started = time.perf_counter()
            drawn = thumbnails.draw(document.id)
            print(f"\nthumbnail of the {n:,}-point plot: drawn and stored in {time.perf_counter() - started:.2f} s, "
                  f"{len(bytes(drawn.png)) / 1e3:.0f} kB\n")
        services.delete_document(document)

    from django.contrib.auth import get_user_model

    for i in range(args.documents):
        services.create_document(user, f"small {i}", *bokeh_json.dump(line_plot(1_000)))
    for history in ("false", "true"):
        started = time.perf_counter()
        answer = client.get("/api/account/export/", {"history": history})
        data = b"".join(answer.streaming_content) if answer.streaming else answer.content
        exported = time.perf_counter() - started
        other, _ = get_user_model().objects.get_or_create(username=f"importer-{history}")
        started = time.perf_counter()
        stored = services.import_account(other, data)
        imported = time.perf_counter() - started
        print(f"account of {args.documents} documents (history {history}): zip {len(data) / 1e6:.1f} MB "
              f"exported in {exported:.2f} s, imported under another user in {imported:.2f} s ({len(stored)} documents)")


if __name__ == "__main__":
    main()
