"""Browser interactions come back to Python, and Python's answers reach every browser."""


import numpy as np
import pytest
from bokeh.document import Document as BokehDocument
from bokeh.events import ButtonClick
from bokeh.layouts import column
from bokeh.models import Button, ColumnDataSource, Slider

from bokehsite.client import Session, figure
from tests.conftest import PASSWORD
from tests.helpers import COUNT_PIXELS, open_plot, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.daphne, pytest.mark.django_db(transaction=True)]

RED = [255, 0, 0]
FIREBRICK = [178, 34, 34]
X = np.linspace(0, 4 * np.pi, 200)


def model_value(frame, name, attr):
    return frame.evaluate(f"Bokeh.documents[0].get_model_by_name({name!r}).{attr}")


def settled_value(page, frame, name, attr):
    """A model's value once it has stayed the same for half a second."""
    previous = None
    while (current := model_value(frame, name, attr)) != previous:
        previous = current
        page.wait_for_timeout(500)
    return current


def drag_handle(page, index, dx):
    """Drag the index-th slider's handle by dx pixels with the mouse."""
    handle = page.frame_locator("#plot-frame").locator(".noUi-handle").nth(index)
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y, steps=8)
    page.mouse.up()


def sine_dashboard(session, title):
    """The sliders dashboard: a Python callback recomputes the wave from the amplitude."""
    source = ColumnDataSource(data={"x": X, "y": np.sin(X)}, name="wave")
    amplitude = Slider(title="amplitude", value=1.0, start=0.0, end=2.0, step=0.1, name="amplitude", width=300)
    plot = figure(width=500, height=300, y_range=(-2.2, 2.2), toolbar_location=None)
    plot.line("x", "y", source=source, line_width=3, color="red")
    calls = []

    def recompute(attr, old, new):
        calls.append(new)
        source.data = {"x": X, "y": new * np.sin(X)}

    amplitude.on_change("value", recompute)
    doc = BokehDocument()
    doc.add_root(column(amplitude, plot))
    session.use_doc(title)
    session.push(doc)
    session.start_background()
    return doc, calls


def test_a_slider_drag_runs_the_python_callback_and_the_wave_is_redrawn(live_server_url, page):
    with Session(live_server_url) as session:
        doc, calls = sine_dashboard(session, "sliders")
        frame = open_plot(page, session.url)
        frame.wait_for_selector("#live-status[data-status=live]")
        before = frame.evaluate(COUNT_PIXELS, RED)
        drag_handle(page, 0, 120)
        chosen = settled_value(page, frame, "amplitude", "value")
        assert chosen > 1.3
        wait_until(lambda: calls and calls[-1] == chosen)  # the callback saw the browser's value
        peak = chosen * np.sin(X).max()  # the recomputed wave's highest sample
        frame.wait_for_function(
            f"Math.abs(Math.max(...Bokeh.documents[0].get_model_by_name('wave').data.y) - {peak}) < 1e-9")
        page.wait_for_timeout(300)
        after = frame.evaluate(COUNT_PIXELS, RED)
    assert after > before * 1.15  # a taller wave is a longer line on the canvas
    assert page.problems == []


def test_a_box_selection_reaches_python_and_its_summary_is_drawn(live_server_url, page):
    rng = np.random.default_rng(3)
    points = ColumnDataSource(data={"x": rng.uniform(0, 10, 200), "y": rng.uniform(0, 10, 200)}, name="points")
    summary = ColumnDataSource(data={"x": [], "y": []}, name="summary")
    plot = figure(width=500, height=500, x_range=(0, 10), y_range=(0, 10), tools="box_select",
                  active_drag="box_select", toolbar_location=None, name="plot")
    plot.scatter("x", "y", source=points, size=6, color="navy")
    plot.scatter("x", "y", source=summary, marker="square", size=30, color="firebrick")
    selections = []

    def selected(attr, old, indices):
        selections.append(list(indices))
        summary.data = {"x": [float(points.data["x"][indices].mean())], "y": [float(points.data["y"][indices].mean())]}

    points.selected.on_change("indices", selected)
    doc = BokehDocument()
    doc.add_root(plot)
    with Session(live_server_url) as session:
        session.use_doc("selection")
        session.push(doc)
        session.start_background()
        frame = open_plot(page, session.url)
        frame.wait_for_selector("#live-status[data-status=live]")
        assert frame.evaluate(COUNT_PIXELS, FIREBRICK) == 0
        canvas = page.frame_locator("#plot-frame").locator(".bk-Canvas, .bk-canvas").first
        box = canvas.bounding_box()
        start = (box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.2)
        page.mouse.move(*start)
        page.mouse.down()
        page.mouse.move(start[0] + box["width"] * 0.4, start[1] + box["height"] * 0.4, steps=10)
        page.mouse.up()
        wait_until(lambda: selections)
        in_browser = sorted(frame.evaluate("[...Bokeh.documents[0].get_model_by_name('points').selected.indices]"))
        assert in_browser and sorted(selections[-1]) == in_browser
        frame.wait_for_function("Bokeh.documents[0].get_model_by_name('summary').data.x.length === 1")
        page.wait_for_timeout(300)
        assert frame.evaluate(COUNT_PIXELS, FIREBRICK) > 300  # the summary square, drawn from Python's data
    assert page.problems == []


