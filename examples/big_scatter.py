"""A scatter of 100 million points (or as many as the first argument says), kept on the server:
zoomed out, each viewer sees how many points fall in each pixel (a Datashader count, drawn as an
image with a colour bar); zoomed in far enough, the points themselves.

    python examples/big_scatter.py          # 1e8 points
    python examples/big_scatter.py 1e6
"""

import sys

import numpy as np

from bokehsite.client import cursession, figure, output_server, server_source, show

n = int(float(sys.argv[1])) if len(sys.argv) > 1 else 100_000_000
rng = np.random.default_rng(0)
columns = {"x": rng.normal(size=n), "y": rng.normal(size=n) * 0.5 + np.sin(np.linspace(0, 50, n))}

output_server("big scatter")
dataset = cursession().upload_dataset("cloud", columns)

p = figure(width=800, height=600, active_scroll="wheel_zoom", title=f"{n:,} points")
p.scatter("x", "y", source=server_source(dataset, "points"), size=3)
show(p)
