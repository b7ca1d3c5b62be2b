"""The page's inbox (static/bokehsite/inbox.js) and a script's (bokehsite.client.inbox) agree:
one recorded sequence of frames, with gaps, the connection's own echoes, a snapshot and
reconnects, leaves both in the same state after every step."""

import json
from functools import partial
from pathlib import Path

import bokeh
import numpy as np
import pytest
from bokeh.core.serialization import Buffer, Serializer
from bokeh.document import Document
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, Div, Slider
from bokeh.plotting import figure

from bokehsite import protocol, wire
from bokehsite.client.inbox import Inbox
from bokehsite.client.outbox import Outbox
from tests.helpers import state

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
BOKEHJS = Path(bokeh.__file__).parent / "server" / "static" / "js"
CLIENT = "page"  # the name both clients give their changes: keys are "page:1", "page:2", ...
WINDOW = 4  # small, so that the clients report what they applied within the sequence
# What the recorded changes touch, by model name: compared between the two clients at every step.
TOUCHED = {"points": ["data"], "slider": ["value", "end"], "div": ["text"]}


def first_document() -> Document:
    source = ColumnDataSource({"x": [0.0, 1.0], "y": [2.0, 3.0]}, name="points")
    plot = figure(width=300, height=200, toolbar_location=None)
    plot.line("x", "y", source=source)
    doc = Document(title="parity")
    doc.add_root(column(Slider(name="slider", start=0, end=10, value=0), Div(name="div", text="start"), plot))
    return doc


def events_of(doc: Document, change) -> list:
    """The change events ``change()`` makes in ``doc``."""
    events = []

    def collect(event):
        events.append(event)

    doc.on_change(collect)
    change()
    doc.remove_on_change(collect)
    return events


def patch_of(doc: Document, change) -> tuple[dict, list[Buffer]]:
    """What ``change()`` does to ``doc``, as the PATCH-DOC content the server stores and relays."""
    serializer = Serializer(references=doc.models)
    events = [wire.binary_event(serializer.encode(e), serializer.buffers) for e in events_of(doc, change)]
    return {"events": events}, serializer.buffers


def patches(start: int, *items: tuple[dict, list[Buffer]]) -> bytes:
    return protocol.Patches(start, items[-1][0]["version"], [i for i, _ in items]).encode([b for _, bs in items for b in bs])


def hello(version: int) -> str:
    return protocol.Hello(version, "write", WINDOW).encode()


@pytest.fixture(scope="module")
def recording():
    """The first bundle (version 1), and what happens next: the clients' own changes ("local")
    and the server's frames, built as the server builds them, from a document it changes."""
    serialized = wire.document_json(first_document())
    bundle = wire.pack({"doc": serialized.content}, serialized.buffers)
    header, buffers = wire.unpack(bundle)
    server = wire.load_document(header["doc"], buffers)
    points, slider, div = (server.get_model_by_name(name) for name in ("points", "slider", "div"))

    def stored(version, change, key=""):
        patch, buffers = patch_of(server, change)
        return protocol.item(version, patch, key), buffers

    def set_(model, attr, value):
        return lambda: setattr(model, attr, value)

    def stream(x, y):
        return lambda: points.stream({"x": np.array(x, float), "y": np.array(y, float)})

    v2 = stored(2, stream([2, 3], [4, 5]))
    v3 = stored(3, set_(slider, "value", 7), key="other:1")  # before ours, which travels
    stored(4, set_(slider, "value", 5))  # ours (page:1): our connection hears it as its own
    v4 = protocol.own_item(4), []
    v5 = stored(5, set_(slider, "end", 20))
    v6 = stored(6, stream([4], [6]))
    v7 = stored(7, set_(div, "text", "mine"), key=f"{CLIENT}:2")  # ours, stored before a reconnect
    stored(8, set_(div, "text", "snapshot"))
    stored(9, set_(slider, "value", 9))
    snapshot = wire.document_json(server)
    v10 = stored(10, stream([5], [7]))
    v11 = stored(11, set_(div, "text", "theirs"), key="other:2")  # while page:4 travels
    stored(12, set_(slider, "value", 2))  # page:4
    stored(13, set_(slider, "value", 3))  # page:5, made after v11 arrived
    steps = [
        {"frame": hello(1)},
        {"local": ["slider", "value", 5]},  # page:1
        {"local": ["div", "text", "mine"]},  # page:2
        {"frame": patches(1, v2)},
        {"frame": patches(2, v3)},
        {"frame": patches(3, v4)},  # page:1 comes back after v3: set again
        {"frame": patches(5, v6)},  # a gap: v5 is missing
        {"frame": patches(4, v5, v6)},
        {"frame": hello(6)},  # a reconnect: page:2 is sent again
        {"frame": patches(5, v6, v7)},  # v6 again, then page:2 with its key
        {"local": ["slider", "value", 6]},  # page:3, which the snapshot makes moot
        {"frame": protocol.Snapshot(9, snapshot.content).encode(snapshot.buffers)},
        {"frame": patches(9, v10)},
        {"local": ["slider", "value", 2]},  # page:4
        {"frame": patches(10, v11)},
        {"local": ["slider", "value", 3]},  # page:5: newer than theirs, so not set again
        {"frame": patches(11, (protocol.own_item(12), []))},  # page:4 set again, but for the value page:5 holds
        {"frame": patches(12, (protocol.own_item(13), []))},
        {"frame": hello(13)},
    ]
    return {"bundle": bundle, "version": 1, "steps": steps, "server": server}


