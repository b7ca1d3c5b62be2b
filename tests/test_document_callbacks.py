"""A document's own JavaScript callbacks (``doc.js_on_event(DocumentReady, CustomJS(...))``) are part
of it: they are stored, read back, kept through changes and snapshots, and run in the page."""

import pytest
from bokeh.events import DocumentReady
from bokeh.models import CustomJS

from bokehsite import wire
from bokehsite.client import Session
from tests.helpers import COUNT_PIXELS, LINE_BLUE, bundle_body, line_document, open_plot, plain, stream_patch

BUNDLE = wire.CONTENT_TYPE
TURN_RED = "glyph.line_color = 'red'"


def ready_document():
    """The seed's line, with a document callback that turns it red once the page is ready."""
    doc = line_document()
    glyph = doc.get_model_by_name("ex_line").glyph
    doc.js_on_event(DocumentReady, CustomJS(args={"glyph": glyph}, code=TURN_RED))
    return doc


def stored_callback(api, document_id, **query):
    response = api.get(f"/api/documents/{document_id}/doc/", query, HTTP_ACCEPT=BUNDLE)
    header, buffers = wire.unpack(response.content)
    assert [event for event, _ in header["doc"]["callbacks"]["entries"]] == ["document_ready"]
    doc = wire.load_document(header["doc"], buffers)
    (callback,) = doc.callbacks.js_event_callbacks["document_ready"]
    return callback, doc


@pytest.mark.django_db
def test_a_documents_own_callback_is_stored_and_read_back(api):
    doc = ready_document()
    response = api.post("/api/documents/", bundle_body(doc, title="ready"), content_type=BUNDLE)
    assert response.status_code == 201, response.content
    callback, stored = stored_callback(api, response.json()["id"])
    assert isinstance(callback, CustomJS) and callback.code == TURN_RED
    assert callback.args["glyph"] is stored.get_model_by_name("ex_line").glyph  # the same model, not a copy


@pytest.mark.django_db
def test_it_survives_changes_snapshots_and_a_replacement(api, settings):
    settings.BOKEHSITE_SNAPSHOT_EVERY = 1
    doc = ready_document()
    document_id = api.post("/api/documents/", bundle_body(doc, title="ready"), content_type=BUNDLE).json()["id"]
    source = doc.get_model_by_name("ex_line").data_source.id
    patch, buffers = plain(*stream_patch(doc, source, [6], [1]))
    response = api.generic("POST", f"/api/documents/{document_id}/events/", wire.pack({"patch": patch}, buffers),
                           content_type=BUNDLE)
    assert response.status_code == 201
    assert stored_callback(api, document_id)[0].code == TURN_RED  # from the snapshot folded after the change
    assert stored_callback(api, document_id, version=1)[0].code == TURN_RED
    replacement = ready_document()
    replacement.callbacks.js_event_callbacks["document_ready"][0].code = "glyph.line_width = 5"
    response = api.generic("PUT", f"/api/documents/{document_id}/doc/", bundle_body(replacement), content_type=BUNDLE)
    assert response.status_code == 200
    assert stored_callback(api, document_id)[0].code == "glyph.line_width = 5"


@pytest.mark.browser
@pytest.mark.daphne
@pytest.mark.django_db(transaction=True)
def test_the_callback_runs_in_the_sandboxed_frame_when_the_document_is_ready(live_server_url, page):
    with Session(live_server_url) as session:
        session.use_doc("turns red")
        info = session.push(ready_document())
        frame = open_plot(page, info["url"])
        frame.wait_for_function(f"(rgb) => ({COUNT_PIXELS})(rgb) > 200", arg=[255, 0, 0], timeout=10_000)
        assert frame.evaluate(COUNT_PIXELS, list(LINE_BLUE)) == 0
        assert page.problems == []
        loaded = session.load_document("turns red")  # and the client reads it back with its callback
    assert loaded.callbacks.js_event_callbacks["document_ready"][0].code == TURN_RED
