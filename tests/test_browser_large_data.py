"""Very large datasets in a real Chromium: a 1e7-point line and a 1e7-point scatter pushed with
``server_source``; the page holds only views, a mouse-wheel zoom and a pan bring new views of just
what is visible, and a scatter is an image of counts until a deep zoom shows its points."""

import numpy as np
import pytest
from bokeh.document import Document as BokehDocument

from bokehsite.client import Session, figure, server_source
from tests.helpers import open_plot
from tests.servers import DaphneServer, database_url

pytestmark = [pytest.mark.browser, pytest.mark.daphne, pytest.mark.django_db(transaction=True)]

N = 10_000_000
WIDTH, HEIGHT = 700, 350


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("browser-datasets")


@pytest.fixture(scope="module")
def server(django_db_setup, shared_dir):
    from django.conf import settings

    env = {"DATABASE_URL": database_url(settings.DATABASES["default"]), "BOKEHSITE_DATASET_DIR": str(shared_dir)}
    with DaphneServer(env=env) as daphne:
        yield daphne


def source_state(frame, source_id):
    return frame.evaluate("""(id) => {
        const plot = document.getElementById("plot");
        const source = Bokeh.documents[0].get_model_by_id(id);
        const xs = source.data.x;
        let lo = Infinity, hi = -Infinity;
        for (const v of xs) { if (v < lo) lo = v; if (v > hi) hi = v; }
        const plotModel = [...Bokeh.documents[0].all_models].find((m) => m.x_range && m.inner_width);
        return {n: xs.length, lo, hi, applied: Number(plot.dataset.viewsApplied || 0), kind: plot.dataset.lastViewKind,
                rows: Number(plot.dataset.lastViewRows), x0: plotModel.x_range.start, x1: plotModel.x_range.end,
                width: plotModel.inner_width};
    }""", source_id)


def wait_for_view(frame, source_id, after):
    frame.wait_for_function("(n) => Number(document.getElementById('plot').dataset.viewsApplied || 0) > n",
                            arg=after, timeout=30_000)
    frame.page.wait_for_timeout(200)  # the canvas paints
    return source_state(frame, source_id)


def canvas_center(page):
    box = page.frame_locator("#plot-frame").locator(".bk-Canvas, canvas").first.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def push_plot(session, title, dataset, kind, **glyph):
    source = server_source(dataset, kind)
    p = figure(width=WIDTH, height=HEIGHT, active_scroll="wheel_zoom", active_drag="pan", toolbar_location=None)
    (p.line if kind == "line" else p.scatter)("x", "y", source=source, **glyph)
    doc = BokehDocument()
    doc.add_root(p)
    session.use_doc(title)
    session.push(doc)
    return source


def test_a_huge_line_shows_views_that_follow_a_wheel_zoom_and_a_pan(server, page):
    x = np.arange(N, dtype=np.float64)
    y = np.cumsum(np.random.default_rng(1).normal(size=N))
    with Session(server.url) as session:
        dataset = session.upload_dataset("walk", {"x": x, "y": y}, require_sorted_x=True)
        source = push_plot(session, "big line", dataset, "line")
        stored = session.load_document("big line").get_model_by_id(source.id)
        assert len(stored.data["x"]) <= 4 * 1200 + 2  # the stored document holds a first view only
        frame = open_plot(page, session.url)

    first = wait_for_view(frame, source.id, 0)
    assert first["kind"] == "line" and first["rows"] == N
    assert first["n"] <= 4 * first["width"] + 2  # about four points a pixel column
    assert first["lo"] == 0 and first["hi"] == N - 1

    cx, cy = canvas_center(page)
    page.mouse.move(cx, cy)
    for _ in range(6):
        page.mouse.wheel(0, -300)  # zoom in
        page.wait_for_timeout(30)
    zoomed = wait_for_view(frame, source.id, first["applied"])
    page.wait_for_timeout(500)
    zoomed = source_state(frame, source.id)
    span = zoomed["x1"] - zoomed["x0"]
    assert span < N / 2  # it did zoom
    # The view covers only the zoomed range (and one point past each edge), at the same density.
    assert zoomed["x0"] - span / zoomed["width"] <= zoomed["lo"] <= zoomed["x0"] + span / 100
    assert zoomed["x1"] - span / 100 <= zoomed["hi"] <= zoomed["x1"] + span / zoomed["width"]
    assert zoomed["rows"] < N and zoomed["n"] > 0.5 * first["n"]

    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx - 200, cy, steps=10)  # pan right
    page.mouse.up()
    panned = wait_for_view(frame, source.id, zoomed["applied"])
    page.wait_for_timeout(500)
    panned = source_state(frame, source.id)
    assert panned["x0"] > zoomed["x0"] and panned["lo"] > zoomed["lo"]
    assert panned["lo"] >= panned["x0"] - (panned["x1"] - panned["x0"]) / panned["width"]