# --- the script's side -----------------------------------------------------------------------------


def plain(value):
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return np.asarray(value).tolist()
    return value


def contents(doc: Document) -> dict:
    return {
        "title": doc.title,
        "roots": sorted(root.id for root in doc.roots),
        "models": {model.id: model.__view_model__ for model in doc.models},
        "touched": {name: {attr: plain(getattr(doc.get_model_by_name(name), attr)) for attr in attrs}
                    for name, attrs in TOUCHED.items()},
    }


def replay_in_python(recording) -> tuple[list[dict], Document]:
    header, buffers = wire.unpack(recording["bundle"])
    doc = wire.load_document(header["doc"], buffers)
    doc.models.flush_synced()
    outbox = Outbox()
    outbox._client = CLIENT
    inbox = Inbox(doc, recording["version"], outbox)
    log = {"asked": [], "resent": [], "reports": []}
    states = []
    for step in recording["steps"]:
        if "local" in step:
            name, attr, value = step["local"]
            for event in events_of(doc, partial(setattr, doc.get_model_by_name(name), attr, value)):  # as a link queues them
                serializer = Serializer(references=doc.models.synced_references)
                outbox.put(wire.binary_event(serializer.encode(event), serializer.buffers), serializer.buffers)
            outbox.take()
        else:
            message, buffers = protocol.decode(step["frame"], sender=protocol.SERVER)
            if isinstance(message, protocol.Hello):  # as a link opens: resume, resend
                inbox.window = message.window
                log["asked"].append(inbox.received)
                log["resent"].append([batch.key for batch in outbox.resend()])
            elif (gap := inbox.receive(message, buffers)) is not None:
                log["asked"].append(gap)
            else:
                inbox.apply(*inbox.next(0))
                if report := inbox.report():
                    log["reports"].append(report.version)
        states.append({"version": inbox.version, "received": inbox.received, "reported": inbox.reported,
                       **json.loads(json.dumps(log)), "doc": contents(inbox.doc)})
    return states, doc


# --- the page's side -------------------------------------------------------------------------------

