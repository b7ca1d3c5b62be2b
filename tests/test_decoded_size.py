"""Inline base64 arrays (Bokeh's ``to_json(deferred=False)``) decode under the size limit, on every
path: a small body never becomes a large document, and arrays whose dtype or shape disagree with
their bytes are refused."""

import base64
import gzip
import json
import tracemalloc

import numpy as np
import pytest
from bokeh.core.serialization import Serializer
from bokeh.document.events import ColumnsStreamedEvent

from bokehsite import protocol, wire
from documents import replay
from documents.models import Document, Event, Snapshot
from tests.helpers import create, line_document, open_socket, receive, run

pytestmark = pytest.mark.django_db(transaction=True)
BUNDLE = wire.CONTENT_TYPE
LIMIT = 1_000_000


def inline_json(doc):
    """Bokeh's own plain JSON of ``doc``: arrays inline, as base64 of gzip."""
    return json.loads(json.dumps(doc.to_json(deferred=False)))


def bomb(decoded_bytes: int) -> str:
    """Base64 of gzip of zeros: a few kilobytes that decode to ``decoded_bytes``."""
    return base64.b64encode(gzip.compress(bytes(decoded_bytes))).decode()


def arrays(node):
    """Every ndarray representation inside ``node``."""
    found, stack = [], [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("type") == "ndarray":
                found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def bombed_document(decoded_bytes: int = 20 * LIMIT):
    """A document whose first array decodes to ``decoded_bytes`` of float64 zeros."""
    doc_json = inline_json(line_document(10))
    array = arrays(doc_json)[0]
    array["array"]["data"] = bomb(decoded_bytes)
    array["shape"] = [decoded_bytes // 8]
    return doc_json


def inline_stream(doc, source_id, n=5, data=None):
    """A PATCH-DOC that streams ``n`` points, its arrays inline (base64), as plain JSON."""
    source = doc.get_model_by_id(source_id)
    event = ColumnsStreamedEvent(doc, source, "data", {"x": np.arange(n, dtype=float), "y": np.ones(n)}, None)
    patch = json.loads(json.dumps({"events": [Serializer(references=doc.models, deferred=False).encode(event)]}))
    if data is not None:
        array = arrays(patch)[0]
        array["array"]["data"] = data
        array["shape"] = [len(gzip.decompress(base64.b64decode(data))) // 8]
    return patch


@pytest.fixture
def limit(settings):
    settings.BOKEHSITE_MAX_BODY_BYTES = LIMIT
    return LIMIT


@pytest.fixture
def stored(api):
    doc = line_document(10)
    created = create(api, doc=doc)
    source = doc.get_model_by_name("ex_line").data_source.id
    return created["id"], doc, source


def stored_state(document_id):
    document = Document.objects.get(pk=document_id)
    return document.version, [(s.version, s.doc, bytes(s.buffers)) for s in document.snapshots.all()], Event.objects.count()


def assert_too_large(response, field):
    assert response.status_code == 413, response.content
    body = response.json()
    assert (body["error"], body["field"]) == ("too_large", field)
    assert f"{LIMIT} bytes" in body["detail"]


def test_a_document_with_inline_arrays_is_stored_with_its_arrays_as_binary(api):
    doc = line_document(10)
    response = api.post("/api/documents/", {"title": "inline", "doc": inline_json(doc)}, format="json")
    assert response.status_code == 201, response.content
    snapshot = Snapshot.objects.get(document_id=response.json()["id"])
    assert all(a["array"]["data"].keys() == {"id"} for a in arrays(snapshot.doc))  # no base64 stored
    stored = replay.build(snapshot).get_model_by_name("ex_line").data_source.data
    assert stored["y"].tolist() == doc.get_model_by_name("ex_line").data_source.data["y"].tolist()


def test_a_compression_bomb_in_a_json_document_is_refused_before_it_is_decoded(api, limit):
    body = json.dumps({"title": "bomb", "doc": bombed_document(100 * LIMIT)})
    assert len(body) < LIMIT / 5
    tracemalloc.start()
    try:
        response = api.generic("POST", "/api/documents/", body, content_type="application/json")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert_too_large(response, "doc")
    assert peak < 10 * LIMIT  # decoding stopped at the limit, far below the 100 MB it unpacks to
    assert not Document.objects.exists()


def test_a_compression_bomb_in_a_bundle_header_is_refused(api, limit):
    body = wire.pack({"title": "bomb", "doc": bombed_document()})
    assert_too_large(api.generic("POST", "/api/documents/", body, content_type=BUNDLE), "doc")
    assert not Document.objects.exists()


@pytest.mark.parametrize("as_bundle", [False, True])
def test_a_compression_bomb_does_not_replace_a_document(api, stored, limit, as_bundle):
    document_id = stored[0]
    before = stored_state(document_id)
    if as_bundle:
        response = api.generic("PUT", f"/api/documents/{document_id}/doc/", wire.pack({"doc": bombed_document()}),
                               content_type=BUNDLE)
    else:
        response = api.put(f"/api/documents/{document_id}/doc/", {"doc": bombed_document()}, format="json")
    assert_too_large(response, "doc")
    assert stored_state(document_id) == before


@pytest.mark.parametrize("as_bundle", [False, True])
def test_a_compression_bomb_in_a_posted_change_is_refused(api, stored, limit, as_bundle):
    document_id, doc, source = stored
    before = stored_state(document_id)
    patch = inline_stream(doc, source, data=bomb(20 * LIMIT))
    if as_bundle:
        response = api.generic("POST", f"/api/documents/{document_id}/events/", wire.pack({"patch": patch}),
                               content_type=BUNDLE)
    else:
        response = api.post(f"/api/documents/{document_id}/events/", {"patch": patch}, format="json")
    assert_too_large(response, "patch")
    assert stored_state(document_id) == before


def test_a_compression_bomb_over_the_websocket_gets_an_error_and_the_connection_stays(api, stored, limit):
    document_id, doc, source = stored
    before = stored_state(document_id)

    async def scenario():
        socket, hello = await open_socket(protocol.path(document_id))
        assert hello["max_message"] == LIMIT
        await socket.send_to(text_data=protocol.Patch(id=5, patch=inline_stream(doc, source, data=bomb(20 * LIMIT))).encode())
        error = await receive(socket)
        assert (error["type"], error["code"], error["field"], error["id"]) == ("error", "too_large", "patch", 5)
        await socket.send_to(text_data=protocol.Patch(id=6, patch=inline_stream(doc, source, n=3)).encode())
        assert await receive(socket) == {"type": "ack", "id": 6, "version": 2}
        await socket.disconnect()

    run(scenario)
    version, snapshots, events = stored_state(document_id)
    assert (version, snapshots, events) == (before[0] + 1, before[1], before[2] + 1)


def test_a_change_with_inline_arrays_is_stored_with_binary_buffers(api, stored):
    document_id, doc, source = stored
    response = api.post(f"/api/documents/{document_id}/events/", {"patch": inline_stream(doc, source, n=4)}, format="json")
    assert response.status_code == 201, response.content
    event = Event.objects.get()
    assert all(a["array"]["data"].keys() == {"id"} for a in arrays(event.patch))
    assert [np.frombuffer(b.data).tolist() for b in event.buffer_list()] == [[0, 1, 2, 3], [1, 1, 1, 1]]


def test_arrays_decode_within_the_limit_all_together(api, limit):
    doc_json = inline_json(line_document(10))
    for array in arrays(doc_json):  # each alone under the limit, together over it
        array["array"]["data"] = bomb(LIMIT // 2 + 8)
        array["shape"] = [(LIMIT // 2 + 8) // 8]
    response = api.post("/api/documents/", {"title": "two halves", "doc": doc_json}, format="json")
    assert_too_large(response, "doc")


@pytest.mark.parametrize("change, detail", [
    (lambda a: a.update(shape=[10_000_000]), "shape is [10000000], but the data holds 10 float64 items"),
    (lambda a: a.update(shape=[2, 3]), "but the data holds 10 float64 items"),
    (lambda a: a.update(shape=[-1]), "shape must be a list of at most 32 sizes"),
    (lambda a: a.update(dtype="U100000"), "dtype must be one of"),
    (lambda a: a.update(dtype="int32", shape=[10]), "but the data holds 20 int32 items"),
    (lambda a: a.update(dtype={"kind": "f"}), "dtype must be a string"),
    (lambda a: a.update(order="middle"), "order must be"),
    (lambda a: a.update(array=["a"] * 10, dtype="U100000"), "dtype must be one of"),
    (lambda a: a["array"].update(data=base64.b64encode(b"not gzip").decode()), "is base64 but not of gzip data"),
    (lambda a: a["array"].update(data="%%% not base64"), "is not base64 text"),
    (lambda a: a["array"].update(data=base64.b64encode(gzip.compress(bytes(80))[:-9]).decode()), "not one whole gzip"),
    (lambda a: a["array"].update(data=7), 'must be a buffer reference {"id": ID} or base64 text'),
])
def test_an_array_whose_dtype_or_shape_disagree_with_its_data_is_refused_naming_it(api, change, detail):
    doc_json = inline_json(line_document(10))
    change(arrays(doc_json)[0])
    response = api.post("/api/documents/", {"title": "x", "doc": doc_json}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert (body["error"], body["field"]) == ("invalid_document", "doc")
    assert detail in body["detail"] and "doc.roots[0].attributes" in body["detail"]
    assert not Document.objects.exists()


def test_a_bundle_buffer_whose_length_disagrees_with_its_shape_is_refused(api):
    serialized = wire.document_json(line_document(10))
    buffers = [type(b)(b.id, bytes(b.data)[:-8]) for b in serialized.buffers]
    response = api.generic("POST", "/api/documents/", wire.pack({"title": "x", "doc": serialized.content}, buffers),
                           content_type=BUNDLE)
    assert response.status_code == 400 and "but the data holds 9 float64 items" in response.json()["detail"]

