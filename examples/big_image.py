"""An image of 400 million pixels (20,000 x 20,000, or as many a side as the first argument says),
kept on the server: every viewer's page gets the window it shows at its own size, from a pyramid
of reduced levels, down to the stored pixels themselves when zoomed in. A few single bright
pixels stay visible at full view (reduce="max"). Then a growing spectrogram: rows appended every
second go on top and reach every view that shows the top.

    python examples/big_image.py            # 20,000 x 20,000 uint8: 400 MB, about 10 s to upload here
    python examples/big_image.py 5000
"""

import sys
import time

import numpy as np
from bokeh.models import LinearColorMapper

from bokehsite.client import cursession, figure, output_server, server_source, show

side = int(float(sys.argv[1])) if len(sys.argv) > 1 else 20_000
rng = np.random.default_rng(0)
# Rings and noise, made a strip at a time so that memory stays small here too.
pixels = np.empty((side, side), dtype=np.uint8)
x = np.linspace(-1, 1, side)
for first in range(0, side, 1000):
    y = x[first:first + 1000, None]
    rings = 120 + 100 * np.sin(40 * np.hypot(x, y))
    pixels[first:first + 1000] = np.clip(rings + rng.normal(0, 10, rings.shape), 0, 230).astype(np.uint8)
pixels[rng.integers(0, side, 20), rng.integers(0, side, 20)] = 255  # stars: one pixel each

output_server("big image")
image = cursession().upload_image("rings", pixels, x=(-1, 1), y=(-1, 1))

p = figure(width=900, height=900, active_scroll="wheel_zoom", match_aspect=True,
           title=f"{side:,} x {side:,} pixels")
p.image(image="image", x="x", y="y", dw="dw", dh="dh", source=server_source(image, "image", reduce="max"),
        color_mapper=LinearColorMapper(palette="Viridis256", low=0, high=255))
show(p)

# A growing spectrogram: appended rows go on top of the image (the same width and dtype).
for step in range(30):
    rows = rng.integers(0, 200, (100, side), dtype=np.uint8)
    image.append(rows)
    time.sleep(1)
