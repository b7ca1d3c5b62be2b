"""Bad input gets a 4xx JSON error naming the problem, and nothing is stored or changed."""

import json

import pytest

from bokehsite import wire
from documents.models import Document
from tests.helpers import line_document
from tests.helpers import bundle_body, create

pytestmark = pytest.mark.django_db
BUNDLE = wire.CONTENT_TYPE


def seed_json():
    return json.loads(json.dumps(line_document().to_json(deferred=False)))


def assert_error(response, status, code, field):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == code
    assert body["field"] == field
    assert body["detail"]


def post_json(api, text):
    return api.generic("POST", "/api/documents/", text, content_type="application/json")


def test_malformed_json(api):
    assert_error(post_json(api, '{"title": "x", "doc": {'), 400, "malformed_json", "body")
    assert not Document.objects.exists()


def test_json_that_is_not_an_object(api):
    assert_error(post_json(api, "[1, 2]"), 400, "malformed_json", "body")


def test_a_malformed_bundle(api):
    response = api.generic("POST", "/api/documents/", b"BKS1\x00\x00\x00\xff{}", content_type=BUNDLE)
    assert_error(response, 400, "malformed_bundle", "body")
    assert "runs past the end" in response.json()["detail"]


@pytest.mark.parametrize(
    "doc, detail",
    [
        ({"hello": "world"}, "missing 'roots'"),
        ([1, 2, 3], "must be a Bokeh document JSON object"),
        ({"roots": "nope"}, "'roots' must be a list"),
        ({"roots": [{"type": "object", "name": "Plot", "id": "p1", "attributes": {"x_range": {"id": "nowhere"}}}]},
         "Bokeh cannot load it"),
    ],
)
def test_json_that_is_not_a_bokeh_document(api, doc, detail):
    response = api.post("/api/documents/", {"title": "x", "doc": doc}, format="json")
    assert_error(response, 400, "invalid_document", "doc")
    assert detail in response.json()["detail"]
    assert not Document.objects.exists()


def test_an_unknown_model_type(api):
    doc = seed_json()
    doc["roots"][0]["name"] = "NotABokehModel"
    response = api.post("/api/documents/", {"title": "x", "doc": doc}, format="json")
    assert_error(response, 400, "unknown_model_type", "doc")
    assert "'NotABokehModel'" in response.json()["detail"]
    assert not Document.objects.exists()


def test_a_bundle_whose_arrays_refer_to_missing_buffers(api):
    serialized = wire.document_json(line_document())
    body = wire.pack({"title": "x", "doc": serialized.content}, serialized.buffers[:1])
    response = api.generic("POST", "/api/documents/", body, content_type=BUNDLE)
    assert_error(response, 400, "invalid_document", "doc")
    assert "can't resolve buffer" in response.json()["detail"]


def test_a_body_over_the_size_limit(api, settings):
    settings.BOKEHSITE_MAX_BODY_BYTES = 1000
    response = api.generic("POST", "/api/documents/", bundle_body(line_document(), title="x"), content_type=BUNDLE)
    assert_error(response, 413, "too_large", "body")
    assert "1000 bytes" in response.json()["detail"]
    assert not Document.objects.exists()


@pytest.mark.parametrize("payload, field", [({"doc": {}}, "title"), ({"title": "x"}, "doc"), ({"title": "", "doc": {}}, "title")])
def test_missing_fields(api, payload, field):
    response = api.post("/api/documents/", payload, format="json")
    assert_error(response, 400, "invalid", field)
    assert field in response.json()["fields"]


def test_a_title_too_long(api):
    response = api.post("/api/documents/", {"title": "t" * 201, "doc": seed_json()}, format="json")
    assert_error(response, 400, "invalid", "title")


def test_an_unsupported_content_type(api):
    response = api.generic("POST", "/api/documents/", "title=x", content_type="application/x-www-form-urlencoded")
    assert_error(response, 415, "unsupported_media_type", None)


def test_a_bad_replacement_leaves_the_stored_document_unchanged(api):
    created = create(api)
    before = Document.objects.get(pk=created["id"])
    doc = seed_json()
    doc["roots"][0]["name"] = "NotABokehModel"
    response = api.put(f"/api/documents/{created['id']}/doc/", {"doc": doc}, format="json")
    assert_error(response, 400, "unknown_model_type", "doc")
    after = Document.objects.get(pk=created["id"])
    assert after.version == before.version
    assert [(s.version, s.doc, bytes(s.buffers)) for s in after.snapshots.all()] == [
        (s.version, s.doc, bytes(s.buffers)) for s in before.snapshots.all()
    ]
    assert not after.events.exists()


def test_an_id_that_is_not_a_uuid_is_not_found(api):
    assert_error(api.get("/api/documents/not-a-uuid/"), 404, "not_found", None)


# PostgreSQL cannot store or compare the NUL character (U+0000); every database refuses it alike.

def test_a_nul_character_in_a_document_is_refused(api):
    doc = seed_json()
    doc["title"] = "a\x00b"
    response = api.post("/api/documents/", {"title": "nul", "doc": doc}, format="json")
    assert_error(response, 400, "invalid_document", "doc")
    assert not Document.objects.exists()


def test_a_nul_character_in_a_change_is_refused(api):
    created = create(api)
    patch = {"events": [{"kind": "TitleChanged", "title": "a\x00b"}]}
    response = api.post(f"/api/documents/{created['id']}/events/", {"patch": patch}, format="json")
    assert_error(response, 400, "invalid_patch", "patch")
    assert Document.objects.get(pk=created["id"]).version == 1


def test_a_nul_character_in_the_title_filter_answers_400(api):
    assert_error(api.get("/api/documents/?title=a%00b"), 400, "invalid", "title")


def test_a_nul_character_in_a_collaborators_name_is_no_such_user(api):
    created = create(api)
    response = api.delete(f"/api/documents/{created['id']}/collaborators/a%00b/")
    assert_error(response, 404, "user_not_found", "username")
