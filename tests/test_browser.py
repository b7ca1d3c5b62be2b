"""The plot page draws a pushed document, in its sandboxed frame, in headless Chromium."""

import signal

import pytest

from bokehsite.client import Session
from tests.helpers import COUNT_PIXELS, LINE_BLUE, SEED_ANIMATED, line_document, open_plot, start_script, stored_version, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.daphne, pytest.mark.django_db(transaction=True)]

def test_the_seed_line_is_drawn(live_server_url, page):
    with Session(live_server_url) as session:
        session.use_doc("line")
        info = session.push(line_document())
    frame = open_plot(page, info["url"])
    assert frame.evaluate(COUNT_PIXELS, list(LINE_BLUE)) > 200
    assert page.locator("#plot-frame").get_attribute("data-state") == "rendered"
    assert page.problems == []


def test_a_document_without_the_line_colour_has_no_such_pixels(live_server_url, page):
    doc = line_document()
    doc.get_model_by_name("ex_line").glyph.line_color = "red"
    with Session(live_server_url) as session:
        session.use_doc("red line")
        info = session.push(doc)
    frame = open_plot(page, info["url"])
    assert frame.evaluate(COUNT_PIXELS, list(LINE_BLUE)) == 0
    assert frame.evaluate(COUNT_PIXELS, [255, 0, 0]) > 200
    assert page.problems == []


def test_a_deleted_documents_page_is_gone(live_server_url, page):
    with Session(live_server_url) as session:
        session.use_doc("gone")
        info = session.push(line_document())
        session.delete_document(info["id"])
    response = page.goto(info["url"])
    assert response.status == 404


def test_the_frame_gets_a_fresh_token_from_its_page(live_server_url, page):
    from documents.frames import verify_frame_token

    with Session(live_server_url) as session:
        session.use_doc("refresh")
        info = session.push(line_document())
    frame = open_plot(page, info["url"])
    first = frame.evaluate("window.bokehsiteFrame.token()")
    fresh = frame.evaluate("window.bokehsiteFrame.refreshToken()")
    assert first and frame.evaluate("window.bokehsiteFrame.token()") == fresh  # may equal first within a second
    grant = verify_frame_token(fresh)
    assert str(grant.document_id) == info["id"] and grant.role == "write"
    # The frame fetches content with its token, never with cookies.
    assert frame.evaluate("document.getElementById('plot').dataset.version") == "1"


def test_the_page_follows_the_seed_animation_live(live_server_url, page, tmp_path):
    process = start_script(SEED_ANIMATED, live_server_url, tmp_path, speedup=5)
    try:
        wait_until(lambda: stored_version("animated_line") >= 1)
        frame = open_plot(page, Session(live_server_url).document_info("animated_line")["url"])
        frame.wait_for_selector("#live-status[data-status=live]")
        plot = page.frame_locator("#plot-frame").locator("#plot")
        start = int(plot.get_attribute("data-version"))
        pictures = set()
        for step in range(1, 6):
            frame.wait_for_function(f"Number(document.getElementById('plot').dataset.version) >= {start + 2 * step}")
            page.wait_for_timeout(50)
            pictures.add(plot.screenshot())
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert len(pictures) >= 3  # the line was redrawn as its data changed
    assert frame.evaluate(COUNT_PIXELS, list(LINE_BLUE)) > 20  # a 1-pixel antialiased line: few exact pixels
    assert page.problems == []


def test_the_status_shows_reconnecting_and_the_page_resumes(live_server_url, page):
    with Session(live_server_url) as session:
        session.use_doc("resume")
        doc = line_document()
        session.push(doc)
        frame = open_plot(page, session.url)
        frame.wait_for_selector("#live-status[data-status=live]")
        frame.evaluate("window.bokehsite.sync.connection.drop()")  # as a network drop would
        frame.wait_for_selector("#live-status[data-status=reconnecting]")
        doc.get_model_by_name("ex_line").glyph.line_color = "red"
        version = session.push()["version"]
        frame.wait_for_selector("#live-status[data-status=live]", timeout=15_000)  # with a fresh frame token
        frame.wait_for_function(f"Number(document.getElementById('plot').dataset.version) >= {version}")
        page.wait_for_timeout(200)
    assert frame.evaluate(COUNT_PIXELS, [255, 0, 0]) > 200
    assert page.problems == []


    assert page.problems == []
