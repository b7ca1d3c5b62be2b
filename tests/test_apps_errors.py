"""Hosted apps given bad input: an app that raises while it builds, a callback that raises, a
session's key or frame token in the wrong hands, a change the app's models reject, and more
sessions than the server allows."""

import asyncio
import json
import os
import signal
import threading

import pytest
import websockets

from bokehsite import protocol
from tests.apps_helpers import (BROKEN, FINE, RAISING, app_host_pids, apps_database, frame_src, get, hidden,  # noqa: F401
                                open_app, press_slider, session_document, start_app_server, wait_for_model,
                                write_script)
from tests.helpers import log_in, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.daphne]


@pytest.fixture(scope="module")
def apps(apps_database, tmp_path_factory):
    folder = tmp_path_factory.mktemp("error-apps")
    paths = [write_script(folder, "broken", BROKEN), write_script(folder, "fine", FINE),
             write_script(folder, "raising", RAISING)]
    served = start_app_server(apps_database, folder, paths, BOKEHSITE_MULTI_USER="1",
                              BOKEHSITE_PUBLIC_APPS="broken,fine,raising")
    yield served
    served.server.stop()


def test_an_app_that_raises_while_building_shows_its_error_and_the_server_serves_other_apps(apps, page):
    response = page.goto(apps.url + "apps/broken/")
    assert response.status == 500
    error = page.locator("#app-error")
    assert error.get_attribute("data-code") == "app_failed"
    assert "broken on purpose while building" in error.inner_text()
    log = apps.output()
    assert "Traceback" in log and "RuntimeError: broken on purpose while building" in log
    assert "app broken failed to build a session" in log
    assert get(apps.url + "apps/fine/")[0] == 200
    assert get(apps.url + "apps/broken/")[0] == 500  # and again, the host still up


def test_a_callback_that_raises_is_logged_with_its_app_and_the_session_goes_on(apps, page):
    frame = open_app(page, apps.url + "apps/raising/")
    press_slider(page)  # to 2: the callback raises
    wait_until(lambda: "the callback refuses two" in apps.output(), timeout=15)
    assert "app raising: a callback of session" in apps.output()  # the log names the app
    press_slider(page)  # to 3: the session still answers
    wait_for_model(frame, "echo", "m.text === 'value 3'", timeout=10_000)
    assert page.frame_locator("#app-frame").locator("#live-status").get_attribute("data-status") == "live"


def test_another_browser_cannot_attach_with_a_forged_or_borrowed_frame_token(apps, browser):
    first, second = get(apps.url + "apps/fine/")[1], get(apps.url + "apps/fine/")[1]
    document = hidden(first, "document")
    theirs = frame_src(second).split("frame_token=", 1)[1]
    borrowed = f"{apps.url}documents/{document}/frame/?frame_token={theirs}"  # another session's token
    token = frame_src(first).split("frame_token=", 1)[1]
    forged = f"{apps.url}documents/{document}/frame/?frame_token={token[:-4]}AAAA"  # a broken signature
    context = browser.new_context()
    try:
        page = context.new_page()
        for url in (borrowed, forged):
            response = page.goto(url)
            assert response.status in (401, 403, 404), url
            assert not page.locator("#live-status[data-status=live]").count()
        # The genuine frame URL still works: only the token was wrong.
        assert page.goto(apps.url + frame_src(first).lstrip("/")).status == 200
    finally:
        context.close()


def test_a_sessions_document_page_is_not_found_without_its_key(apps, browser):
    html = get(apps.url + "apps/fine/")[1]
    document, key = hidden(html, "document"), hidden(html, "key")
    context = browser.new_context()
    try:
        page = context.new_page()
        log_in(page, apps.url + "accounts/login/", "bob")
        assert page.goto(f"{apps.url}documents/{document}/").status == 404
        assert page.goto(f"{apps.url}documents/{document}/?key=wrong{key[5:]}").status == 404
        assert page.goto(f"{apps.url}documents/{document}/?key={key}").status == 200
    finally:
        context.close()


async def _send_change(url: str, document: str, key: str, patch: dict) -> dict:
    """Send one change over the document websocket with the session's key; the answer to it."""
    async with websockets.connect(protocol.url(url, document), additional_headers={"Authorization": f"Key {key}"},
                                  max_size=None) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello" and hello["role"] == "write"
        await ws.send(protocol.Patch(id=1, patch=patch).encode())
        while True:
            raw = await asyncio.wait_for(ws.recv(), 10)
            if isinstance(raw, str) and (message := json.loads(raw)).get("id") == 1:
                return message


