"""The websocket protocol module: every message builds, travels and parses; the JavaScript twin,
the README and the server agree with it."""

import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from bokeh.core.serialization import Buffer

from bokehsite import protocol, wire
from tests.servers import ROOT

SAMPLES = {
    "hello": protocol.Hello(3, "write", 64),
    "sync": protocol.Sync(None),
    "patches": protocol.Patches(2, 4, [protocol.item(3, {"events": []}, "k:1"), protocol.own_item(4)]),
    "snapshot": protocol.Snapshot(7, {"roots": [], "title": "t"}),
    "applied": protocol.Applied(32),
    "patch": protocol.Patch(id="k:2", patch={"events": [{"kind": "TitleChanged", "title": "x"}]}, key="k:2", base_version=4),
    "ack": protocol.Ack("k:2", 5),
    "error": protocol.Error("version_conflict", "it moved on", "base_version", 9, {"current_version": 6}),
    "role": protocol.Role("read"),
    "ping": protocol.Ping("are you there"),
    "pong": protocol.Pong("are you there"),
    "view": protocol.View(4, "p1001", 0.5, 10, 800, 400, -1.5, 2.0),
    "view_data": protocol.ViewData(4, "p1001", "line", {"x": {"id": "b0"}}, 12_000, 0.5, 10.0),
}


def test_every_message_has_a_sample_here():
    assert set(SAMPLES) == set(protocol.MESSAGES)


@pytest.mark.parametrize("name", list(SAMPLES))
def test_every_message_survives_the_trip_as_text_and_as_a_bundle(name):
    message = SAMPLES[name]
    buffers = [Buffer("b0", np.arange(3, dtype="<f8").tobytes())]
    for sent in (message.encode(), message.encode(buffers)):
        decoded, got = protocol.decode(sent, sender=message.SENDER)
        assert decoded == message
    assert isinstance(message.encode(), bytes) == message.BINARY
    assert got[0].id == "b0" and np.frombuffer(got[0].data, "<f8").tolist() == [0, 1, 2]


@pytest.mark.parametrize("frame, sender, code, field", [
    ('{"type": "hello", "version": 1, "role": "write", "window": 64}', "client", "unknown_message", "type"),
    ('{"type": "sync"}', "client", "bad_message", "version"),
    ('{"type": "sync", "version": -1}', "client", "bad_message", "version"),
    ('{"type": "sync", "version": true}', "client", "bad_message", "version"),
    ('{"type": "applied", "version": 1.5}', "client", "bad_message", "version"),
    ('{"type": "patch", "id": 1, "patch": [], "key": "k"}', "client", "invalid_patch", "patch"),
    ('{"type": "patch", "id": 1, "patch": {}, "key": 7}', "client", "bad_message", "key"),
    ('{"type": "patch", "id": {"an": "object"}, "patch": {}}', "client", "bad_message", "id"),
    ('{"type": "ping", "id": "' + "x" * 101 + '"}', "client", "bad_message", "id"),
    ('{"type": "patches", "from": 1, "version": 2, "items": [{"version": 2}]}', "server", "bad_message", "items"),
    ('{"type": "hello", "version": 1, "role": "admin", "window": 64}', "server", "bad_message", "role"),
    ('[1, 2]', "client", "malformed_json", None),
    ('{"type": ', "client", "malformed_json", None),
    ("[" * 100_000, "client", "malformed_json", None),
    (b"BKS1\x00\x00\x00\xff{}", "client", "malformed_bundle", None),
])
def test_what_is_not_a_message_is_refused_naming_the_field(frame, sender, code, field):
    with pytest.raises(protocol.ProtocolError) as refused:
        protocol.decode(frame, sender=sender)
    assert (refused.value.code, refused.value.field) == (code, field)
    assert refused.value.detail


def test_a_refusal_names_the_request_it_refuses():
    with pytest.raises(protocol.ProtocolError) as refused:
        protocol.decode('{"type": "patch", "id": 12, "patch": {}, "base_version": "two"}', sender="client")
    assert (refused.value.id, refused.value.field) == (12, "base_version")


def test_an_error_carries_the_envelope_of_the_rest_api():
    envelope = {"error": "version_conflict", "detail": "moved on", "field": "base_version", "current_version": 6}
    message = protocol.Error.from_envelope(envelope, id=3)
    assert message.to_json() == {"type": "error", "code": "version_conflict", "detail": "moved on",
                                 "field": "base_version", "id": 3, "current_version": 6}


