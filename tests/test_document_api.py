"""Creating, reading, replacing, renaming and deleting documents through the REST API."""

import json

import numpy as np
import pytest
from bokeh.core.serialization import Serialized
from bokeh.document import Document as BokehDocument
from django.contrib.auth import get_user_model

from bokehsite import wire
from documents import services
from documents.models import Document
from tests.helpers import bundle_body, create, line_document

pytestmark = pytest.mark.django_db
BUNDLE = wire.CONTENT_TYPE


def fetch(api, document_id):
    response = api.get(f"/api/documents/{document_id}/doc/", HTTP_ACCEPT=BUNDLE)
    assert response.status_code == 200, response.content
    header, buffers = wire.unpack(response.content)
    return BokehDocument.from_json(Serialized(header["doc"], buffers)), response


def test_it_creates_a_document_from_a_bundle(api):
    body = create(api)
    assert body["title"] == "line" and body["version"] == 1 and body["owner"] == "defaultuser"
    assert body["url"].endswith(f"/documents/{body['id']}/")
    stored = Document.objects.get(pk=body["id"])
    assert stored.owner.username == "defaultuser"
    doc, _ = fetch(api, body["id"])
    assert doc.get_model_by_name("ex_line").data_source.data["y"].tolist() == [6, 7, 2, 4, 5]


def test_it_creates_a_document_from_plain_json_and_stores_columns_as_binary(api):
    doc_json = json.loads(json.dumps(line_document().to_json(deferred=False)))
    response = api.post("/api/documents/", {"title": "plain", "doc": doc_json}, format="json")
    assert response.status_code == 201, response.content
    stored = Document.objects.get(pk=response.json()["id"])
    snapshot = stored.snapshots.get()
    assert "[6, 7, 2, 4, 5]" not in json.dumps(snapshot.doc)
    assert len(snapshot.buffer_list()) == 2
    assert services.load_bokeh_document(stored).get_model_by_name("ex_line").data_source.data["x"].tolist() == [1, 2, 3, 4, 5]


def test_it_keeps_model_ids(api):
    doc = line_document()
    created = create(api, doc=doc)
    loaded, _ = fetch(api, created["id"])
    assert {m.id for m in loaded.models} == {m.id for m in doc.models}


def test_a_large_document_survives_the_round_trip(api):
    doc = line_document(200_000)
    created = create(api, doc=doc)
    loaded, response = fetch(api, created["id"])
    assert len(response.content) > 2 * 200_000 * 8
    np.testing.assert_array_equal(
        loaded.get_model_by_name("ex_line").data_source.data["y"],
        doc.get_model_by_name("ex_line").data_source.data["y"],
    )


def test_it_lists_the_callers_documents_and_filters_by_title(api):
    create(api, "one")
    create(api, "two")
    other = get_user_model().objects.create(username="someone")
    services.create_document(other, "theirs", *services.bokeh_json.dump(line_document()))
    titles = [d["title"] for d in api.get("/api/documents/").json()]
    assert sorted(titles) == ["one", "two"]
    assert [d["title"] for d in api.get("/api/documents/?title=two").json()] == ["two"]


def test_another_users_private_document_is_not_found(api):
    other = get_user_model().objects.create(username="someone")
    document = services.create_document(other, "theirs", *services.bokeh_json.dump(line_document()))
    for response in (
        api.get(f"/api/documents/{document.id}/"),
        api.get(f"/api/documents/{document.id}/doc/", HTTP_ACCEPT=BUNDLE),
        api.delete(f"/api/documents/{document.id}/"),
    ):
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
    assert Document.objects.filter(pk=document.pk).exists()


def test_replacing_bumps_the_version_and_the_etag(api):
    created = create(api)
    _, first = fetch(api, created["id"])
    response = api.put(f"/api/documents/{created['id']}/doc/", bundle_body(line_document(50)), content_type=BUNDLE)
    assert response.status_code == 200 and response.json()["version"] == 2
    doc, second = fetch(api, created["id"])
    assert len(doc.get_model_by_name("ex_line").data_source.data["x"]) == 50
    assert second["ETag"] != first["ETag"] and second["X-Document-Version"] == "2"


def test_an_unchanged_document_answers_304(api):
    created = create(api)
    _, first = fetch(api, created["id"])
    response = api.get(f"/api/documents/{created['id']}/doc/", HTTP_ACCEPT=BUNDLE, HTTP_IF_NONE_MATCH=first["ETag"])
    assert response.status_code == 304 and response.content == b""


def test_content_is_served_only_as_a_bundle(api):
    created = create(api)
    response = api.get(f"/api/documents/{created['id']}/doc/", HTTP_ACCEPT="application/json")
    assert response.status_code == 406
    assert response.json()["error"] == "not_acceptable"


def test_it_renames_and_refuses_a_taken_title(api):
    one, two = create(api, "one"), create(api, "two")
    response = api.patch(f"/api/documents/{one['id']}/", {"title": "uno"}, format="json")
    assert response.status_code == 200 and response.json()["title"] == "uno"
    response = api.patch(f"/api/documents/{two['id']}/", {"title": "uno"}, format="json")
    assert response.status_code == 409
    assert response.json() == {"error": "title_taken", "detail": "you already have a document titled 'uno'", "field": "title"}
    assert Document.objects.get(pk=two["id"]).title == "two"


def test_creating_a_taken_title_answers_409(api):
    create(api, "line")
    response = api.post("/api/documents/", bundle_body(line_document(), title="line"), content_type=BUNDLE)
    assert response.status_code == 409 and response.json()["field"] == "title"
    assert Document.objects.count() == 1


def test_it_deletes(api):
    created = create(api)
    assert api.delete(f"/api/documents/{created['id']}/").status_code == 204
    assert not Document.objects.exists()
    assert api.get(f"/api/documents/{created['id']}/").status_code == 404
