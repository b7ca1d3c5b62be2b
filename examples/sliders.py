"""A dashboard driven by Python: move a slider in the browser, this script recomputes the wave.

Run it, open the printed URL, and drag the sliders; every open browser follows.
"""

import numpy as np
from bokeh.layouts import column, row
from bokeh.models import ColumnDataSource, Slider

from bokehsite.client import cursession, figure, output_server, show

x = np.linspace(0, 4 * np.pi, 400)
source = ColumnDataSource(data={"x": x, "y": np.sin(x)}, name="wave")

plot = figure(height=400, width=600, title="my sine wave", x_range=(0, 4 * np.pi), y_range=(-2.5, 2.5),
              tools="crosshair,pan,reset,save,wheel_zoom")
plot.line("x", "y", source=source, line_width=3, line_alpha=0.6)

amplitude = Slider(title="amplitude", value=1.0, start=-2.0, end=2.0, step=0.1, name="amplitude")
frequency = Slider(title="frequency", value=1.0, start=0.1, end=5.1, step=0.1, name="frequency")
phase = Slider(title="phase", value=0.0, start=0.0, end=2 * np.pi, step=0.1, name="phase")
offset = Slider(title="offset", value=0.0, start=-2.0, end=2.0, step=0.1, name="offset")


def update(attr, old, new):
    source.data = {"x": x, "y": amplitude.value * np.sin(frequency.value * x + phase.value) + offset.value}


for slider in (amplitude, frequency, phase, offset):
    slider.on_change("value", update)

output_server("sliders")
show(row(column(amplitude, frequency, phase, offset), plot))
cursession().loop_until_closed()
