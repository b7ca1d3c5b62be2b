"""Hosted apps' pages, for each shape ``bokeh serve`` takes: a script, a notebook, and a
directory with its data file, theme, template, static files and lifecycle hooks; an app's
autoload.js; what an app sees of the page's request; and in development mode, new sessions
running edited code."""

import json
import os

import pytest

from tests.apps_helpers import (ARGUMENTS, BACKGROUND, WIDGETS, apps_database, get, model_value, open_app,  # noqa: F401
                                session_document, start_app_server, wait_for_file, write_directory_app,
                                write_notebook, write_script)

pytestmark = [pytest.mark.browser, pytest.mark.daphne]

EDITED = """
from bokeh.io import curdoc
from bokeh.models import Div

curdoc().add_root(Div(text="version {version}", name="version"))
"""


@pytest.fixture(scope="module")
def apps(apps_database, tmp_path_factory):
    folder = tmp_path_factory.mktemp("page-apps")
    paths = [write_script(folder, "widgets", WIDGETS), write_script(folder, "arguments", ARGUMENTS),
             write_directory_app(folder, folder / "markers"), write_notebook(folder),
             write_script(folder, "edited", EDITED.format(version="one"))]
    served = start_app_server(apps_database, folder, paths, BOKEHSITE_APP_DEV="1")
    yield served
    served.server.stop()


def test_the_app_list_links_every_app(apps):
    status, html = get(apps.url + "apps/")
    assert status == 200
    for name in ("widgets", "arguments", "dashboard", "notebook"):
        assert f'href="/apps/{name}/"' in html


def test_an_app_page_renders_its_session_with_no_console_errors(apps, page):
    frame = open_app(page, apps.url + "apps/widgets/")
    assert model_value(frame, "amplitude", "m.value") == 1
    assert page.locator("#save-session").is_visible()
    assert page.problems == []


def test_an_unknown_app_is_not_found(apps):
    status, _ = get(apps.url + "apps/nothing-here/")
    assert status == 404


def test_a_directory_app_reads_the_data_file_beside_its_main_and_its_theme_applies(apps, page):
    frame = open_app(page, apps.url + "apps/dashboard/")
    assert model_value(frame, "rows", "Array.from(m.data.y)") == [10, 20, 15, 40]
    assert model_value(frame, "count", "m.text") == "4 rows"
    assert model_value(frame, "plot", "m.background_fill_color") == BACKGROUND
    assert page.problems == []


def test_a_directory_apps_static_files_are_served_under_the_app(apps):
    status, css = get(apps.url + "apps/dashboard/static/style.css")
    assert status == 200 and "rebeccapurple" in css
    assert get(apps.url + "apps/dashboard/static/missing.css")[0] == 404
    status, body = get(apps.url + "apps/dashboard/static/../main.py")
    assert status in (400, 404) and "curdoc" not in body  # nothing outside static/
    assert get(apps.url + "apps/widgets/static/style.css")[0] == 404  # a script has no static/


def test_a_directory_apps_template_wraps_its_page_and_places_its_roots(apps, page):
    frame = open_app(page, apps.url + "apps/dashboard/")
    heading = page.frame_locator("#app-frame").locator("#dashboard-heading")
    assert heading.inner_text() == "The dashboard's own heading"
    assert heading.evaluate("h => getComputedStyle(h).color") == "rgb(102, 51, 153)"  # its static/style.css
    assert model_value(frame, "count", "m.text") == "4 rows"
    assert page.problems == []


def test_a_directory_apps_hooks_run_when_the_server_loads_it_and_a_session_starts(apps):
    status, _ = get(apps.url + "apps/dashboard/?tag=hooks")
    assert status == 200
    markers = apps.folder / "markers"
    assert wait_for_file(markers / "server-loaded") == "loaded"
    assert wait_for_file(markers / "created-hooks")  # the session's id


def test_a_notebook_app_is_served_from_its_code_cells(apps, page):
    frame = open_app(page, apps.url + "apps/notebook/")
    assert model_value(frame, "notebook-div", "m.text") == "made in a notebook"
    assert page.problems == []


def test_request_arguments_reach_the_app(apps, page):
    frame = open_app(page, apps.url + "apps/arguments/?N=7")
    assert model_value(frame, "points", "m.data.x.length") == 7
    assert model_value(frame, "who", "m.text") == "7 points for defaultuser"  # single-user mode's one account
    frame = open_app(page, apps.url + "apps/arguments/")
    assert model_value(frame, "points", "m.data.x.length") == 3


def test_an_apps_autoload_script_is_served_for_server_document(apps):
    status, script = get(apps.url + "apps/widgets/autoload.js?bokeh-autoload-element=p1&bokeh-absolute-url="
                         + apps.url + "apps/widgets")
    assert status == 200 and "p1" in script


def test_in_development_mode_a_new_session_runs_the_apps_edited_code(apps):
    status, html = get(apps.url + "apps/edited/")
    assert status == 200 and "version one" in json.dumps(session_document(apps.url, html))
    script = apps.folder / "edited.py"
    script.write_text(EDITED.format(version="two"))
    later = script.stat().st_mtime + 2  # a change the mtime scan sees, however coarse the clock
    os.utime(script, (later, later))
    status, html = get(apps.url + "apps/edited/")
    assert status == 200 and "version two" in json.dumps(session_document(apps.url, html))
