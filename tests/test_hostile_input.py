"""Hostile input gets a 4xx with the error envelope, or over the websocket an ``error`` message on a
connection that stays open; never a 500, a close 1011 or a traceback in the log, and nothing
stored changes."""

import json
import logging

import pytest
from channels.db import database_sync_to_async

from accounts.users import default_user
from bokehsite import protocol, wire
from documents import services
from documents.models import Document, Event
from tests.helpers import (
    append_frame, bundle_body, create, line_document, open_socket, plain, receive, run, stored_line, stream_patch,
)

pytestmark = pytest.mark.django_db(transaction=True)
BUNDLE = wire.CONTENT_TYPE


@pytest.fixture(autouse=True)
def no_traceback_logged(caplog):
    caplog.set_level(logging.WARNING)
    yield
    tracebacks = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not tracebacks, [r.getMessage() for r in tracebacks]


def seed_json():
    return json.loads(json.dumps(line_document().to_json(deferred=False)))


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def raw_bundle(header: bytes) -> bytes:
    return wire._HEAD.pack(wire.MAGIC, len(header)) + header


def assert_refused(response, status, code, field):
    assert response.status_code == status, response.content
    body = response.json()
    assert (body["error"], body["field"]) == (code, field), body
    assert body["detail"]


def with_root(**changes):
    doc = seed_json()
    doc["roots"][0].update(changes)
    return doc


def with_attribute(name, value):
    doc = seed_json()
    doc["roots"][0]["attributes"][name] = value
    return doc


@pytest.mark.parametrize("body, code", [
    (nested(5000), "malformed_json"),
    ('{"title": "x", "doc": ' + nested(5000) + "}", "malformed_json"),
    ('{"title": "x", "doc": ' + nested(950) + "}", "malformed_json"),  # parses, but DRF recursed on it
    ('{"title": "x", "doc": ' + "9" * 5000 + "}", "malformed_json"),
    ('{"title": NaN, "doc": {}}', "malformed_json"),
    ('{"title": "x", "doc": {"roots": [Infinity]}}', "malformed_json"),
])
def test_json_bodies_nested_too_deep_or_not_json_are_malformed(api, body, code):
    assert_refused(api.generic("POST", "/api/documents/", body, content_type="application/json"), 400, code, "body")
    assert not Document.objects.exists()


@pytest.mark.parametrize("header", [
    nested(5000).encode(),
    b'{"title": "x", "doc": ' + nested(5000).encode() + b"}",
    b'{"title": "x", "doc": {"roots": [NaN]}}',
])
def test_bundle_headers_nested_too_deep_or_not_json_are_malformed(api, header):
    response = api.generic("POST", "/api/documents/", raw_bundle(header), content_type=BUNDLE)
    assert_refused(response, 400, "malformed_bundle", "body")


@pytest.mark.parametrize("doc, detail", [
    (with_attribute("tags", json.loads(nested(200))), "nests more than 200 levels deep"),
    (with_attribute("tags", [json.loads(nested(197))]), "nests more than 200 levels deep"),
    (with_root(name={"a": 1}), "must be a model type name"),
    (with_root(name=["Plot"]), "must be a model type name"),
    (with_root(name=7), "must be a model type name"),
    (with_root(id={"an": "object"}), "must be a string"),
    (with_root(attributes=[1, 2]), "must be an object"),
    (with_attribute("width", 10**400), "is an integer beyond"),
    (with_attribute("tags", ["NUL \x00"]), "NUL"),
    (with_attribute("tags", ["\ud800"]), "unpaired surrogate"),
    (with_attribute("tags", [{"type": {"a": 1}}]), "type must be a string"),
    (with_attribute("tags", [{"id": ["p1"]}]), "must be a string"),
    (with_attribute("tags", [{"type": "number", "value": "big"}]), "Bokeh cannot load it"),
    ({**seed_json(), "title": {"a": 1}}, "'title' must be a string"),
    ({**seed_json(), "version": 3.9}, "'version' must be a string"),
    ({**seed_json(), "callbacks": [1]}, "'callbacks' must map"),
    ({**seed_json(), "callbacks": {"document_ready": [{"id": "p1001"}]}}, "Bokeh cannot load it"),
    ({**seed_json(), "callbacks": {"no_such_event": []}}, "Bokeh cannot load it"),
])
def test_documents_bokeh_would_choke_on_are_invalid_naming_where(api, doc, detail):
    body = json.dumps({"title": "x", "doc": doc})  # ASCII, with escapes for what UTF-8 cannot hold
    response = api.generic("POST", "/api/documents/", body, content_type="application/json")
    assert_refused(response, 400, "invalid_document", "doc")
    assert detail in response.json()["detail"]
    assert not Document.objects.exists()


