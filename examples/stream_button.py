"""A button in the browser starts and stops a stream this script produces."""

import time

import numpy as np
from bokeh.events import ButtonClick
from bokeh.layouts import column
from bokeh.models import Button, ColumnDataSource

from bokehsite.client import cursession, figure, output_server, show

source = ColumnDataSource(data={"t": [0.0], "value": [0.0]}, name="walk")
plot = figure(width=600, height=300, title="random walk")
plot.line("t", "value", source=source)
button = Button(label="Start", button_type="success", name="toggle")
running = False


def toggle(event):
    global running
    running = not running
    button.label = "Stop" if running else "Start"
    button.button_type = "danger" if running else "success"


button.on_event(ButtonClick, toggle)

output_server("stream_button")
show(column(button, plot))
session = cursession()
session.start_background()  # the button's clicks arrive while this loop streams
rng = np.random.default_rng()
while True:
    time.sleep(0.1)
    if running:
        with session.lock:
            t, v = source.data["t"][-1], source.data["value"][-1]
            source.stream({"t": [t + 0.1], "value": [v + rng.normal()]}, rollover=2000)