def test_a_huge_scatter_is_an_image_until_a_deep_zoom_shows_its_points(server, page):
    rng = np.random.default_rng(2)
    columns = {"x": rng.normal(size=N), "y": rng.normal(size=N)}
    with Session(server.url) as session:
        dataset = session.upload_dataset("cloud", columns)
        source = push_plot(session, "big scatter", dataset, "points", size=3)
        frame = open_plot(page, session.url)

    first = wait_for_view(frame, source.id, 0)
    assert first["kind"] == "image" and first["rows"] == N
    drawn = frame.evaluate("""() => [...Bokeh.documents[0].all_models].some(
        (m) => m.type === "GlyphRenderer" && m.glyph.type === "Image" && m.visible)""")
    assert drawn

    cx, cy = canvas_center(page)
    page.mouse.move(cx, cy)
    state = first
    for _ in range(40):  # zoom in until few enough points are in view to draw them
        page.mouse.wheel(0, -600)
        page.wait_for_timeout(40)
        state = source_state(frame, source.id)
        if state["kind"] == "raw":
            break
        if state["x1"] - state["x0"] < 0.01:
            break
    frame.wait_for_function("document.getElementById('plot').dataset.lastViewKind === 'raw'", timeout=30_000)
    state = source_state(frame, source.id)
    assert 0 < state["n"] <= 20_000 and state["rows"] == state["n"]
    hidden = frame.evaluate("""() => [...Bokeh.documents[0].all_models].every(
        (m) => !(m.type === "GlyphRenderer" && m.glyph.type === "Image") || !m.visible)""")
    assert hidden  # the image makes way for the points


def plot_pixels(page, url, backed: bool) -> np.ndarray:
    import io

    from PIL import Image

    page.goto(url)
    selector = "#plot[data-views-applied]" if backed else "#plot[data-state=rendered]"
    page.frame_locator("#plot-frame").locator(selector).wait_for(timeout=60_000)
    page.wait_for_timeout(500)
    png = page.frame_locator("#plot-frame").locator("#plot").screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_a_view_of_a_million_points_draws_the_same_pixels_as_the_points_themselves(server, page, capsys):
    from bokeh.models import ColumnDataSource, Range1d

    n = 1_000_000
    x = np.arange(n, dtype=np.float64)
    y = np.cumsum(np.random.default_rng(3).normal(size=n))
    with Session(server.url) as session:
        dataset = session.upload_dataset("million", {"x": x, "y": y}, require_sorted_x=True)
        push_plot(session, "million, viewed", dataset, "line")
        backed_url = session.url
        stored = session.load_document("million, viewed")
        plot = next(m for m in stored.roots)
        whole = figure(width=WIDTH, height=HEIGHT, active_scroll="wheel_zoom", active_drag="pan", toolbar_location=None,
                       x_range=Range1d(plot.x_range.start, plot.x_range.end),
                       y_range=Range1d(plot.y_range.start, plot.y_range.end))
        whole.line("x", "y", source=ColumnDataSource({"x": x, "y": y}))
        doc = BokehDocument()
        doc.add_root(whole)
        session.use_doc("million, whole")
        session.push(doc)
        whole_url = session.url
    viewed = plot_pixels(page, backed_url, backed=True)
    drawn = plot_pixels(page, whole_url, backed=False)
    assert viewed.shape == drawn.shape
    exact = np.all(viewed == drawn, axis=2).mean()
    # Which pixels the line touches: any tint of its blue (#1f77b4) over the white and grey page.
    touched = lambda image: image[:, :, 2].astype(int) - image[:, :, 0].astype(int) > 10  # noqa: E731
    covered = (touched(viewed) == touched(drawn)).mean()
    with capsys.disabled():
        print(f"\n  a view of {n:,} points against the whole line, {viewed.shape[0] * viewed.shape[1]:,} pixels: "
              f"{covered:.3%} agree on whether the line touches them, {exact:.2%} are of exactly the same colour")
    # Thousands of antialiased segments a pixel column overdraw each other's edges, so the whole
    # line's edges come out a shade darker than the view's few; the pixels it covers are the same.
    assert covered >= 0.995