def test_the_same_document_in_a_bundle_is_invalid_too(api):
    header = json.dumps({"title": "x", "doc": with_root(name={"a": 1})}).encode()
    assert_refused(api.generic("POST", "/api/documents/", raw_bundle(header), content_type=BUNDLE), 400,
                   "invalid_document", "doc")


@pytest.mark.parametrize("title", [{"a": 1}, ["t"], 10**400, "t" * 201, "", "a\x00b"])
def test_a_title_that_is_not_a_short_string_is_invalid_everywhere(api, title):
    assert_refused(api.post("/api/documents/", {"title": title, "doc": seed_json()}, format="json"), 400, "invalid", "title")
    header = json.dumps({"title": title, "doc": seed_json()}).encode()
    assert_refused(api.generic("POST", "/api/documents/", raw_bundle(header), content_type=BUNDLE), 400, "invalid", "title")
    created = create(api)
    response = api.patch(f"/api/documents/{created['id']}/", {"title": title}, format="json")
    assert_refused(response, 400, "invalid", "title")
    assert Document.objects.get().title == "line"


def test_a_replacement_bokeh_would_choke_on_leaves_the_document_unchanged(api):
    created = create(api)
    for doc in (with_root(name={"a": 1}), with_attribute("tags", json.loads(nested(200))), with_attribute("width", 10**400)):
        assert_refused(api.put(f"/api/documents/{created['id']}/doc/", {"doc": doc}, format="json"), 400,
                       "invalid_document", "doc")
    assert Document.objects.get().version == 1 and not Event.objects.exists()


def change(source, **event):
    return {"events": [{"model": {"id": source}, **event}]}


@pytest.fixture
def stored():
    return stored_line(default_user())


def as_text(message) -> str:
    """JSON text, with a number json.dumps does not write: 1e400, too large for a float."""
    return json.dumps(message).replace('"1e400 as a number"', "1e400")


def bad_patches(source):
    return [
        ({"events": [{"kind": ["ModelChanged"]}]}, "unsupported event kind 'list'"),
        ({"events": [{"kind": {"a": 1}}]}, "unsupported event kind 'dict'"),
        (change(source, kind="ModelChanged", attr={"a": 1}, new=1), "attr must be an attribute name"),
        ({"events": [{"kind": "ModelChanged", "model": {"id": {"a": 1}}, "attr": "name", "new": "n"}]}, "model must be"),
        (change(source, kind="ModelChanged", attr="tags", new=json.loads(nested(200))), "nests more than 200 levels"),
        (change(source, kind="ModelChanged", attr="tags", new=[10**400]), "is an integer beyond"),
        (change(source, kind="ModelChanged", attr="tags", new=["1e400 as a number"]), "is not a finite number"),
        (change(source, kind="ModelChanged", attr="name", new=["not", "a", "name"]), "Bokeh cannot apply it"),
        (change(source, kind="ColumnDataChanged", attr="data", new=None, data=5), "has no member 'new'"),
        (change(source, kind="ColumnDataChanged", attr="data", data=5), "Bokeh cannot apply it"),
        (change(source, kind="ColumnsStreamed", attr="selected", data={}), "attr must be \"data\""),
        (change(source, kind="ModelChanged", attr="tags",
                new=[{"type": "bytes", "data": "bm90IGd6aXA="}]), "is base64 but not of gzip data"),
        ({"events": [{"kind": "TitleChanged", "title": {"a": 1}}]}, "title must be a string"),
        ({"events": [{"kind": "RootAdded", "model": {"type": "object", "name": {"a": 1}, "id": "r"}}]},
         "must be a model type name"),
        ({"events": [{"kind": "RootAdded", "model": {"type": "object", "name": "NotAModel", "id": "r"}}]},
         "unknown Bokeh model type 'NotAModel'"),
    ]