def test_a_button_click_reaches_python_and_its_answer_the_page(live_server_url, page):
    button = Button(label="Start", name="toggle")
    clicks = []

    def clicked(event):
        clicks.append(event.model.id)
        button.label = f"Clicked {len(clicks)}"

    button.on_event(ButtonClick, clicked)
    doc = BokehDocument()
    doc.add_root(button)
    with Session(live_server_url) as session:
        session.use_doc("button")
        session.push(doc)
        session.start_background()
        frame = open_plot(page, session.url)
        frame.wait_for_selector("#live-status[data-status=live]")
        page.frame_locator("#plot-frame").locator("button", has_text="Start").click()
        wait_until(lambda: clicks == [button.id])
        frame.wait_for_function("Bokeh.documents[0].get_model_by_name('toggle').label === 'Clicked 1'")
    assert page.problems == []


def test_two_browsers_moving_widgets_stay_in_agreement(live_server_url, browser):
    a = Slider(title="a", value=5, start=0, end=10, step=1, name="a", width=300)
    b = Slider(title="b", value=5, start=0, end=10, step=1, name="b", width=300)
    doc = BokehDocument()
    doc.add_root(column(a, b))
    with Session(live_server_url) as session:
        session.use_doc("two browsers")
        session.push(doc)
        url = session.url
    pages, frames = [], []
    for _ in range(2):
        page = browser.new_context(viewport={"width": 900, "height": 600}).new_page()
        frames.append(open_plot(page, url))
        frames[-1].wait_for_selector("#live-status[data-status=live]")
        pages.append(page)
    for step in range(6):  # both move both sliders, back and forth, interleaved
        for which, page in enumerate(pages):
            drag_handle(page, (step + which) % 2, 25 if step % 2 else -25)
    drag_handle(pages[0], 0, 70)  # and last, one more move each, to somewhere new
    drag_handle(pages[1], 1, -70)
    for frame in frames:
        frame.wait_for_function("(() => { const v = Number(document.getElementById('plot').dataset.version); "
                                "return new Promise(r => setTimeout(() => r(v === Number(document.getElementById('plot').dataset.version)), 700)); })()")
    server = Session(live_server_url).load_document("two browsers")
    expected = (server.get_model_by_name("a").value, server.get_model_by_name("b").value)
    assert expected != (5, 5)
    for frame in frames:
        assert (model_value(frame, "a", "value"), model_value(frame, "b", "value")) == expected
    for page in pages:
        page.context.close()


def test_a_read_only_viewer_interacts_locally_but_changes_nothing(multi_user_server_url, page, browser):
    owner = Session(multi_user_server_url)
    owner.register("olivia", PASSWORD)
    slider = Slider(title="a", value=5, start=0, end=10, step=1, name="a", width=300)
    doc = BokehDocument()
    doc.add_root(slider)
    owner.use_doc("public dashboard")
    version = owner.push(doc)["version"]
    public_url = owner.publish()
    frame = open_plot(page, public_url)  # an anonymous visitor
    frame.wait_for_selector("#live-status[data-status=live]")
    assert "read-only" in frame.inner_text("#live-status")
    drag_handle(page, 0, 80)
    page.wait_for_timeout(1000)
    assert model_value(frame, "a", "value") > 5  # it moved, here
    assert owner.document_info("public dashboard")["version"] == version  # nothing stored
    other = browser.new_context().new_page()
    other_frame = open_plot(other, public_url)
    assert model_value(other_frame, "a", "value") == 5  # nor broadcast
    other.context.close()
    owner.close()
