"""The limits of app processes: a callback that runs past its CPU time ends its own session (its
page says why) and no other; a process past its memory limit takes no new sessions and is
recycled once its last one has ended (tests/test_cli_apps.py checks that the settings refuse bad
values)."""

import asyncio
import hashlib
import subprocess
import sys
import threading
import time

import pytest

from appserver.limits import CallbackClock, Watchdog
from tests.apps_helpers import (app_host_pids, apps_database, click_button, get, open_app, press_slider,  # noqa: F401
                                start_app_server, wait_for_model, write_script)
from tests.helpers import wait_until
from tests.test_cli_apps import ENV

# A slider answers at once; a button's callback loops for ever in pure Python (and swallows every
# Exception); ?spin=build loops while the document is built, ?spin=periodic in a periodic callback.
SPINNING = """
from bokeh.events import ButtonClick
from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import Button, Div, Slider

def spin():
    n = 0
    while True:
        try:
            n += 1
        except Exception:
            pass

where = curdoc().session_context.request.arguments.get("spin")
if where == [b"build"]:
    spin()
if where == [b"periodic"]:
    curdoc().add_periodic_callback(spin, 500)
echo = Div(text="value 1", name="echo")
slider = Slider(title="value", value=1, start=0, end=10, step=1, name="value", width=300)
slider.on_change("value", lambda attr, old, new: setattr(echo, "text", f"value {new}"))
spinner = Button(label="Spin", name="spin")
spinner.on_event(ButtonClick, lambda event: spin())
curdoc().add_root(column(slider, echo, spinner))
"""

# A button's callback keeps 300 MiB (written, so resident) for as long as the session lives.
HUNGRY = """
from bokeh.events import ButtonClick
from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import Button, Div

kept = []
done = Div(text="hungry", name="done")

def eat(event):
    kept.append(bytearray(b"x") * (300 * 2**20))
    done.text = "ate"

button = Button(label="Eat", name="eat")
button.on_event(ButtonClick, eat)
curdoc().add_root(column(button, done))
"""


@pytest.fixture
def session_loop():
    """An event loop in a thread of its own, as a session's, with its ``CallbackClock``."""
    clock, ready, loop = CallbackClock(), threading.Event(), {}

    def run():
        loop["loop"] = asyncio.SelectorEventLoop(clock.selector())
        ready.set()
        loop["loop"].run_forever()

    threading.Thread(target=run, daemon=True).start()
    assert ready.wait(5)
    yield clock, loop["loop"]
    loop["loop"].call_soon_threadsafe(loop["loop"].stop)


def answers(loop) -> bool:
    """Whether the loop runs a new callback (within 30 s)."""
    answered = threading.Event()
    loop.call_soon_threadsafe(answered.set)
    return answered.wait(30)


def test_the_watchdog_stops_a_callback_past_its_cpu_time_and_its_loop_goes_on(session_loop):
    clock, loop = session_loop
    timed_out, swallowed = threading.Event(), []
    dog = Watchdog(0.3, lambda: {"session": clock}, timed_out=lambda key: timed_out.set(), stuck=lambda key: None)

    def spin():
        while True:
            try:
                sum(range(1000))
            except Exception:  # CallbackTimedOut is no Exception
                swallowed.append(True)

    dog.start()
    try:
        loop.call_soon_threadsafe(spin)
        assert timed_out.wait(30)
        assert answers(loop)
        assert swallowed == []
    finally:
        dog.stop()


@pytest.mark.timeout(60)
def test_a_callback_in_code_that_does_not_return_to_python_is_reported_stuck(session_loop):
    clock, loop = session_loop
    # PBKDF2 runs in OpenSSL with the interpreter lock released: the thread's CPU time grows, and
    # the exception waits for it to return to Python. Sized to run about three seconds here.
    start = time.thread_time()
    hashlib.pbkdf2_hmac("sha256", b"key", b"salt", 100_000)
    iterations = int(100_000 * 3 / max(time.thread_time() - start, 1e-3))
    watched, stuck, timed_out, returned = {"session": clock}, threading.Event(), threading.Event(), threading.Event()

    def gave_up(key):
        watched.pop(key)  # as the host does: it watches the session no more
        stuck.set()

    dog = Watchdog(0.2, lambda: dict(watched), timed_out=lambda key: timed_out.set(), stuck=gave_up, grace=0.5)
    dog.start()
    try:
        loop.call_soon_threadsafe(lambda: (hashlib.pbkdf2_hmac("sha256", b"key", b"salt", iterations), returned.set()))
        assert stuck.wait(30)
        assert not returned.is_set() and not timed_out.is_set()
        assert answers(loop)  # back in Python, the callback was stopped there, and the loop goes on
        assert not returned.is_set()
    finally:
        dog.stop()


