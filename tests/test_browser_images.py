"""Images in a real Chromium: at 1:1 the plot shows the image's exact pixel values (read back from
the canvas through a grey colour mapper that maps value v to grey v); a single bright pixel of a
large dark image shows at full view with reduce="max" and not with "mean"; a wheel zoom into a
1e8-pixel image brings a view cut from a finer level."""

import numpy as np
import pytest
from bokeh.document import Document as BokehDocument
from bokeh.models import LinearColorMapper, Range1d

from bokehsite.client import Session, figure, server_source
from bokehsite.client.backed import decode_view
from tests.helpers import open_plot
from tests.servers import DaphneServer, database_url

pytestmark = [pytest.mark.browser, pytest.mark.daphne, pytest.mark.django_db(transaction=True)]

GREYS = [f"#{v:02x}{v:02x}{v:02x}" for v in range(256)]


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("browser-images")


@pytest.fixture(scope="module")
def server(django_db_setup, shared_dir):
    from django.conf import settings

    env = {"DATABASE_URL": database_url(settings.DATABASES["default"]), "BOKEHSITE_DATASET_DIR": str(shared_dir)}
    with DaphneServer(env=env) as daphne:
        yield daphne


def push_image(session, title, image, reduce, width, height, **options):
    """A plot whose frame is ``width`` x ``height`` screen pixels and nothing else: no axes, no
    border, no toolbar; value v is grey v."""
    source = server_source(image, "image", reduce=reduce)
    p = figure(width=width, height=height, min_border=0, toolbar_location=None, x_axis_location=None,
               y_axis_location=None, outline_line_color=None, active_scroll="wheel_zoom", **options)
    p.grid.visible = False
    p.image(image="image", x="x", y="y", dw="dw", dh="dh", source=source,
            color_mapper=LinearColorMapper(palette=GREYS, low=0, high=256))
    doc = BokehDocument()
    doc.add_root(p)
    session.use_doc(title)
    session.push(doc)
    return source, p


def wait_for_raster(frame, after=0):
    frame.wait_for_function("(n) => Number(document.getElementById('plot').dataset.viewsApplied || 0) > n",
                            arg=after, timeout=30_000)
    frame.page.wait_for_timeout(300)  # the canvas paints
    return view_state(frame)


def view_state(frame):
    return frame.evaluate("""() => {
        const plot = document.getElementById("plot");
        const source = [...Bokeh.documents[0].all_models].find((m) => m.data && m.data.dw);
        const image = source.data.image[0];
        const plotModel = [...Bokeh.documents[0].all_models].find((m) => m.x_range && m.inner_width);
        return {applied: Number(plot.dataset.viewsApplied || 0), kind: plot.dataset.lastViewKind,
                shape: plot.dataset.lastRasterShape, dw: source.data.dw[0], dh: source.data.dh[0],
                columns: image.shape ? image.shape[1] : image[0].length,
                x0: plotModel.x_range.start, x1: plotModel.x_range.end, width: plotModel.inner_width,
                height: plotModel.inner_height};
    }""")


def canvas_grey(page) -> np.ndarray:
    """The plot canvas's own pixels, as greys (row 0 at the top)."""
    canvases = page.frame_locator("#plot-frame").locator("#plot canvas")
    canvas = canvases.first
    width, height, data = canvas.evaluate("""(c) => {
        const pixels = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        return [c.width, c.height, Array.from(pixels)];
    }""")
    rgba = np.asarray(data, dtype=int).reshape(height, width, 4)
    grey = (rgba[:, :, 0] == rgba[:, :, 1]) & (rgba[:, :, 1] == rgba[:, :, 2]) & (rgba[:, :, 3] == 255)
    return np.where(grey, rgba[:, :, 0], -1)  # -1: not an opaque grey


def test_at_one_to_one_the_canvas_shows_the_exact_pixel_values(server, page):
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (120, 200)).astype(np.uint8)
    with Session(server.url) as session:
        image = session.upload_image("exact", pixels, x=(0, 200), y=(0, 120))
        # One data unit a screen pixel, with a margin of the (non-grey) background around the image.
        push_image(session, "exact pixels", image, "mean", 260, 180, x_range=Range1d(-30, 230),
                   y_range=Range1d(-30, 150), background_fill_color="#3060c0")
        frame = open_plot(page, session.url)
    state = wait_for_raster(frame)
    assert (state["kind"], state["width"], state["height"]) == ("raster", 260, 180)
    assert state["shape"] == "120,200"  # the stored pixels, one a screen pixel
    shown = canvas_grey(page)
    expected = pixels[::-1].astype(int)  # row 0 at the bottom
    # Where the image is drawn: BokehJS places the frame to within a pixel, and the row or column at
    # an edge of the image may fall under the frame's edge; every pixel inside them is exact.
    matches = {(top, left): (shown[top:top + 120, left:left + 200] == expected)
               for top in range(24, 37) for left in range(24, 37)}
    (top, left), same = max(matches.items(), key=lambda item: item[1].mean())
    assert same[1:-1, 1:-1].all(), (top, left, same.mean())
    assert same.mean() > 0.99


