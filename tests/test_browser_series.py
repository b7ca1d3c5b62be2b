"""Many series in a real Chromium: 300 series of 20,000 rows drawn with ``server_source(dataset,
"lines", ...)`` and ``multi_line``; zoomed out, the page shows the image of how many series pass
through each pixel (the lines hidden); wheel-zoomed in far enough, the lines themselves."""

import numpy as np
import pytest
from bokeh.document import Document as BokehDocument

from bokehsite.client import Session, figure, server_source
from tests.helpers import open_plot
from tests.servers import DaphneServer, database_url

pytestmark = [pytest.mark.browser, pytest.mark.daphne, pytest.mark.django_db(transaction=True)]

ROWS, SERIES = 20_000, 300
WIDTH, HEIGHT = 700, 350


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("browser-series")


@pytest.fixture(scope="module")
def server(django_db_setup, shared_dir):
    from django.conf import settings

    env = {"DATABASE_URL": database_url(settings.DATABASES["default"]), "BOKEHSITE_DATASET_DIR": str(shared_dir)}
    with DaphneServer(env=env) as daphne:
        yield daphne


STATE = """(id) => {
    const plot = document.getElementById("plot");
    const doc = Bokeh.documents[0];
    const source = doc.get_model_by_id(id);
    const renderers = [...doc.all_models].filter((m) => m.type === "GlyphRenderer");
    const image = renderers.find((r) => r.glyph.type === "Image");
    const lines = renderers.find((r) => r.data_source === source);
    const plotModel = [...doc.all_models].find((m) => m.x_range && m.inner_width);
    return {applied: Number(plot.dataset.viewsApplied || 0), kind: plot.dataset.lastViewKind,
            rows: Number(plot.dataset.lastViewRows), lines: source.data.xs.length,
            points: source.data.xs.reduce((n, xs) => n + xs.length, 0),
            first: source.data.xs.length ? Array.from(source.data.xs[0]) : [],
            imageShown: Boolean(image && image.visible), linesShown: lines.visible,
            x0: plotModel.x_range.start, x1: plotModel.x_range.end};
}"""


def push_bundle(session, title, columns, **figure_options):
    """Upload ``columns`` (x "t" and the series) and push a plot drawing every series from it."""
    dataset = session.upload_dataset(title, columns, x="t", require_sorted_x=True)
    source = server_source(dataset, "lines", x="t", y=[name for name in columns if name != "t"])
    p = figure(width=WIDTH, height=HEIGHT, **figure_options)
    p.multi_line(xs="xs", ys="ys", source=source, line_alpha=0.3)
    doc = BokehDocument()
    doc.add_root(p)
    session.use_doc(title)
    session.push(doc)
    return source


def test_many_series_are_a_density_image_zoomed_out_and_lines_zoomed_in(server, page):
    rng = np.random.default_rng(6)
    columns = {"t": np.arange(ROWS, dtype=np.float64)}
    walks = np.cumsum(rng.normal(size=(SERIES, ROWS)), axis=1)
    columns.update({f"s{i}": walks[i] for i in range(SERIES)})
    with Session(server.url) as session:
        source = push_bundle(session, "many series", columns, active_scroll="wheel_zoom", toolbar_location=None)
        frame = open_plot(page, session.url)

    frame.wait_for_function("Number(document.getElementById('plot').dataset.viewsApplied || 0) > 0", timeout=30_000)
    first = frame.evaluate(STATE, source.id)
    assert (first["kind"], first["rows"]) == ("image", ROWS)
    assert first["imageShown"] and not first["linesShown"]

    box = page.frame_locator("#plot-frame").locator(".bk-Canvas, canvas").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(60):  # zoom in until few enough points are in view to draw the lines
        page.mouse.wheel(0, -600)
        page.wait_for_timeout(60)
        if frame.evaluate(STATE, source.id)["kind"] == "lines":
            break
    frame.wait_for_function("document.getElementById('plot').dataset.lastViewKind === 'lines'", timeout=30_000)
    page.wait_for_timeout(300)
    state = frame.evaluate(STATE, source.id)
    assert state["kind"] == "lines" and state["lines"] == SERIES and 0 < state["rows"] < ROWS
    assert state["linesShown"] and not state["imageShown"]
    span = state["x1"] - state["x0"]
    # The rows in view, and one beyond each edge.
    assert state["x0"] - 1 <= state["first"][0] <= state["x0"] + 1 and state["x1"] - 1 <= state["first"][-1] <= state["x1"] + 1
    assert state["points"] <= SERIES * (4 * WIDTH + 2) and span < ROWS / 10


def test_a_first_view_that_is_a_density_image_adds_its_colour_bar_without_an_error(server, page):
    # Small enough that the first view comes back while BokehJS is still building the plot's views.
    rng = np.random.default_rng(8)
    columns = {"t": np.arange(10_000, dtype=np.float64)}
    columns.update({f"s{i}": np.cumsum(rng.normal(size=10_000)) for i in range(200)})
    with Session(server.url) as session:
        source = push_bundle(session, "quick bundle", columns)
        frame = open_plot(page, session.url)
    frame.wait_for_function("Number(document.getElementById('plot').dataset.viewsApplied || 0) > 0", timeout=30_000)
    page.wait_for_timeout(500)  # the plot lays out and paints with its new renderer and bar
    assert frame.evaluate(STATE, source.id)["imageShown"]
    assert page.problems == []