def send_change(*args) -> dict:
    """``_send_change`` in a thread of its own: this thread has Playwright's event loop running."""
    answer: dict = {}
    thread = threading.Thread(target=lambda: answer.update(asyncio.run(_send_change(*args))))
    thread.start()
    thread.join(30)
    return answer


def test_a_change_the_apps_models_reject_gets_an_error_message(apps):
    html = get(apps.url + "apps/raising/")[1]
    document, key = hidden(html, "document"), hidden(html, "key")
    slider = next(ref["id"] for ref in _models(session_document(apps.url, html)) if ref.get("name") == "Slider")
    bad_value = {"events": [{"kind": "ModelChanged", "model": {"id": slider}, "attr": "value", "new": "eleven"}]}
    answer = send_change(apps.url, document, key, bad_value)
    assert answer["type"] == "error" and answer["detail"], answer
    no_model = {"events": [{"kind": "ModelChanged", "model": {"id": "p-nothing"}, "attr": "value", "new": 3}]}
    answer = send_change(apps.url, document, key, no_model)
    assert answer["type"] == "error", answer
    good = {"events": [{"kind": "ModelChanged", "model": {"id": slider}, "attr": "value", "new": 4}]}
    assert send_change(apps.url, document, key, good)["type"] == "ack"
    # The app's Python heard the good change, and answered it as it does the browser's.
    wait_until(lambda: "value 4" in json.dumps(session_document(apps.url, html)), timeout=10)


def _models(value):
    """Every model object in a document's JSON."""
    if isinstance(value, dict):
        if value.get("type") == "object" and "id" in value:
            yield value
        for item in value.values():
            yield from _models(item)
    elif isinstance(value, list):
        for item in value:
            yield from _models(item)


def test_when_the_app_host_dies_its_pages_say_the_session_ended_and_a_new_one_starts(apps, page):
    """Last of the module's shared server: it kills that server's app host."""
    open_app(page, apps.url + "apps/raising/")
    hosts = app_host_pids(apps)
    assert len(hosts) == 1
    os.kill(hosts[0], signal.SIGKILL)
    page.locator("#session-ended").wait_for(state="visible", timeout=40_000)
    assert "the app process running this session stopped" in page.locator("#session-ended").inner_text()
    frame = open_app(page, apps.url + "apps/raising/")  # the server starts another host
    press_slider(page, 2)
    wait_for_model(frame, "echo", "m.text === 'value 3'", timeout=10_000)


def test_past_the_session_limit_a_page_is_refused_with_503_and_says_why(apps_database, tmp_path):
    served = start_app_server(apps_database, tmp_path, [write_script(tmp_path, "fine", FINE)],
                              BOKEHSITE_MAX_SESSIONS="2")
    try:
        assert get(served.url + "apps/fine/")[0] == 200
        assert get(served.url + "apps/fine/")[0] == 200
        status, html = get(served.url + "apps/fine/")
        assert status == 503
        assert 'data-code="too_many_sessions"' in html
        assert "BOKEHSITE_MAX_SESSIONS" in html and "2 app sessions" in html
    finally:
        served.server.stop()


def test_past_the_per_process_session_limit_another_viewer_is_refused_with_503(apps_database, tmp_path, browser):
    served = start_app_server(apps_database, tmp_path, [write_script(tmp_path, "fine", FINE)],
                              BOKEHSITE_MULTI_USER="1", BOKEHSITE_PUBLIC_APPS="fine", BOKEHSITE_MAX_SESSIONS="1")
    contexts = [browser.new_context() for _ in range(2)]
    try:
        alice, bob = (c.new_page() for c in contexts)
        log_in(alice, served.url + "accounts/login/")
        open_app(alice, served.url + "apps/fine/")
        # Bob has no session at all: what refuses him is the app process's limit, not his own.
        log_in(bob, served.url + "accounts/login/", "bob")
        assert bob.goto(served.url + "apps/fine/").status == 503
        error = bob.locator("#app-error")
        assert error.get_attribute("data-code") == "too_many_sessions"
        assert "every app process runs 1 session, " in error.inner_text()
        assert "the most BOKEHSITE_MAX_SESSIONS allows" in error.inner_text()
        status, html = get(served.url + "apps/fine/")  # an anonymous visitor too
        assert status == 503 and 'data-code="too_many_sessions"' in html
    finally:
        for c in contexts:
            c.close()
        served.server.stop()
