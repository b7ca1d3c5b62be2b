"""The REST side of live documents: post a change, read changes since a version, read history."""

import pytest
from bokeh.core.serialization import Serialized
from bokeh.document import Document as BokehDocument

from bokehsite import wire
from documents.models import Event
from tests.helpers import line_document
from tests.helpers import stream_patch
from tests.helpers import create

pytestmark = pytest.mark.django_db
BUNDLE = wire.CONTENT_TYPE


@pytest.fixture
def document(api):
    doc = line_document()
    created = create(api, doc=doc)
    return created["id"], doc, doc.get_model_by_name("ex_line").data_source.id


def document_at(api, document_id, version):
    response = api.get(f"/api/documents/{document_id}/doc/?version={version}", HTTP_ACCEPT=BUNDLE)
    assert response.status_code == 200 and response["X-Document-Version"] == str(version)
    header, buffers = wire.unpack(response.content)
    return BokehDocument.from_json(Serialized(header["doc"], buffers))


def post_append(api, document_id, doc, source, x, y, **extra):
    patch, buffers = stream_patch(doc, source, x, y)
    body = wire.pack({"patch": patch, **extra}, buffers)
    return api.generic("POST", f"/api/documents/{document_id}/events/", body, content_type=BUNDLE)


def test_posting_a_change_answers_the_new_version(api, document):
    document_id, doc, source = document
    response = post_append(api, document_id, doc, source, [6], [1])
    assert response.status_code == 201 and response.json() == {"version": 2}


def test_changes_since_a_version_come_as_one_bundle(api, document):
    document_id, doc, source = document
    for i in range(3):
        post_append(api, document_id, doc, source, [10 + i], [i])
    response = api.get(f"/api/documents/{document_id}/events/?since=2", HTTP_ACCEPT=BUNDLE)
    assert response.status_code == 200
    header, buffers = wire.unpack(response.content)
    assert (header["since"], header["version"], header["current"]) == (2, 4, 4)
    assert [item["version"] for item in header["items"]] == [3, 4]
    replica = document_at(api, document_id, 2)
    for item in header["items"]:
        replica.apply_json_patch(Serialized(item["patch"], buffers))
    assert replica.get_model_by_name("ex_line").data_source.data["y"].tolist() == [6, 7, 2, 4, 5, 0, 1, 2]


def test_an_optimistic_change_against_an_old_version_answers_409(api, document):
    document_id, doc, source = document
    assert post_append(api, document_id, doc, source, [6], [1], base_version=1).status_code == 201
    response = post_append(api, document_id, doc, source, [7], [2], base_version=1)
    assert response.status_code == 409
    assert response.json()["error"] == "version_conflict" and response.json()["current_version"] == 2
    assert Event.objects.count() == 1


def test_a_change_that_does_not_apply_answers_400(api, document):
    document_id, _, _ = document
    patch = {"events": [{"kind": "ModelChanged", "model": {"id": "nowhere"}, "attr": "title", "new": "x"}]}
    response = api.post(f"/api/documents/{document_id}/events/", {"patch": patch}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_patch" and response.json()["field"] == "patch"
    assert not Event.objects.exists()


def test_a_version_the_log_no_longer_holds_answers_410(api, document, settings):
    settings.BOKEHSITE_SNAPSHOT_EVERY = 2
    settings.BOKEHSITE_HISTORY = 1
    document_id, doc, source = document
    for i in range(6):
        post_append(api, document_id, doc, source, [10 + i], [i])
    assert api.get(f"/api/documents/{document_id}/doc/?version=2", HTTP_ACCEPT=BUNDLE).status_code == 410
    response = api.get(f"/api/documents/{document_id}/events/?since=1", HTTP_ACCEPT=BUNDLE)
    assert response.status_code == 410 and response.json()["error"] == "history_truncated"


@pytest.mark.parametrize("query, field", [("since=-1", "since"), ("since=x", "since"), ("", "since")])
def test_bad_since_answers_400(api, document, query, field):
    response = api.get(f"/api/documents/{document[0]}/events/?{query}", HTTP_ACCEPT=BUNDLE)
    assert response.status_code == 400 and response.json()["field"] == field


def test_a_future_version_is_not_found(api, document):
    response = api.get(f"/api/documents/{document[0]}/doc/?version=99", HTTP_ACCEPT=BUNDLE)
    assert response.status_code == 404 and "does not exist yet" in response.json()["detail"]


def test_since_zero_asks_for_nothing_the_log_has_and_answers_400_naming_since(api, document):
    response = api.get(f"/api/documents/{document[0]}/events/?since=0", HTTP_ACCEPT=BUNDLE)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid" and body["field"] == "since" and "/doc/" in body["detail"]


def test_since_the_current_version_answers_no_changes(api, document):
    response = api.get(f"/api/documents/{document[0]}/events/?since=1", HTTP_ACCEPT=BUNDLE)
    assert response.status_code == 200
    header, _ = wire.unpack(response.content)
    assert header == {"since": 1, "version": 1, "current": 1, "items": []}


def test_since_beyond_the_current_version_answers_400_naming_since(api, document):
    document_id, doc, source = document
    post_append(api, document_id, doc, source, [6], [1])
    response = api.get(f"/api/documents/{document_id}/events/?since=3", HTTP_ACCEPT=BUNDLE)
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "since" and "does not exist yet" in body["detail"] and "version 2" in body["detail"]