REPLAY_IN_JS = """async ({bundle, version, steps, client, touched}) => {
  const {Inbox} = window.bokehsiteInbox, {Outbox} = window.bokehsiteOutbox;
  const protocol = window.bokehsiteProtocol, {embed} = window.bokehsite;
  const bytes = (list) => new Uint8Array(list).buffer;
  const OUTSIDE = new Set(["DocumentConfig", "Notifications"]);
  const plain = (v) => ArrayBuffer.isView(v) || Array.isArray(v) ? Array.from(v, plain)
    : v instanceof Map ? Object.fromEntries([...v].map(([k, x]) => [k, plain(x)]))
    : v !== null && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)])) : v;
  const contents = (doc) => ({
    title: doc.title(),
    roots: doc.roots().map((root) => root.id).sort(),
    // Python keeps the document's own settings apart from its models.
    models: Object.fromEntries([...doc.all_models].filter((model) => !OUTSIDE.has(model.type)).map((model) => [model.id, model.type])),
    touched: Object.fromEntries(Object.entries(touched).map(([name, attrs]) => {
      const model = doc.get_model_by_name(name);
      return [name, Object.fromEntries(attrs.map((attr) => [attr, plain(model[attr])]))];
    })),
  });

  const element = document.getElementById("doc");
  const first = window.bokehsiteWire.unpack(bytes(bundle));
  const outbox = new Outbox(client);
  const inbox = new Inbox(await embed(element, first.header.doc, first.buffers), version, outbox, (docJson, buffers) => {
    inbox.doc.clear();  // as the viewer draws a snapshot
    return embed(element, docJson, buffers);
  });
  const log = {asked: [], resent: [], reports: []};
  const states = [];
  for (const step of steps) {
    if (step.local) {
      const [name, attr, value] = step.local;
      const events = [];
      const collect = (event) => events.push(...(event.events ?? [event]).filter((e) => e.sync));
      inbox.doc.on_change(collect, true);
      inbox.doc.get_model_by_name(name)[attr] = value;
      inbox.doc.remove_on_change(collect);
      outbox.put(events);
      outbox.take(inbox.doc);
    } else {
      const {message, buffers} = protocol.decode(step.frame.text ?? bytes(step.frame.bytes), "server");
      if (message.type === "hello") {
        inbox.window = message.window;
        log.asked.push(inbox.received);
        log.resent.push(outbox.resend().map((batch) => batch.key));
      } else {
        const gap = inbox.receive(message, buffers);
        if (gap !== null) {
          log.asked.push(gap);
        } else {
          await inbox.apply(...inbox.next());
          const report = inbox.report();
          if (report) log.reports.push(report.version);
        }
      }
    }
    states.push({version: inbox.version, received: inbox.received, reported: inbox.reported,
                 ...JSON.parse(JSON.stringify(log)), doc: contents(inbox.doc)});
  }
  return states;
}"""


def replay_in_js(browser, recording) -> list[dict]:
    page = browser.new_page()
    problems = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    try:
        page.set_content('<!DOCTYPE html><html><body><div id="doc"></div></body></html>')
        for name in ("bokeh.min.js", "bokeh-widgets.min.js"):
            page.add_script_tag(path=str(BOKEHJS / name))
        for name in ("wire.js", "protocol.js", "views.js", "connection.js", "outbox.js", "inbox.js", "viewer.js"):
            page.add_script_tag(path=str(ROOT / "static" / "bokehsite" / name))
        steps = [step if "local" in step else
                 {"frame": {"text": step["frame"]} if isinstance(step["frame"], str) else {"bytes": list(step["frame"])}}
                 for step in recording["steps"]]
        states = page.evaluate(REPLAY_IN_JS, {"bundle": list(recording["bundle"]), "version": recording["version"],
                                              "steps": steps, "client": CLIENT, "touched": TOUCHED})
    finally:
        page.close()
    assert problems == []
    return states


def test_the_page_and_a_script_end_in_the_same_state_after_the_same_frames(browser, recording):
    python, doc = replay_in_python(recording)
    page = replay_in_js(browser, recording)
    for step, (ours, theirs) in enumerate(zip(python, page, strict=True)):
        assert theirs == ours, f"after step {step}: {recording['steps'][step]}"

    assert python[5]["doc"]["touched"]["slider"]["value"] == 5  # ours, set again after theirs (7)
    assert [s["doc"]["touched"]["slider"]["value"] for s in python[-3:]] == [3, 3, 3]  # never page:4's 2 again
    end = python[-1]
    assert (end["version"], end["received"], end["reported"]) == (13, 13, 13)
    assert end["asked"] == [1, 4, 6, 13]  # on open, after the gap, after each reconnect
    assert end["resent"] == [[], [f"{CLIENT}:2"], []]  # page:1 confirmed, page:3 gone with the snapshot
    assert end["reports"] == [3, 6, 11, 13]  # every WINDOW / 2 versions
    assert state(doc) == state(recording["server"])  # the server's document, version 13
