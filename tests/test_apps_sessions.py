"""Hosted apps' sessions in multi-user mode: whose they are, how long they live, that one
session's blocking callback holds up no other, and saving one as an ordinary plot."""

import time

import pytest

from tests.apps_helpers import (ARGUMENTS, BUSY, SLOW, WIDGETS, apps_database, click_button, get, hidden,  # noqa: F401
                                model_value, open_app, press_slider, seconds, start_app_server,
                                wait_for_model, write_directory_app, write_script)
from tests.helpers import log_in, open_plot, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.daphne]


@pytest.fixture(scope="module")
def apps(apps_database, tmp_path_factory):
    folder = tmp_path_factory.mktemp("session-apps")
    paths = [write_script(folder, "widgets", WIDGETS), write_script(folder, "arguments", ARGUMENTS),
             write_script(folder, "slow", SLOW), write_script(folder, "busy", BUSY),
             write_directory_app(folder, folder / "markers")]
    served = start_app_server(apps_database, folder, paths, BOKEHSITE_MULTI_USER="1",
                              BOKEHSITE_PUBLIC_APPS="widgets,slow,busy,dashboard", BOKEHSITE_UNUSED_SESSION_LIFETIME="1")
    yield served
    served.server.stop()


def test_an_app_not_listed_public_asks_for_a_login_and_then_sees_the_users_name(apps, page):
    log_in(page, apps.url + "apps/arguments/?N=4")  # the login form sends the viewer back to the app
    frame = open_app(page, page.url)
    assert "/apps/arguments/" in page.url
    assert model_value(frame, "who", "m.text") == "4 points for alice"
    assert model_value(frame, "points", "m.data.x.length") == 4
    # The app never gets the viewer's credentials for this server.
    seen = model_value(frame, "seen", "m.text")
    assert "'sessionid'" not in seen and "'csrftoken'" not in seen and "'cookie'" not in seen
    assert "'user-agent'" in seen


def test_an_anonymous_visitor_opens_a_public_app(apps, page):
    frame = open_app(page, apps.url + "apps/widgets/")
    assert model_value(frame, "amplitude", "m.value") == 1
    assert page.problems == []


def test_a_viewed_session_outlives_the_unused_lifetime_and_a_closed_one_ends(apps, browser):
    context = browser.new_context()
    page = context.new_page()
    frame = open_app(page, apps.url + "apps/dashboard/?tag=closing")
    document, key = hidden(page.content(), "document"), hidden(page.content(), "key")
    markers = apps.folder / "markers"
    assert (markers / "created-closing").exists()
    page.wait_for_timeout(3000)  # three times the unused lifetime, with its viewer there
    assert shown(f"{apps.url}documents/{document}/?key={key}")
    assert model_value(frame, "count", "m.text") == "4 rows"
    assert not (markers / "destroyed-closing").exists()
    context.close()
    # Its viewer gone, the session ends: its document with it, and its destroy hook runs.
    wait_until(lambda: not shown(f"{apps.url}documents/{document}/?key={key}"), timeout=15)
    wait_until((markers / "destroyed-closing").exists, timeout=10)


def test_a_session_ending_with_a_change_on_its_way_runs_its_destroy_hook_and_logs_no_error(apps):
    assert get(apps.url + "apps/busy/?tag=unused")[0] == 200
    # Nobody opens it: it ends as unused. Its callback is mid-change then, and the change can
    # only be refused, its document being gone; that is how such a session ends, not a failure.
    marker = apps.folder / "destroyed-unused"
    wait_until(lambda: marker.exists() and marker.read_text(), timeout=30)
    assert int(marker.read_text()) > 0  # its callback ran until then
    time.sleep(1)  # what the end logs, logged
    log = apps.output()
    assert "of busy ended: nobody had it open" in log
    assert "failed to handle end" not in log


def shown(url):
    """Whether the session's document page shows it (an anonymous visitor is sent to log in
    when it is gone, as for any document they may not see)."""
    status, html = get(url)
    return status == 200 and "dashboard session" in html


def test_save_as_plot_keeps_the_sessions_state_as_a_document_of_the_viewer(apps, page):
    log_in(page, apps.url + "accounts/login/?next=/apps/widgets/")
    frame = open_app(page, page.url)
    press_slider(page, 2)
    wait_for_model(frame, "wave", "Math.abs(Math.max(...m.data.y) - 3) < 0.01")
    page.wait_for_timeout(500)  # the callback's answer is stored before the form reads it
    page.fill("#save-session input[name=title]", "Saved wave")
    page.click("#save-session button[type=submit]")
    page.wait_for_url("**/documents/*/")
    assert "Saved wave" in page.content()
    saved = open_plot(page, page.url)
    assert model_value(saved, "amplitude", "m.value") == 3
    assert model_value(saved, "wave", "Math.max(...m.data.y)") == pytest.approx(3, abs=0.01)
    assert "Saved wave" not in get(page.url)[1]  # alice's own: an anonymous visitor is sent to log in


def test_a_callback_that_sleeps_holds_up_neither_another_session_nor_a_new_page(apps, browser):
    sleeper, other = (browser.new_context().new_page() for _ in range(2))
    try:
        sleeping = open_app(sleeper, apps.url + "apps/slow/")
        answering = open_app(other, apps.url + "apps/slow/")
        click_button(sleeper, "Sleep")
        sleeper.wait_for_timeout(1000)  # the callback is asleep now
        start = time.monotonic()
        press_slider(other)
        wait_for_model(answering, "echo", "m.text === 'value 2'", timeout=10_000)
        assert time.monotonic() - start < 3
        assert seconds(lambda: get(apps.url + "apps/slow/")) < 3  # a new session's page
        assert seconds(lambda: get(apps.url + "apps/")) < 3
        wait_for_model(sleeping, "slept", "m.text === 'slept'", timeout=20_000)  # and it wakes up
    finally:
        for p in (sleeper, other):
            p.context.close()