@pytest.mark.browser
@pytest.mark.daphne
@pytest.mark.timeout(180)
def test_a_callback_past_its_cpu_time_ends_its_session_with_the_reason_and_no_other(apps_database, tmp_path, browser):
    served = start_app_server(apps_database, tmp_path, [write_script(tmp_path, "spinning", SPINNING)],
                              BOKEHSITE_APP_CALLBACK_TIMEOUT="1")
    spinner, other = (browser.new_context().new_page() for _ in range(2))
    try:
        open_app(spinner, served.url + "apps/spinning/")
        answering = open_app(other, served.url + "apps/spinning/")
        (host,) = app_host_pids(served)
        click_button(spinner, "Spin")
        ended = spinner.locator("#session-ended")
        ended.wait_for(state="visible", timeout=30_000)
        assert "a callback of this app ran for more than 1 s of CPU time; the session was ended" in ended.inner_text()
        press_slider(other)  # the same process's other session goes on
        wait_for_model(answering, "echo", "m.text === 'value 2'", timeout=10_000)
        assert app_host_pids(served) == [host]
        # A periodic callback is stopped as well.
        spinner.goto(served.url + "apps/spinning/?spin=periodic")
        ended.wait_for(state="visible", timeout=30_000)
        assert "more than 1 s of CPU time" in ended.inner_text()
        # The build counts too: that page fails with the reason, and the process serves on.
        status, html = get(served.url + "apps/spinning/?spin=build")
        assert status == 500 and "more than 1 s of CPU time" in html
        assert get(served.url + "apps/spinning/")[0] == 200
        assert app_host_pids(served) == [host]
        assert "CallbackTimedOut" in served.output()  # the log has the callback's traceback
    finally:
        for p in (spinner, other):
            p.context.close()
        served.server.stop()


@pytest.mark.browser
@pytest.mark.daphne
@pytest.mark.timeout(180)
def test_a_process_past_its_memory_limit_takes_no_new_session_and_is_recycled_when_idle(apps_database, tmp_path,
                                                                                        browser):
    served = start_app_server(apps_database, tmp_path, [write_script(tmp_path, "hungry", HUNGRY)],
                              BOKEHSITE_APP_MEMORY_LIMIT="300", BOKEHSITE_UNUSED_SESSION_LIFETIME="1")
    page = browser.new_context().new_page()
    try:
        frame = open_app(page, served.url + "apps/hungry/")
        (host,) = app_host_pids(served)
        click_button(page, "Eat")
        wait_for_model(frame, "done", "m.text === 'ate'")
        # Once the process has reported its memory, a new page is refused, and says why.
        wait_until(lambda: get(served.url + "apps/hungry/")[0] == 503, timeout=30)
        status, html = get(served.url + "apps/hungry/")
        assert status == 503 and 'data-code="too_many_sessions"' in html
        assert "is full: over its memory limit (300 MiB, BOKEHSITE_APP_MEMORY_LIMIT)" in html
        assert "takes no new sessions" in served.output()
        page.context.close()  # the last session ends (unused), and the process is recycled
        wait_until(lambda: app_host_pids(served) not in ([], [host]), timeout=60)
        assert "is recycled" in served.output()
        wait_until(lambda: get(served.url + "apps/hungry/")[0] == 200, timeout=60)
    finally:
        served.server.stop()


def test_the_limits_have_their_defaults(tmp_path):
    code = "from bokehsite import settings as s; print(s.BOKEHSITE_APP_MEMORY_LIMIT, s.BOKEHSITE_APP_CALLBACK_TIMEOUT)"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**ENV, "BOKEHSITE_DATA_DIR": str(tmp_path)},
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["2048", "10"], done.stderr
