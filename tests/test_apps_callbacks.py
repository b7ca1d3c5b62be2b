"""A hosted app's Python callbacks run on what the viewer does in the browser, and what they
change is painted there: widgets' on_change and on_event, patch and stream, periodic callbacks."""

import pytest

from bokehsite import wire
from tests.apps_helpers import (ANIMATED, ROLLING, WIDGETS, apps_database, click_button, model_value,  # noqa: F401
                                open_app, press_slider, session_document, start_app_server, wait_for_model,
                                write_script)
from tests.helpers import COUNT_PIXELS

pytestmark = [pytest.mark.browser, pytest.mark.daphne]

RED = [255, 0, 0]
BLUE = [0, 0, 255]


@pytest.fixture(scope="module")
def apps(apps_database, tmp_path_factory):
    folder = tmp_path_factory.mktemp("callback-apps")
    scripts = [write_script(folder, "widgets", WIDGETS), write_script(folder, "animated", ANIMATED),
               write_script(folder, "rolling", ROLLING)]
    served = start_app_server(apps_database, folder, scripts)
    yield served
    served.server.stop()


def test_a_slider_change_runs_the_python_callback_and_the_new_wave_is_painted(apps, page):
    frame = open_app(page, apps.url + "apps/widgets/")
    before = frame.evaluate(COUNT_PIXELS, RED)
    assert model_value(frame, "wave", "Math.max(...m.data.y)") == pytest.approx(1, abs=0.01)
    press_slider(page, 2)
    # Only Python computes the new wave: its peak in the browser is the callback's doing.
    wait_for_model(frame, "wave", "Math.abs(Math.max(...m.data.y) - 3) < 0.01")
    page.wait_for_timeout(300)
    assert model_value(frame, "amplitude", "m.value") == 3
    assert frame.evaluate(COUNT_PIXELS, RED) > before * 1.3  # a taller wave is a longer red line
    assert page.problems == []


def test_a_button_click_reaches_its_python_on_event_handler(apps, page):
    frame = open_app(page, apps.url + "apps/widgets/")
    click_button(page, "Count")
    wait_for_model(frame, "clicks", "m.text === 'clicked 1 times'")
    click_button(page, "Count")
    wait_for_model(frame, "clicks", "m.text === 'clicked 2 times'")
    page.frame_locator("#app-frame").get_by_text("clicked 2 times").wait_for(timeout=5_000)  # painted


def test_a_checkbox_group_hides_and_shows_a_line_through_python(apps, page):
    frame = open_app(page, apps.url + "apps/widgets/")
    assert frame.evaluate(COUNT_PIXELS, BLUE) > 100
    checkboxes = page.frame_locator("#app-frame").locator("input[type=checkbox]")
    checkboxes.nth(1).click()
    wait_for_model(frame, "cosine", "m.visible === false")
    page.wait_for_timeout(300)
    assert frame.evaluate(COUNT_PIXELS, BLUE) == 0
    assert frame.evaluate(COUNT_PIXELS, RED) > 100  # the other line stays
    checkboxes.nth(1).click()
    wait_for_model(frame, "cosine", "m.visible === true")
    page.wait_for_timeout(300)
    assert frame.evaluate(COUNT_PIXELS, BLUE) > 100


def test_a_callbacks_patch_and_stream_reach_the_browser(apps, page):
    frame = open_app(page, apps.url + "apps/widgets/")
    click_button(page, "Grow")
    wait_for_model(frame, "points", "m.data.x.length === 4")
    assert model_value(frame, "points", "Array.from(m.data.y)") == [7, 0, 0, 9]
    click_button(page, "Grow")
    wait_for_model(frame, "points", "m.data.x.length === 5")
    assert model_value(frame, "points", "Array.from(m.data.y)") == [7, 0, 0, 9, 9]


def test_a_periodic_callback_updates_the_page_without_any_input(apps, page):
    frame = open_app(page, apps.url + "apps/animated/")
    first = model_value(frame, "ticks", "m.data.x.length")
    wait_for_model(frame, "ticks", f"m.data.x.length >= {first + 5}", timeout=10_000)
    assert page.problems == []


def test_a_callback_that_updates_some_columns_keeps_the_others_in_the_stored_session(apps, page):
    frame = open_app(page, apps.url + "apps/rolling/")
    first = model_value(frame, "rolling", "m.data.y[0]")
    wait_for_model(frame, "rolling", f"m.data.y[0] !== {first}", timeout=10_000)
    page.wait_for_timeout(500)  # a few more rolls stored
    (source,) = [m for m in wire.model_objects(session_document(apps.url, page.content()))
                 if m.get("attributes", {}).get("name") == "rolling"]
    assert sorted(name for name, _ in source["attributes"]["data"]["entries"]) == ["colour", "x", "y"]
    assert model_value(frame, "rolling", "Object.keys(m.data).sort()") == ["colour", "x", "y"]
    assert page.problems == []


def test_two_sessions_of_one_app_keep_states_of_their_own(apps, browser):
    pages = [browser.new_context().new_page() for _ in range(2)]
    try:
        frames = [open_app(p, apps.url + "apps/widgets/") for p in pages]
        click_button(pages[0], "Count")
        wait_for_model(frames[0], "clicks", "m.text === 'clicked 1 times'")
        pages[1].wait_for_timeout(500)
        assert model_value(frames[1], "clicks", "m.text") == "clicked 0 times"
    finally:
        for p in pages:
            p.context.close()
