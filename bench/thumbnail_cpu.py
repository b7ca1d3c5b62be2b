"""Thumbnails: the CPU seconds one costs, in the server process and in the renderer (its process,
the Playwright driver and Chromium), with the renderer's Chromium kept running between drawings.

It runs in this process on a fresh SQLite database in a temporary directory: stores a line plot
of N points, draws its thumbnail once (which starts the renderer), then draws it again
``--repeat`` times (the stored thumbnail deleted before each) and prints the medians.

    .venv/bin/python bench/thumbnail_cpu.py [--sizes 1000,10000] [--repeat 5]

"Server" is what this process spent (rebuilding the version, writing the standalone page,
shrinking the picture with Pillow, storing it); "renderer" what the renderer's processes spent,
read from /proc (a process that ended and was reaped counts in its parent's children's times).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import machine, revision, server_env

TICK = os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="points of the plots drawn (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bokehsite-bench-thumbnails-") as data_dir:
        os.environ.update(server_env(data_dir, BOKEHSITE_THUMBNAILS="0", BOKEHSITE_EXPORT_TIMEOUT="120"))
        os.environ["DJANGO_SETTINGS_MODULE"] = "bokehsite.settings"
        import django

        django.setup()
        run(args)


def tree_cpu(pid: int) -> float:
    """CPU seconds of process ``pid`` and every process under it, those reaped included."""
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the name: state ppid ... utime(12) stime(13) cutime(14) cstime(15), counted from state
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = sum(int(f) for f in fields[11:15])
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0)
        todo.extend(child for child, parent in parents.items() if parent == current)
    return total / TICK


def run(args: argparse.Namespace) -> None:
    from accounts.users import default_user
    from bench.exports import line_plot
    from documents import bokeh_json, images, services, thumbnails
    from documents.models import Thumbnail

    if images.unavailable():
        sys.exit(images.unavailable())
    user = default_user()
    print(f"# bench/thumbnail_cpu.py at {revision()}; {machine()}")
    print("| points | drawing | wall s | server CPU s | renderer CPU s | total CPU s |")
    print("|---:|---|---:|---:|---:|---:|")
    for n in (int(float(s)) for s in args.sizes.split(",")):
        document = services.create_document(user, f"line {n}", *bokeh_json.dump(line_plot(n)))
        rows = []
        for i in range(args.repeat + 1):
            Thumbnail.objects.filter(document=document).delete()
            status = images.status()
            renderer = tree_cpu(status["pid"]) if status else 0.0
            wall, server = time.perf_counter(), time.process_time()
            drawn = thumbnails.draw(document.id)
            wall, server = time.perf_counter() - wall, time.process_time() - server
            renderer = tree_cpu(images.status()["pid"]) - renderer
            assert drawn is not None and bytes(drawn.png), "the thumbnail did not draw"
            rows.append((wall, server, renderer))
            if i == 0 and status is None:
                print(f"| {n:,} | first (starts the renderer) | {wall:.2f} | {server:.3f} | {renderer:.3f} | "
                      f"{server + renderer:.3f} |")
        kept = rows[1:]
        medians = [statistics.median(r[k] for r in kept) for k in range(3)]
        print(f"| {n:,} | kept browser, median of {len(kept)} | {medians[0]:.2f} | {medians[1]:.3f} | "
              f"{medians[2]:.3f} | {medians[1] + medians[2]:.3f} |")
        services.delete_document(document)
    status = images.status()
    print(f"\nrenderer: priority {status['priority']}, network cut off by {status['isolation']}, "
          f"{status['launches']} browser for {status['drawings']} drawings")
    images.stop()


if __name__ == "__main__":
    main()
