"""Plot pages render documents in a sandboxed frame that loads them with a signed frame token."""

import html
import re
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import signing

from bokehsite import wire
from documents import services
from documents.exceptions import InvalidFrameToken
from documents.frames import FrameGrant, sign_frame_token, verify_frame_token
from tests.conftest import make_user
from tests.helpers import store

pytestmark = pytest.mark.django_db
BUNDLE = wire.CONTENT_TYPE


def frame_url(page_html: str) -> str:
    return html.unescape(re.search(r'<iframe id="plot-frame"[^>]* src="([^"]+)"', page_html).group(1))


def test_a_frame_token_names_one_document_and_a_role(alice):
    document = store(alice)
    assert verify_frame_token(sign_frame_token(document, "owner", user_id=alice.pk)) == FrameGrant(document.id, "write", alice.pk)
    assert verify_frame_token(sign_frame_token(document, "write")).role == "write"
    grant = verify_frame_token(sign_frame_token(document, "read"))
    assert grant.role == "read" and isinstance(grant.document_id, uuid.UUID)


def test_a_tampered_or_foreign_token_is_refused(alice):
    document = store(alice)
    token = sign_frame_token(document, "read")
    forged = signing.dumps({"d": str(document.id), "r": "write"}, salt="some other purpose")
    for bad in (token[:-2] + "xx", forged, "", "nonsense"):
        with pytest.raises(InvalidFrameToken, match="not valid"):
            verify_frame_token(bad)


def test_an_expired_token_is_refused(alice, settings):
    token = sign_frame_token(store(alice), "read")
    time.sleep(1.1)
    settings.BOKEHSITE_FRAME_TOKEN_MAX_AGE = 1
    with pytest.raises(InvalidFrameToken, match="expired"):
        verify_frame_token(token)


def test_the_plot_page_embeds_a_sandboxed_frame_without_same_origin(alice, client, multi_user):
    document = store(alice)
    client.force_login(alice)
    page = client.get(f"/documents/{document.id}/").content.decode()
    iframe = re.search(r"<iframe[^>]*>", page).group(0)
    assert 'sandbox="allow-scripts"' in iframe and "allow-same-origin" not in iframe
    assert "viewer.js" not in page and "bokeh.min.js" not in page  # the document's code runs only in the frame


def test_the_frame_is_served_with_a_csp_sandbox_and_loads_the_viewer(alice, client, multi_user):
    document = store(alice)
    client.force_login(alice)
    url = frame_url(client.get(f"/documents/{document.id}/").content.decode())
    client.logout()  # the frame needs no cookies
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == "sandbox allow-scripts"
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert response["Referrer-Policy"] == "no-referrer"
    body = response.content.decode()
    assert f'data-doc-url="/api/documents/{document.id}/doc/"' in body
    assert 'data-role="write"' in body and "/static/bokehsite/viewer.js" in body


def test_a_frame_with_a_bad_token_shows_nothing(alice, client):
    document = store(alice)
    other = store(alice, "other")
    for token in ("nonsense", sign_frame_token(other, "read")):
        response = client.get(f"/documents/{document.id}/frame/", {"frame_token": token})
        assert response.status_code == 401
        assert response["Content-Security-Policy"] == "sandbox allow-scripts"
        assert "bokeh.min.js" not in response.content.decode()


def test_the_content_loads_with_the_frame_token_alone_and_with_cors(alice, api, multi_user):
    document = store(alice)
    token = sign_frame_token(document, "read", user_id=alice.pk)
    response = api.get(f"/api/documents/{document.id}/doc/", {"frame_token": token}, HTTP_ACCEPT=BUNDLE, HTTP_ORIGIN="null")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "X-Document-Version" in response["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Credentials" not in response
    header, _ = wire.unpack(response.content)
    assert header["doc"]["roots"]


def test_a_frame_token_is_for_one_document_and_only_for_reading(alice, api, multi_user):
    document, other = store(alice, "one"), store(alice, "two")
    token = sign_frame_token(document, "write", user_id=alice.pk)
    response = api.get(f"/api/documents/{other.id}/doc/", {"frame_token": token}, HTTP_ACCEPT=BUNDLE)
    assert response.status_code == 401 and response.json()["error"] == "invalid_frame_token"
    assert response["Access-Control-Allow-Origin"] == "*"  # so that the frame can read why
    response = api.generic("PUT", f"/api/documents/{document.id}/doc/?frame_token={token}", b"", content_type=BUNDLE)
    assert response.status_code == 401 and response.json()["error"] == "not_authenticated"


def test_api_answers_without_a_frame_token_carry_no_cors_headers(alice, api, multi_user):
    store(alice)
    response = api.get("/api/documents/", HTTP_ORIGIN="null")
    assert response.status_code == 401 and "Access-Control-Allow-Origin" not in response


def test_a_fresh_frame_token_follows_the_page_rules(alice, charlie, client, multi_user):
    document = store(alice)
    url = f"/documents/{document.id}/frame-token/"
    assert client.get(url).status_code == 404  # anonymous, private
    client.force_login(charlie)
    assert client.get(url).status_code == 404
    client.force_login(alice)
    body = client.get(url).json()
    assert body["role"] == "write" and verify_frame_token(body["token"]).document_id == document.id
    services.regenerate_secret_link(document)
    client.logout()
    body = client.get(url, {"key": document.secret_key}).json()
    assert body["role"] == "read"


def test_a_staff_viewer_gets_a_read_only_frame(alice, client, multi_user):
    document = store(alice)
    client.force_login(make_user("sam", is_staff=True))
    page = client.get(f"/documents/{document.id}/").content.decode()
    token = parse_qs(urlsplit(frame_url(page)).query)["frame_token"][0]
    assert verify_frame_token(token).role == "read"