def test_a_frame_of_several_changes_is_their_patches_message_with_their_buffers_in_order():
    buffers = [Buffer(f"b{i}", np.full(2, i, dtype="<f8").tobytes()) for i in range(3)]
    items = [protocol.item(3, {"events": []}, "k:1"), protocol.own_item(4), protocol.item(5, {"events": []})]
    frame = protocol.Patches.frame(2, 5, [(items[0], buffers[:2]), (items[1], ()), (items[2], buffers[2:])])
    assert frame == protocol.Patches(2, 5, items).encode(buffers)
    assert protocol.own_frame(2, 4) == protocol.Patches(2, 4, [protocol.own_item(3), protocol.own_item(4)]).encode()
    header, got = wire.unpack(protocol.changes_frame({"since": 2}, [({"version": 3}, buffers[1:])]))
    assert header["since"] == 2 and header["items"] == [{"version": 3}] and [b.id for b in got] == ["b1", "b2"]


def test_the_websocket_url_follows_the_server_url():
    assert protocol.url("http://localhost:5006", "abc") == "ws://localhost:5006/ws/documents/abc/"
    assert protocol.url("https://plots.example/team/", "abc") == "wss://plots.example/team/ws/documents/abc/"
    assert protocol.path("abc") == "/ws/documents/abc/"


def test_the_readme_table_is_the_protocol_module():
    readme = (ROOT / "README.md").read_text()
    assert protocol.markdown_table() in readme, "regenerate it: python -m bokehsite.protocol"
    rows = re.findall(r'^\| (?:server →|→ server) \| `\{"type": "(\w+)"', readme, flags=re.M)
    assert rows == list(protocol.MESSAGES)


def test_the_server_does_not_import_the_client():
    code = textwrap.dedent("""
        import os, sys, django
        os.environ["DJANGO_SETTINGS_MODULE"] = "bokehsite.settings"
        django.setup()
        import bokehsite.asgi, bokehsite.urls, documents.api, documents.views, documents.admin, streaming.consumers
        found = [m for m in sys.modules if m.startswith("bokehsite.client")]
        assert not found, found
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# --- the JavaScript twin, in Chromium ------------------------------------------------------------


@pytest.fixture(scope="module")
def js(browser):
    page = browser.new_page()
    page.set_content("<!DOCTYPE html><html><body></body></html>")
    for name in ("wire.js", "protocol.js"):
        page.add_script_tag(path=str(ROOT / "static" / "bokehsite" / name))
    yield page
    page.close()


def as_js(frame):
    return {"text": frame} if isinstance(frame, str) else {"bytes": list(frame)}


FROM_JS = "(f) => f.text !== undefined ? f.text : new Uint8Array(f.bytes).buffer"
TO_PY = "(r) => typeof r === 'string' ? {text: r} : {bytes: Array.from(new Uint8Array(r))}"


def from_js(result):
    return result["text"] if "text" in result else bytes(result["bytes"])


@pytest.mark.browser
def test_javascript_and_python_agree_on_every_message_and_field(js):
    assert js.evaluate("window.bokehsiteProtocol.spec()") == protocol.spec()


@pytest.mark.browser
@pytest.mark.parametrize("name", [n for n, c in protocol.MESSAGES.items() if c.SENDER == "server"])
def test_the_page_reads_what_the_server_sends(js, name):
    frame = SAMPLES[name].encode([Buffer("b0", b"\x01\x02")])
    got = js.evaluate(f"""(f) => {{
        const {{message, buffers}} = window.bokehsiteProtocol.decode(({FROM_JS})(f), "server");
        return {{message, buffer: Array.from(new Uint8Array(buffers.get("b0")))}};
    }}""", as_js(frame))
    assert got == {"message": SAMPLES[name].to_json(), "buffer": [1, 2]}


@pytest.mark.browser
@pytest.mark.parametrize("name", [n for n, c in protocol.MESSAGES.items() if c.SENDER == "client"])
def test_the_server_reads_what_the_page_sends(js, name):
    fields = {k: v for k, v in SAMPLES[name].to_json().items() if k != "type"}
    for with_buffer in (False, True):
        frame = from_js(js.evaluate(f"""([type, fields, withBuffer]) => {{
            const p = window.bokehsiteProtocol;
            const buffers = withBuffer ? new Map([["b0", new Uint8Array([7, 8]).buffer]]) : new Map();
            return ({TO_PY})(p.encode(p.build(type, fields), buffers));
        }}""", [name, fields, with_buffer]))
        message, buffers = protocol.decode(frame, sender="client")
        assert message == SAMPLES[name]
        assert [(b.id, b.data) for b in buffers] == ([("b0", b"\x07\x08")] if with_buffer else [])


@pytest.mark.browser
def test_the_page_refuses_what_the_protocol_refuses(js):
    codes = js.evaluate("""() => ['{"type": "sync"}', '{"type": "hello", "version": 1, "role": "admin", "window": 1}', '[1]', '{"type": "dance"}']
        .map((text) => { try { window.bokehsiteProtocol.decode(text, "server"); return null; } catch (e) { return [e.code, e.field]; } })""")
    assert codes == [["unknown_message", "type"], ["bad_message", "role"], ["malformed_json", None], ["unknown_message", "type"]]
