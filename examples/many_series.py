"""A thousand series of 100,000 points each (1e8 points, or as many series and rows as the
arguments say) against one x, kept on the server: zoomed out, every viewer's page shows how many
series pass through each pixel; zoomed in far enough, the lines themselves, with the exact lowest
and highest point of every series in every pixel column.

    python examples/many_series.py              # 1,000 x 1e5: 800 MB, about a minute to upload here
    python examples/many_series.py 200 1e4
"""

import sys

import numpy as np
from bokeh.models import HoverTool

from bokehsite.client import cursession, figure, output_server, server_source, show

count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
n = int(float(sys.argv[2])) if len(sys.argv) > 2 else 100_000
rng = np.random.default_rng(0)
columns = {"t": np.arange(n, dtype=np.float64)}
for i in range(count):
    columns[f"walk {i}"] = np.cumsum(rng.normal(size=n))

output_server("many series")
dataset = cursession().upload_dataset("random walks", columns, x="t", require_sorted_x=True)

p = figure(width=1000, height=500, active_scroll="wheel_zoom", title=f"{count:,} series x {n:,} points")
p.multi_line(xs="xs", ys="ys", source=server_source(dataset, "lines", x="t", y=list(columns)[1:]),
             line_alpha=0.4)
p.add_tools(HoverTool(tooltips=[("series", "@series")]))
show(p)