def test_the_page_reads_a_reduced_views_16_bit_means_as_python_does(server, page):
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (600, 400)).astype(np.uint8)
    with Session(server.url) as session:
        image = session.upload_image("means", pixels, x=(0, 400), y=(0, 600))
        push_image(session, "means", image, "mean", 200, 120)
        frame = open_plot(page, session.url)
        state = wait_for_raster(frame)
        assert (state["kind"], state["width"], state["height"]) == ("raster", 200, 120)
        header, buffers = session.dataset_view(image.id, kind="image", reduce="mean", width=200, height=120,
                                               x0=0, x1=400, y0=0, y1=600)
    assert header["fixed"] == {"low": 0, "step": 255 / 65535}
    expected = decode_view(header, buffers)["image"]
    assert expected.shape == (120, 200)  # 5 x 2 image pixels a screen pixel: means of ten
    dtype, shown = frame.evaluate("""() => {
        const source = [...Bokeh.documents[0].all_models].find((m) => m.data && m.data.dw);
        const image = source.data.image[0];
        return [image instanceof Float32Array ? image.dtype : "not a Float32Array", Array.from(image)];
    }""")
    assert dtype == "float32"
    np.testing.assert_array_equal(np.asarray(shown, dtype=np.float32).reshape(120, 200), expected)
    means = pixels.reshape(120, 5, 200, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(expected, means, rtol=0, atol=255 / 65535 / 2 + 1e-4)  # and float32's rounding


# In the frame: the view requests sent once the ranges are set as a zoom sets them (both in one
# task), by the time that task's microtasks have run: before the plot is drawn again.
ZOOM_AND_LISTEN = """async ([x0, x1, y0, y1]) => {
    const sent = [];
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
        if (typeof data === "string") sent.push(JSON.parse(data));
        return send.call(this, data);
    };
    const plot = [...Bokeh.documents[0].all_models].find((m) => m.x_range && m.inner_width);
    plot.x_range.setv({start: x0, end: x1});
    plot.y_range.setv({start: y0, end: y1});
    await Promise.resolve();
    WebSocket.prototype.send = send;
    return sent.filter((message) => message.type === "view");
}"""


def test_a_zoom_after_a_quiet_spell_asks_for_its_view_at_once_with_both_ranges(server, page):
    pixels = np.arange(200 * 200, dtype=np.uint32).reshape(200, 200) % 251
    with Session(server.url) as session:
        image = session.upload_image("asked at once", pixels.astype(np.uint8), x=(0, 200), y=(0, 200))
        push_image(session, "asked at once", image, "mean", 200, 200)
        frame = open_plot(page, session.url)
    wait_for_raster(frame)
    asked = frame.evaluate(ZOOM_AND_LISTEN, [20, 120, 50, 150])
    assert [(m["x0"], m["x1"], m["y0"], m["y1"]) for m in asked] == [(20, 120, 50, 150)]
    state = wait_for_raster(frame, after=view_state(frame)["applied"] - 1)
    assert state["dw"] == 100 and state["x0"] == 20


def test_a_single_bright_pixel_shows_at_full_view_with_max_and_not_with_mean(server, page):
    pixels = np.zeros((2000, 3000), dtype=np.uint8)
    pixels[1234, 2345] = 255
    shown = {}
    with Session(server.url) as session:
        image = session.upload_image("dark", pixels, x=(0, 3000), y=(0, 2000))
        for reduce in ("max", "mean"):
            push_image(session, f"dark, {reduce}", image, reduce, 300, 200)
            frame = open_plot(page, session.url)
            state = wait_for_raster(frame)
            assert state["kind"] == "raster" and state["columns"] <= 300 + 2
            shown[reduce] = canvas_grey(page)
    bright = np.argwhere(shown["max"] == 255)
    assert len(bright) >= 1
    row, col = bright[0]
    assert abs(col - 234.5) <= 2 and abs((199 - row) - 123.4) <= 2  # where the pixel is, at a tenth of the scale
    assert shown["mean"].max() <= 5  # 255 over at least 64 pixels


def test_a_wheel_zoom_into_a_huge_image_brings_a_finer_level(server, page):
    side = 10_000
    rng = np.random.default_rng(6)
    pixels = np.add.outer(np.arange(side) % 256, np.arange(side) % 256).astype(np.uint8)
    pixels[rng.integers(0, side, 100), rng.integers(0, side, 100)] = 255
    with Session(server.url) as session:
        image = session.upload_image("huge", pixels, x=(0, side), y=(0, side))
        del pixels
        push_image(session, "huge image", image, "mean", 500, 500)
        frame = open_plot(page, session.url)
    first = wait_for_raster(frame)
    assert first["kind"] == "raster" and first["columns"] <= 502
    first_pixel = first["dw"] / first["columns"]  # image units an array pixel
    assert first_pixel >= 16  # a reduced level (1e4 pixels on 500)

    box = page.frame_locator("#plot-frame").locator("#plot canvas").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    state = first
    for _ in range(30):
        page.mouse.wheel(0, -600)
        page.wait_for_timeout(60)
        state = view_state(frame)
        if state["x1"] - state["x0"] < 400:
            break
    frame.wait_for_function("""(n) => {
        const source = [...Bokeh.documents[0].all_models].find((m) => m.data && m.data.dw);
        const plotModel = [...Bokeh.documents[0].all_models].find((m) => m.x_range && m.inner_width);
        return Number(document.getElementById('plot').dataset.viewsApplied) > n
            && source.data.dw[0] <= 2 * (plotModel.x_range.end - plotModel.x_range.start);
    }""", arg=first["applied"], timeout=30_000)
    page.wait_for_timeout(500)
    zoomed = view_state(frame)
    span = zoomed["x1"] - zoomed["x0"]
    assert span < side / 10  # it did zoom
    zoomed_pixel = zoomed["dw"] / zoomed["columns"]
    assert zoomed_pixel < first_pixel / 4  # a finer level
    assert zoomed_pixel <= max(1.0, span / zoomed["width"]) * 1.0001  # no coarser than a screen pixel
