"""Uploading and appending datasets: how fast the client's chunked upload goes, what finishing
costs (the sorted-x check and the min/max summaries), how big the summaries are, and how long a
live tail's append takes. It starts its own Daphne server on a fresh database. See bench/README.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import machine, server_env  # first: puts the repository on sys.path

from bokehsite.client import Session
from datasets import summaries
from tests.servers import DaphneServer


def measure(url: str, n: int, appends: int, tail_rows: int) -> dict[str, float]:
    rng = np.random.default_rng(n)
    columns = {"x": np.arange(n, dtype=np.float64), "y": np.cumsum(rng.normal(size=n))}
    data_bytes = sum(v.nbytes for v in columns.values())
    with Session(url, timeout=600) as session:
        started = time.perf_counter()
        dataset = session.upload_dataset(f"bench-{n}", columns, require_sorted_x=True)
        upload_s = time.perf_counter() - started

        with tempfile.TemporaryDirectory() as tmp:  # what finishing spends on the summaries, alone
            path = Path(tmp) / "y.npy"
            np.save(path, columns["y"])
            y = np.load(path, mmap_mode="r")
            started = time.perf_counter()
            summary_size = summaries.build(y, Path(tmp), "y")
            build_s = time.perf_counter() - started

        x, times = float(n), []
        for _ in range(appends):
            tail = {"x": np.arange(x, x + tail_rows), "y": rng.normal(size=tail_rows)}
            started = time.perf_counter()
            session.append_dataset(dataset.id, tail)
            times.append(time.perf_counter() - started)
            x += tail_rows
        session.delete_dataset(dataset.id)
    return {"n": n, "data_mb": data_bytes / 1e6, "upload_s": upload_s, "mb_s": data_bytes / 1e6 / upload_s,
            "build_s": build_s, "summary_mb": summary_size / 1e6, "summary_share": summary_size / columns["y"].nbytes,
            "append_p50_ms": statistics.median(times) * 1e3, "append_max_ms": max(times) * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1e6,1e7", help="comma-separated numbers of rows")
    parser.add_argument("--chunk-mib", type=int, default=64, help="the server's chunk size (BOKEHSITE_DATASET_CHUNK_BYTES)")
    parser.add_argument("--appends", type=int, default=20, help="appends timed at each size")
    parser.add_argument("--tail-rows", type=int, default=1000, help="rows per append")
    args = parser.parse_args()
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    print(machine())
    with tempfile.TemporaryDirectory(prefix="bokehsite-bench-") as data_dir:
        env = server_env(data_dir, BOKEHSITE_DATASET_CHUNK_BYTES=str(args.chunk_mib * 1024 * 1024),
                         BOKEHSITE_DATASET_QUOTA_BYTES=str(1 << 40), BOKEHSITE_DATASET_MAX_BYTES=str(1 << 40))
        with DaphneServer(env=env) as server:
            print(f"chunks of {args.chunk_mib} MiB; two float64 columns (x sorted, y a random walk); "
                  f"appends of {args.tail_rows} rows")
            print("| rows | data | upload (finish included) | throughput | summaries: build | summaries: size | "
                  "append p50 | append max |")
            print("|---:|---:|---:|---:|---:|---:|---:|---:|")
            for n in sizes:
                r = measure(server.url, n, args.appends, args.tail_rows)
                print(f"| {n:.0e} | {r['data_mb']:.0f} MB | {r['upload_s']:.2f} s | {r['mb_s']:.0f} MB/s | "
                      f"{r['build_s']:.2f} s | {r['summary_mb']:.1f} MB ({r['summary_share']:.0%} of y) | "
                      f"{r['append_p50_ms']:.1f} ms | {r['append_max_ms']:.1f} ms |", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
