"""Changes made elsewhere come back to the script: pull(), callbacks, background mode, reconnects."""

import threading
import time

import pytest
from bokeh.document import Document as BokehDocument
from bokeh.document.events import MessageSentEvent
from bokeh.events import ButtonClick
from bokeh.layouts import column
from bokeh.models import Button, ColumnDataSource, Slider

from bokehsite.client import Session, figure
from tests.helpers import state, wait_until

pytestmark = [pytest.mark.daphne, pytest.mark.django_db(transaction=True)]


def dashboard():
    """A slider whose Python callback recomputes a line, and a button."""
    slider = Slider(start=0, end=10, value=1, step=1, title="amplitude", name="amplitude")
    source = ColumnDataSource(data={"x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 2.0]}, name="wave")
    button = Button(label="Start", name="toggle")
    p = figure(width=300, height=200)
    p.line("x", "y", source=source)
    doc = BokehDocument()
    doc.add_root(column(slider, button, p))
    return doc


@pytest.fixture
def script_and_viewer(live_server_url):
    """The dashboard's script, and a second session that changes the document as a browser would."""
    script = Session(live_server_url)
    script.use_doc("dashboard")
    doc = dashboard()
    script.push(doc)
    other = Session(live_server_url)
    other_doc = other.open_document("dashboard")
    yield script, doc, other, other_doc
    other.close()
    script.close()


def test_pull_brings_remote_changes_and_runs_the_callbacks_in_the_caller(script_and_viewer):
    script, doc, other, other_doc = script_and_viewer
    calls = []

    def recompute(attr, old, new):
        calls.append((attr, old, new, threading.current_thread().name))
        doc.get_model_by_name("wave").data = {"x": [0.0, 1.0, 2.0], "y": [0.0, float(new), 2.0 * new]}

    doc.get_model_by_name("amplitude").on_change("value", recompute)
    other_doc.get_model_by_name("amplitude").value = 4
    version = other.push()["version"]
    assert script.pull() >= version
    assert calls == [("value", 1, 4, threading.current_thread().name)]
    # The callback's own change went back to the server and on to everyone.
    script.push()
    other.pull()
    assert list(other_doc.get_model_by_name("wave").data["y"]) == [0.0, 4.0, 8.0]


def test_a_button_click_reaches_on_event_in_background_mode(script_and_viewer):
    script, doc, other, other_doc = script_and_viewer
    clicks = []
    button = doc.get_model_by_name("toggle")

    def clicked(event):
        clicks.append(event.model.id)
        button.label = "Stop"

    button.on_event(ButtonClick, clicked)
    script.push()  # subscribed_events reach the server, so browsers send the clicks
    script.start_background()
    other_button = other_doc.get_model_by_name("toggle")
    other.pull()
    assert "button_click" in other_button.subscribed_events
    # What BokehJS sends when the button is clicked: a MessageSent "bokeh_event".
    other_doc.callbacks.trigger_on_change(MessageSentEvent(other_doc, "bokeh_event", ButtonClick(other_button)))
    other.push()
    wait_until(lambda: clicks == [button.id])
    wait_until(lambda: other.pull() and other_button.label == "Stop")


def test_changes_are_neither_lost_nor_doubled_across_a_dropped_connection(script_and_viewer):
    script, doc, other, other_doc = script_and_viewer
    source = doc.get_model_by_name("wave")
    script.start_background()
    for i in range(40):
        with script.lock:
            source.stream({"x": [10.0 + i], "y": [float(i)]})
        if i in (10, 25):
            script._sync.drop()  # as a network failure would
        if i % 5 == 0:
            other_doc.get_model_by_name("amplitude").value = i % 10
            other.push()
        time.sleep(0.01)
    version = script.push()["version"]
    other.push()
    wait_until(lambda: script._sync.version >= other._sync.acked and other.pull() >= version)
    server = Session(script.root_url).load_document("dashboard")
    assert len(server.get_model_by_name("wave").data["x"]) == 43  # 3 + 40 streamed, each once
    with script.lock:
        assert state(doc) == state(server)
    assert state(other_doc) == state(server)
