"""Select points in the browser (box select); this script prints the selected rows and draws
their summary: their mean as a cross, and how many there are."""

import numpy as np
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, Div

from bokehsite.client import cursession, figure, output_server, show

rng = np.random.default_rng(7)
points = ColumnDataSource(data={"x": rng.normal(size=300), "y": rng.normal(size=300), "id": np.arange(300)},
                          name="points")
summary = ColumnDataSource(data={"x": [], "y": []}, name="summary")

plot = figure(width=500, height=500, tools="box_select,lasso_select,reset", title="select some points")
plot.scatter("x", "y", source=points, size=7, alpha=0.6)
plot.scatter("x", "y", source=summary, marker="cross", size=28, line_width=4, color="firebrick")
report = Div(text="Nothing selected.", name="report")


def selected(attr, old, indices):
    if not indices:
        summary.data = {"x": [], "y": []}
        report.text = "Nothing selected."
        return
    xs, ys = points.data["x"][indices], points.data["y"][indices]
    print(f"{len(indices)} selected:")
    for i in indices[:10]:
        print(f"  id={points.data['id'][i]:3d}  x={points.data['x'][i]:+.3f}  y={points.data['y'][i]:+.3f}")
    summary.data = {"x": [xs.mean()], "y": [ys.mean()]}
    report.text = f"{len(indices)} selected; mean x = {xs.mean():+.3f}, mean y = {ys.mean():+.3f}"


points.selected.on_change("indices", selected)

output_server("selection")
show(column(plot, report))
cursession().loop_until_closed()
