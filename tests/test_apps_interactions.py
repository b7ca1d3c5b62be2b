"""What Bokeh's example apps do in the browser beyond widgets, in a hosted app: a selection
made in the page runs Python's on_change, plot and button events reach on_event, a 2-D slice
patch of an image reaches BokehJS, a thread's next-tick and timeout callbacks run and are
painted, and a js_on_change callback runs in the page."""

import pytest

from tests.apps_helpers import (INTERACTIONS, UPDATES, apps_database, click_button, model_value,  # noqa: F401
                                open_app, press_slider, start_app_server, wait_for_model, write_script)

pytestmark = [pytest.mark.browser, pytest.mark.daphne]


@pytest.fixture(scope="module")
def apps(apps_database, tmp_path_factory):
    folder = tmp_path_factory.mktemp("interaction-apps")
    scripts = [write_script(folder, "interactions", INTERACTIONS), write_script(folder, "updates", UPDATES)]
    served = start_app_server(apps_database, folder, scripts)
    yield served
    served.server.stop()


def plot_box(page):
    """Where the plot's canvas is in the page (the frame's offset included)."""
    box = page.frame_locator("#app-frame").locator(".bk-Canvas, canvas").first.bounding_box()
    assert box is not None
    return box


def at(box, x: float, y: float) -> tuple[float, float]:
    """The page position of the data point (x, y): the canvas spans 0 to 6 both ways."""
    return box["x"] + box["width"] * x / 6, box["y"] + box["height"] * (1 - y / 6)


def test_a_box_selection_in_the_page_runs_the_python_selection_callback(apps, page):
    frame = open_app(page, apps.url + "apps/interactions/")
    box = plot_box(page)
    page.mouse.move(*at(box, 1.5, 0.5))
    page.mouse.down()
    page.mouse.move(*at(box, 3.5, 3), steps=5)
    page.mouse.move(*at(box, 4.5, 5.5), steps=5)
    page.mouse.up()
    # Points 2, 3 and 4 (y 5, 2 and 4): only Python sums their y.
    wait_for_model(frame, "chosen", "m.text === 'selected [1, 2, 3] y sum 11'", timeout=10_000)
    page.frame_locator("#app-frame").get_by_text("selected [1, 2, 3] y sum 11").wait_for(timeout=5_000)
    assert page.problems == []


def test_a_tap_on_the_plot_and_a_button_click_reach_python_on_event_with_their_attributes(apps, page):
    frame = open_app(page, apps.url + "apps/interactions/")
    page.mouse.click(*at(plot_box(page), 2, 4))
    wait_for_model(frame, "seen", "m.text.startsWith('tap ')", timeout=10_000)
    tap = dict(part.split("=") for part in model_value(frame, "seen", "m.text").split()[1:])
    assert float(tap["x"]) == pytest.approx(2, abs=0.2) and float(tap["y"]) == pytest.approx(4, abs=0.2)
    click_button(page, "Press")
    wait_for_model(frame, "seen", "m.text === 'button_click'", timeout=10_000)
    assert page.problems == []


def test_a_js_on_change_callback_runs_in_the_page_and_python_sees_its_change(apps, page):
    frame = open_app(page, apps.url + "apps/interactions/")
    press_slider(page, 2)
    wait_for_model(frame, "mirrored", "m.text === 'js saw 3'", timeout=10_000)
    wait_for_model(frame, "echoed", "m.text === 'python saw js saw 3'", timeout=10_000)
    assert page.problems == []


def test_a_patch_of_a_2d_slice_of_an_image_reaches_the_page(apps, page):
    frame = open_app(page, apps.url + "apps/updates/")
    assert model_value(frame, "image", "Array.from(m.data.image[0])") == [0] * 20
    click_button(page, "Patch")
    wait_for_model(frame, "image", "m.data.image[0][1] === 7", timeout=10_000)
    image = model_value(frame, "image", "Array.from(m.data.image[0])")
    assert model_value(frame, "image", "Array.from(m.data.image[0].shape)") == [4, 5]
    # Rows 0 and 2, columns 1 to 3; nothing else.
    assert [i for i, v in enumerate(image) if v == 7] == [1, 2, 3, 11, 12, 13]
    assert sum(image) == 6 * 7
    assert page.problems == []


def test_next_tick_and_timeout_callbacks_added_from_a_thread_run_in_the_session(apps, page):
    frame = open_app(page, apps.url + "apps/updates/")
    click_button(page, "Work")
    # Run by the session (its thread is app-...), not by the thread that added them.
    wait_for_model(frame, "ticked", "m.text === 'next tick in app'", timeout=10_000)
    wait_for_model(frame, "timed", "m.text === 'timeout in app'", timeout=10_000)
    page.frame_locator("#app-frame").get_by_text("timeout in app").wait_for(timeout=5_000)
    assert page.problems == []
