"""The history page in headless Chromium: scrub to an old version and see it drawn, replay a
stream as a film, restore a version and see every viewer move to it; the client's history."""

import time

import pytest

from bokehsite.client import Session
from tests.helpers import COUNT_PIXELS, LINE_BLUE, line_document, open_plot, plot_frame, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.daphne, pytest.mark.django_db(transaction=True)]
RED = [255, 0, 0]


def open_history(page, url):
    """Open a document's history page; returns its sandboxed frame once it has drawn."""
    page.goto(url.rstrip("/") + "/history/")
    page.frame_locator("#plot-frame").locator("#plot[data-state=rendered]").wait_for(timeout=30_000)
    page.wait_for_timeout(300)
    return plot_frame(page)


def scrub_to(page, frame, version: int) -> None:
    page.evaluate("""(v) => { const s = document.getElementById("scrubber");
                             s.value = String(v); s.dispatchEvent(new Event("input")); }""", version)
    frame.wait_for_function(f"document.getElementById('plot').dataset.version === '{version}' "
                            "&& document.getElementById('plot').dataset.state === 'rendered'")
    page.wait_for_timeout(300)  # let the canvas paint


def pushed_blue_then_red(url, title):
    """A blue line (version 1) that was then made red (version 2, a change)."""
    session = Session(url)
    session.use_doc(title)
    doc = line_document()
    session.push(doc)
    doc.get_model_by_name("ex_line").glyph.line_color = "red"
    session.push()
    return session


def test_scrubbing_to_an_old_version_draws_it(live_server_url, page):
    with pushed_blue_then_red(live_server_url, "scrubbed") as session:
        frame = open_history(page, session.url)
        assert frame.evaluate(COUNT_PIXELS, RED) > 200  # it opens at the current version
        scrub_to(page, frame, 1)
        assert frame.evaluate(COUNT_PIXELS, list(LINE_BLUE)) > 200
        assert frame.evaluate(COUNT_PIXELS, RED) == 0
        assert page.locator("#shown-version").inner_text() == "1"
        assert page.locator("#exports a[data-format=png]").get_attribute("href").endswith("format=png&version=1")
        scrub_to(page, frame, 2)
        assert frame.evaluate(COUNT_PIXELS, RED) > 200
        rows = page.locator("#versions tbody tr")
        assert rows.count() == 2 and "change" in rows.nth(0).inner_text() and "create" in rows.nth(1).inner_text()
    assert page.problems == []


def test_a_replay_plays_the_stream_in_the_browser(live_server_url, page):
    with Session(live_server_url) as session:
        session.use_doc("film")
        doc = line_document()
        session.push(doc)
        source = doc.get_model_by_name("ex_line").data_source
        for i in range(30):
            source.stream({"x": [6 + i], "y": [(i * 7) % 10]})
            session.push()
            time.sleep(0.03)
        last = session.info["version"]
        frame = open_history(page, session.url)
        scrub_to(page, frame, 1)
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.select_option("#speed", "1")  # real time: the film lasts about as long as the stream did
        page.click("#play")
        pictures, versions = set(), set()
        plot = page.frame_locator("#plot-frame").locator("#plot")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            versions.add(int(plot.get_attribute("data-version")))
            pictures.add(plot.screenshot())
            if max(versions) == last:
                break
        frame.wait_for_function(f"document.getElementById('plot').dataset.version === '{last}'")
        page.wait_for_selector("#pause[disabled]")
    assert len(pictures) >= 3, "the canvas changed as the film played"
    assert len(versions) >= 3 and max(versions) == last
    # Client-side: the changes came from the log once; no version was rebuilt on the server per frame.
    assert not [u for u in requests if "version=" in u and "/doc/" in u]
    assert len([u for u in requests if "/events/" in u]) == 1
    assert page.locator("#shown-version").inner_text() == str(last)
    assert page.problems == []


def test_a_restore_reaches_every_viewer(live_server_url, page, browser):
    with pushed_blue_then_red(live_server_url, "restored") as session:
        viewers = [browser.new_context(viewport={"width": 1000, "height": 700}) for _ in range(2)]
        try:
            frames = []
            for context in viewers:
                viewer = context.new_page()
                frames.append(open_plot(viewer, session.url))
                frames[-1].wait_for_selector("#live-status[data-status=live]")
            assert all(f.evaluate(COUNT_PIXELS, RED) > 200 for f in frames)
            history = open_history(page, session.url)
            scrub_to(page, history, 1)
            page.click("#restore")
            page.wait_for_selector(".messages .success")
            assert "Version 1 restored as version 3" in page.locator(".messages").inner_text()
            for frame in frames:
                frame.wait_for_function("document.getElementById('plot').dataset.version === '3'", timeout=15_000)
            page_wait = frames[0].page
            page_wait.wait_for_timeout(300)
            for frame in frames:
                assert frame.evaluate(COUNT_PIXELS, list(LINE_BLUE)) > 200
                assert frame.evaluate(COUNT_PIXELS, RED) == 0
        finally:
            for context in viewers:
                context.close()
        kinds = [(v["version"], v["kind"], v["restored_from"]) for v in session.history()]
        assert kinds == [(3, "restore", 1), (2, "change", None), (1, "create", None)]
    assert page.problems == []


def test_the_client_lists_and_restores_versions(live_server_url):
    with pushed_blue_then_red(live_server_url, "from python") as session:
        versions = session.history()
        assert [v["version"] for v in versions] == [2, 1]
        assert session.history(limit=1)[0]["kind"] == "change"
        info = session.restore(1)
        assert info["version"] == 3 and session.info["version"] == 3
        doc = session.load_document("from python")
        assert doc.get_model_by_name("ex_line").glyph.line_color == "#1f77b4"
        with pytest.raises(Exception) as refused:
            session.restore(9)
        assert refused.value.code == "invalid" and refused.value.field == "version"
        wait_until(lambda: session.pull() == 3)
        assert session.document.get_model_by_name("ex_line").glyph.line_color == "#1f77b4"
