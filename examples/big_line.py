"""A line of 100 million points (or as many as the first argument says), kept on the server: every
viewer's page gets a view of what it shows, with the exact lowest and highest point of every
pixel column, recomputed as it pans and zooms. Then a live tail: rows appended every second
reach every view that covers them.

    python examples/big_line.py            # 1e8 points: 1.6 GB, about 20 s to upload here
    python examples/big_line.py 1e6
"""

import sys
import time

import numpy as np

from bokehsite.client import cursession, figure, output_server, server_source, show

n = int(float(sys.argv[1])) if len(sys.argv) > 1 else 100_000_000
rng = np.random.default_rng(0)
x = np.arange(n, dtype=np.float64)
y = np.cumsum(rng.normal(size=n))

output_server("big line")
dataset = cursession().upload_dataset("random walk", {"x": x, "y": y}, require_sorted_x=True)

p = figure(width=1000, height=400, active_scroll="wheel_zoom", title=f"{n:,} points")
p.line("x", "y", source=server_source(dataset, "line"))
show(p)

# The live tail of a sensor: appended rows update the views that reach them.
last = y[-1]
for step in range(30):
    tail = last + np.cumsum(rng.normal(size=1000))
    cursession().append_dataset("random walk", {"x": np.arange(n, n + 1000, dtype=np.float64), "y": tail})
    n, last = n + 1000, tail[-1]
    time.sleep(1)
