"""The plot page draws a pushed document in headless Chromium."""

import signal

import pytest

from bokehsite.client import Session
from tests.conftest import line_document

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.django_db(transaction=True)]

# Counts the pixels of one colour on every canvas BokehJS drew, looking inside shadow roots.
COUNT_PIXELS = """([r, g, b]) => {
  const canvases = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll("*")) {
      if (el instanceof HTMLCanvasElement) canvases.push(el);
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  let count = 0;
  for (const canvas of canvases) {
    if (!canvas.width || !canvas.height) continue;
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < data.length; i += 4) {
      if (Math.abs(data[i] - r) < 8 && Math.abs(data[i + 1] - g) < 8 && Math.abs(data[i + 2] - b) < 8 && data[i + 3] > 200) count++;
    }
  }
  return count;
}"""
LINE_BLUE = (0x1F, 0x77, 0xB4)  # Bokeh's default line colour


def open_plot(page, url):
    page.goto(url)
    page.wait_for_selector("#plot[data-state=rendered]", timeout=30_000)
    page.wait_for_timeout(300)  # let the canvas paint


def test_the_seed_line_is_drawn(live_server_url, page):
    with Session(live_server_url) as session:
        session.use_doc("line")
        info = session.push(line_document())
    open_plot(page, info["url"])
    assert page.evaluate(COUNT_PIXELS, list(LINE_BLUE)) > 200
    assert page.problems == []


def test_a_document_without_the_line_colour_has_no_such_pixels(live_server_url, page):
    doc = line_document()
    doc.get_model_by_name("ex_line").glyph.line_color = "red"
    with Session(live_server_url) as session:
        session.use_doc("red line")
        info = session.push(doc)
    open_plot(page, info["url"])
    assert page.evaluate(COUNT_PIXELS, list(LINE_BLUE)) == 0
    assert page.evaluate(COUNT_PIXELS, [255, 0, 0]) > 200
    assert page.problems == []


def test_a_deleted_documents_page_is_gone(live_server_url, page):
    with Session(live_server_url) as session:
        session.use_doc("gone")
        info = session.push(line_document())
        session.delete_document(info["id"])
    response = page.goto(info["url"])
    assert response.status == 404


def test_the_page_follows_the_seed_animation_live(live_server_url, page, tmp_path):
    from tests.test_live_streaming import SEED_ANIMATED, start_script, stored_version, wait_until

    process = start_script(SEED_ANIMATED, live_server_url, tmp_path, speedup=5)
    try:
        wait_until(lambda: stored_version("animated_line") >= 1)
        url = Session(live_server_url).document_info("animated_line")["url"]
        open_plot(page, url)
        page.wait_for_selector("#live-status[data-status=live]")
        plot = page.locator("#plot")
        start = int(plot.get_attribute("data-version"))
        pictures = set()
        for step in range(1, 6):
            page.wait_for_function(f"Number(document.getElementById('plot').dataset.version) >= {start + 2 * step}")
            page.wait_for_timeout(50)
            pictures.add(plot.screenshot())
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert len(pictures) >= 3  # the line was redrawn as its data changed
    assert page.evaluate(COUNT_PIXELS, list(LINE_BLUE)) > 20  # a 1-pixel antialiased line: few exact pixels
    assert page.problems == []


def test_the_status_shows_reconnecting_and_the_page_resumes(live_server_url, page):
    with Session(live_server_url) as session:
        session.use_doc("resume")
        doc = line_document()
        session.push(doc)
        open_plot(page, session.url)
        page.wait_for_selector("#live-status[data-status=live]")
        page.evaluate("window.bokehsite.live.ws.close()")  # as a network drop would
        page.wait_for_selector("#live-status[data-status=reconnecting]")
        doc.get_model_by_name("ex_line").glyph.line_color = "red"
        version = session.push()["version"]
        page.wait_for_selector("#live-status[data-status=live]", timeout=15_000)
        page.wait_for_function(f"Number(document.getElementById('plot').dataset.version) >= {version}")
        page.wait_for_timeout(200)
    assert page.evaluate(COUNT_PIXELS, [255, 0, 0]) > 200
    assert page.problems == []
