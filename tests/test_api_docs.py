"""The OpenAPI schema at /api/schema/, its docs at /api/docs/, and the browsable API for browsers."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.users import default_user
from tests.helpers import store

pytestmark = pytest.mark.django_db

HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"  # what a browser asks for


def schema(client) -> dict:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def api_routes() -> set[str]:
    """Every path the URLconf serves under /api/, in OpenAPI's notation."""
    def walk(patterns, prefix=""):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern):
                yield "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "{id}" if m[1] == "pk" else "{%s}" % m[1], route)
    return {route for route in walk(get_resolver().url_patterns)
            if route.startswith("/api/") and not route.startswith(("/api/schema/", "/api/docs/"))}


def test_the_schema_documents_every_api_endpoint(client):
    paths = schema(client)["paths"]
    assert set(paths) == api_routes()
    assert {tag for ops in paths.values() for op in ops.values() for tag in op["tags"]} == {
        "documents", "events", "sharing", "collaborators", "accounts", "tokens", "datasets", "dataset uploads",
        "history", "exports", "apps"}


def test_every_error_answer_is_the_one_envelope_with_its_codes(client):
    document = schema(client)
    assert document["components"]["schemas"]["Error"]["required"] == ["error", "detail", "field"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            errors = {status: answer for status, answer in operation["responses"].items() if status >= "400"}
            assert "406" in errors, (method, path)
            for status, answer in errors.items():
                envelope, codes = answer["content"]["application/json"]["schema"]["allOf"]
                assert envelope == {"$ref": "#/components/schemas/Error"} and codes["properties"]["error"]["enum"]


def test_content_travels_as_a_bundle_or_json(client):
    paths = schema(client)["paths"]
    upload = paths["/api/documents/"]["post"]["requestBody"]["content"]
    assert upload["application/vnd.bokehsite.bundle"]["schema"] == {"type": "string", "format": "binary"}
    assert upload["application/json"]["schema"] == {"$ref": "#/components/schemas/CreateRequest"}
    download = paths["/api/documents/{id}/doc/"]["get"]["responses"]["200"]["content"]
    assert list(download) == ["application/vnd.bokehsite.bundle"]
    codes = paths["/api/documents/{id}/events/"]["post"]["responses"]["409"]["content"]["application/json"]
    assert codes["schema"]["allOf"][1]["properties"]["error"]["enum"] == ["version_conflict"]


def test_dataset_chunks_travel_as_raw_bytes_and_appends_as_a_bundle(client):
    paths = schema(client)["paths"]
    chunk = paths["/api/datasets/uploads/{id}/chunks/"]["put"]
    assert chunk["requestBody"]["content"] == {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    assert {p["name"] for p in chunk["parameters"]} == {"id", "column", "offset", "sha256"}
    assert "checksum_mismatch" in chunk["responses"]["400"]["content"]["application/json"]["schema"]["allOf"][1][
        "properties"]["error"]["enum"]
    rows = paths["/api/datasets/{id}/rows/"]["post"]["requestBody"]["content"]
    assert list(rows) == ["application/vnd.bokehsite.bundle"]


def test_the_docs_page_serves_swagger_ui_from_this_server(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "/api/schema/" in page
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any("swagger-ui" in asset for asset in assets)
    for asset in assets:
        assert asset.startswith("/static/"), asset  # never a CDN
        assert client.get(asset).status_code == 200, asset


def test_a_browser_gets_the_browsable_api_in_single_user_mode(client):
    store(default_user(), "plot")
    response = client.get("/api/documents/", HTTP_ACCEPT=HTML)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "plot" in page and 'href="/api/docs/"' in page and "csrfToken" in page


def test_a_browser_gets_the_browsable_api_in_multi_user_mode(client, multi_user, alice):
    response = client.get("/api/documents/", HTTP_ACCEPT=HTML)
    assert response.status_code == 401 and 'href="/accounts/login/?next=/api/documents/"' in response.content.decode()
    client.force_login(alice)
    store(alice, "alices plot")
    response = client.get("/api/documents/", HTTP_ACCEPT=HTML)
    assert response.status_code == 200 and "alices plot" in response.content.decode()


def test_scripts_still_get_json(api):
    response = api.get("/api/documents/")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