def test_changes_bokeh_would_choke_on_are_refused_over_rest(api, stored):
    document, _, source = stored
    for patch, detail in bad_patches(source):
        body = as_text({"patch": patch})
        response = api.generic("POST", f"/api/documents/{document.id}/events/", body, content_type="application/json")
        if "1e400" in body:  # DRF's JSONField refuses a number that is not finite itself
            assert_refused(response, 400, "invalid", "patch")
            continue
        assert_refused(response, 400, "invalid_patch", "patch")
        assert detail in response.json()["detail"], response.json()
    assert not Event.objects.exists()


def test_changes_bokeh_would_choke_on_get_an_error_each_and_the_connection_stays(stored):
    document, doc, source = stored

    async def scenario():
        socket, _ = await open_socket(protocol.path(document.id))
        for i, (patch, detail) in enumerate(bad_patches(source)):
            await socket.send_to(text_data=as_text({"type": "patch", "id": i, "patch": patch}))
            error = await receive(socket)
            assert (error["type"], error["code"], error["field"], error["id"]) == ("error", "invalid_patch", "patch", i)
            assert detail in error["detail"]
        await socket.send_to(bytes_data=append_frame(doc, source, [6], [1], request_id="fine"))
        assert await receive(socket) == {"type": "ack", "id": "fine", "version": 2}
        await socket.disconnect()

    run(scenario)
    assert Event.objects.count() == 1


@pytest.mark.parametrize("send, code", [
    ({"text_data": nested(100_000)}, "malformed_json"),
    ({"bytes_data": raw_bundle(nested(100_000).encode())}, "malformed_bundle"),
    ({"text_data": '{"type": "ping", "id": ' + "9" * 5000 + "}"}, "malformed_json"),
    ({"bytes_data": raw_bundle(b'{"type": "ping", "id": ' + b"9" * 5000 + b"}")}, "malformed_bundle"),
    ({"text_data": '{"type": "sync", "version": NaN}'}, "malformed_json"),
    ({"text_data": '{"type": "patch", "id": 1, "key": "k\\u0000", "patch": {"events": []}}'}, "bad_message"),
    ({"text_data": '{"type": "patch", "id": 1, "key": "\\ud800", "patch": {"events": []}}'}, "bad_message"),
    ({"text_data": '{"type": "patch", "id": 1, "patch": {"events": [{"kind": "TitleChanged", "title": "t"}]}, "junk": '
                   + nested(220) + "}"}, "malformed_json"),
])
def test_frames_that_are_not_messages_get_an_error_and_the_connection_stays(stored, send, code):
    document, _, _ = stored

    async def scenario():
        socket, _ = await open_socket(protocol.path(document.id))
        await socket.send_to(**send)
        error = await receive(socket)
        assert (error["type"], error["code"]) == ("error", code)
        await socket.send_json_to({"type": "ping", "id": "still there?"})
        assert await receive(socket) == {"type": "pong", "id": "still there?"}
        await socket.disconnect()

    run(scenario)
    assert not Event.objects.exists()


def test_messages_about_a_deleted_document_are_answered_not_found(stored):
    document, doc, source = stored

    async def scenario():
        socket, _ = await open_socket(protocol.path(document.id))
        await socket.send_to(bytes_data=append_frame(doc, source, [6], [1], request_id=1))
        assert (await receive(socket))["type"] == "ack"
        await socket.send_json_to({"type": "sync", "version": 2})
        await socket.send_json_to({"type": "ping", "id": "synced"})
        assert await receive(socket) == {"type": "pong", "id": "synced"}
        await database_sync_to_async(services.delete_document)(document)
        await socket.send_to(bytes_data=append_frame(doc, source, [7], [1], request_id=2))
        await socket.send_json_to({"type": "sync", "version": 1})
        # Whatever reaches the consumer before it hears of the deletion is answered not_found;
        # then it is told the document is gone and closed, as every connection of it is.
        answers = []
        while (output := await socket.receive_output(5))["type"] == "websocket.send":
            answers.append(json.loads(output["text"]))
        assert output["code"] == 4404
        assert answers and {(a["type"], a["code"]) for a in answers} == {("error", "not_found")}
        assert answers[-1]["id"] is None

    run(scenario)
    assert not Document.objects.exists()


