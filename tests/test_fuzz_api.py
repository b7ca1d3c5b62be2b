"""Fuzzing the REST API's document bodies: whatever a client posts to create a document, replace
it or change it, the answer is a 2xx, or a 4xx with the error envelope; never a 500, and a refused
body changes nothing stored."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accounts.users import default_user
from bokehsite import wire
from documents.models import Document
from tests.helpers import line_document, plain, store, stream_patch
from tests.strategies import DEEP_TEXT, FUZZ, GARBAGE_BYTES, JSON, Shown, bundle, json_text, mutated

pytestmark = pytest.mark.django_db(transaction=True)
BUNDLE = wire.CONTENT_TYPE


def stored_state():
    return [(d.id, d.title, d.version, [(s.version, s.doc, bytes(s.buffers)) for s in d.snapshots.all()],
             [(e.version, e.patch, bytes(e.buffers)) for e in d.events.all()]) for d in Document.objects.order_by("id")]


_seeded: dict = {}


def seed():
    """The document every example of a run works on, and valid bodies for each endpoint, made once
    so that every example draws from the same ones (Hypothesis replays and shrinks examples)."""
    document = _seeded.get("document")
    if document is not None and Document.objects.filter(pk=document.pk).exists():
        return document, _seeded["valid"]
    doc = line_document(10)
    document = store(default_user(), "fuzzed", doc)
    source = doc.get_model_by_name("ex_line").data_source.id
    inline = json.loads(json.dumps(doc.to_json(deferred=False)))
    serialized = wire.document_json(doc)
    header, doc_buffers = wire.unpack(wire.pack({"doc": serialized.content}, serialized.buffers))
    patch, buffers = plain(*stream_patch(doc, source, [6.0], [1.0]))
    _seeded.update(document=document, valid={
        "create": ({"title": "new", "doc": inline}, (header["doc"], doc_buffers)),
        "replace": ({"doc": inline}, (header["doc"], doc_buffers)),
        "change": ({"patch": {"events": [{"kind": "ModelChanged", "model": {"id": source}, "attr": "name", "new": "n"}]},
                    "base_version": None}, (patch, buffers)),
    })
    return document, _seeded["valid"]


@st.composite
def requests(draw, document, valid):
    """One request a hostile or broken client might make: method, path, body, content type."""
    endpoint = draw(st.sampled_from(["create", "replace", "change"]))
    method, path = {"create": ("POST", "/api/documents/"), "replace": ("PUT", f"/api/documents/{document.id}/doc/"),
                    "change": ("POST", f"/api/documents/{document.id}/events/")}[endpoint]
    as_json, (content, buffers) = valid[endpoint]
    kind = draw(st.sampled_from(["mutated json", "mutated json", "mutated bundle", "mutated bundle", "json", "garbage", "deep"]))
    if kind == "mutated json":
        body, content_type = json_text(draw(mutated(as_json))), "application/json"
    elif kind == "mutated bundle":
        key = "patch" if endpoint == "change" else "doc"
        header = draw(mutated({**({"title": "new"} if endpoint == "create" else {}), key: content}))
        index = draw(st.none() | st.none() | JSON)
        body, content_type = bundle(header, [(b.id, bytes(b.data)) for b in buffers], index=index), BUNDLE
    elif kind == "json":
        value = draw(JSON)
        body, content_type = (json_text(value), "application/json") if draw(st.booleans()) else (bundle(value), BUNDLE)
    elif kind == "garbage":
        body, content_type = draw(GARBAGE_BYTES), draw(st.sampled_from([BUNDLE, "application/json"]))
    else:
        deep = draw(DEEP_TEXT)
        body, content_type = (deep, "application/json") if draw(st.booleans()) else (
            wire._HEAD.pack(wire.MAGIC, len(deep)) + deep.encode(), BUNDLE)
    return Shown(method=method, path=path, data=body, content_type=content_type)


@FUZZ
@given(data=st.data())
def test_no_document_body_gets_a_500_or_changes_what_is_stored_when_refused(api, data):
    document, valid = seed()
    request = data.draw(requests(document, valid), label="request")
    before = stored_state()
    response = api.generic(request["method"], request["path"], request["data"], content_type=request["content_type"])
    assert response.status_code < 500, response.content[:500]
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body["error"], str) and isinstance(body["detail"], str) and "field" in body, body
        assert stored_state() == before, f"a refused request changed what is stored: {body}"
    else:
        assert response.status_code in (200, 201), response.content[:500]