def test_changes_that_link_models_into_a_chain_deeper_than_the_bound_are_refused(api):
    created = create(api)
    document_id = created["id"]
    header, _ = wire.unpack(api.get(f"/api/documents/{document_id}/doc/", HTTP_ACCEPT=BUNDLE).content)
    plot = header["doc"]["roots"][0]["id"]
    answers = []
    for k in range(160):  # each change is shallow, and links one more callback to the chain
        args = {"type": "map", "entries": [["previous", {"id": f"chain{k - 1}"}]] if k else []}
        link = {"type": "object", "name": "CustomJS", "id": f"chain{k}", "attributes": {"args": args, "code": ""}}
        patch = {"events": [{"kind": "ModelChanged", "model": {"id": plot}, "attr": "tags", "new": [link]}]}
        response = api.post(f"/api/documents/{document_id}/events/", {"patch": patch}, format="json")
        answers.append((response.status_code, response.json().get("error")))
        if answers.count((400, "invalid_patch")) == 3:
            break
    accepted = answers.count((201, None))
    assert 30 < accepted < 45 and answers[:accepted] == [(201, None)] * accepted
    assert set(answers[accepted:]) == {(400, "invalid_patch")}
    response = api.get(f"/api/documents/{document_id}/doc/", HTTP_ACCEPT=BUNDLE)  # still readable
    assert response.status_code == 200 and response["X-Document-Version"] == str(1 + accepted)
    header, buffers = wire.unpack(response.content)
    assert not wire.nesting_exceeds(header["doc"], 200)
    assert wire.load_document(header["doc"], buffers).get_model_by_id(f"chain{accepted - 1}") is not None


def test_nul_in_a_url_is_refused_instead_of_failing_the_query(api):
    """PostgreSQL refuses text with NUL; no title or username holds one."""
    created = create(api)
    response = api.get("/api/documents/?title=line%00")
    assert_refused(response, 400, "invalid", "title")
    response = api.delete(f"/api/documents/{created['id']}/collaborators/bob%00/")
    assert_refused(response, 404, "user_not_found", "username")


def test_deeply_laid_out_real_documents_fit_the_nesting_bound_easily(api):
    from bokeh.document import Document as BokehDocument
    from bokeh.layouts import column, gridplot, row
    from bokeh.models import Div, Slider, TabPanel, Tabs
    from bokeh.plotting import figure

    def plot():
        p = figure(width=150, height=150)
        p.line([1, 2, 3], [3, 1, 2])
        return p

    nested = plot()
    for _ in range(10):  # ten layouts deep, each a row in a column
        nested = column(row(nested, Div(text="x")), Slider(start=0, end=1, value=0, step=0.1))
    tabs = [Tabs(tabs=[TabPanel(child=column(plot(), row(plot(), column(nested if i == 0 else plot()))), title="tab")])
            for i in range(2)]
    doc = BokehDocument()
    doc.add_root(gridplot([[tabs[0], tabs[1]]]))  # a grid of tabs of columns, holding all that
    content = wire.document_json(doc).content
    assert wire.nesting_exceeds(content, 90) and not wire.nesting_exceeds(content, 110)  # about half the bound
    created = api.post("/api/documents/", bundle_body(doc, title="deep"), content_type=BUNDLE)
    assert created.status_code == 201, created.content
    header, buffers = wire.unpack(api.get(f"/api/documents/{created.json()['id']}/doc/", HTTP_ACCEPT=BUNDLE).content)
    assert len(wire.load_document(header["doc"], buffers).models) == len(doc.models)


def test_only_changes_that_can_link_models_make_the_whole_document_be_checked(stored):
    """Checking how deep Bokeh writes the document costs a serialization: streams never need it."""
    from documents import bokeh_json

    _, doc, source = stored
    assert not bokeh_json.links_models(plain(*stream_patch(doc, source, [1.0], [2.0]))[0])
    assert not bokeh_json.links_models(change(source, kind="ModelChanged", attr="name", new="n"))
    assert bokeh_json.links_models(change(source, kind="ModelChanged", attr="tags", new=[{"id": source}]))
    assert bokeh_json.links_models({"events": [{"kind": "RootAdded", "model": {"id": source}}]})
