"""In single-user mode another site's page cannot act as defaultuser; the Python client still can."""

import json

import pytest
from django.test import Client

from accounts.users import default_user
from bokehsite.client import Session
from documents.models import Collaborator, Document, Visibility
from tests.conftest import make_user
from tests.helpers import line_document, store

pytestmark = pytest.mark.django_db

EVIL = "http://evil.example"
# What a browser sends for `fetch(url, {method: "POST", mode: "no-cors", body: "..."})` on evil.example.
CROSS_SITE_FETCH = {"content_type": "text/plain;charset=UTF-8", "HTTP_ORIGIN": EVIL,
                    "HTTP_SEC_FETCH_SITE": "cross-site", "HTTP_SEC_FETCH_MODE": "no-cors"}
# What a browser sends for an auto-submitted <form method=post action=...> on evil.example.
CROSS_SITE_FORM = {"content_type": "application/x-www-form-urlencoded", "HTTP_ORIGIN": EVIL,
                   "HTTP_SEC_FETCH_SITE": "cross-site", "HTTP_SEC_FETCH_MODE": "navigate"}


@pytest.fixture
def browser():
    """A browser: Django checks CSRF for it (the test client skips the check unless asked)."""
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def document():
    return store(default_user(), "private plot")


def unchanged(document):
    stored = Document.objects.get(pk=document.pk)
    return (stored.visibility, stored.secret_key) == (Visibility.PRIVATE, document.secret_key) and not Collaborator.objects.exists()


# A cross-site POST without a body fails the CSRF check; one with a body the API does not parse
# (all a page can send cross-site without asking first) is refused for its media type even before.
CROSS_SITE_POSTS = [
    ("publish/", "", 403, "csrf_failed"),
    ("secret-link/", "", 403, "csrf_failed"),
    ("unpublish/", "", 403, "csrf_failed"),
    ("visibility/", json.dumps({"visibility": "public"}), 415, "unsupported_media_type"),
    ("collaborators/", json.dumps({"username": "mallory", "role": "write"}), 415, "unsupported_media_type"),
]


@pytest.mark.parametrize("action, body, status, code", CROSS_SITE_POSTS)
def test_a_cross_site_text_plain_post_is_refused(browser, document, action, body, status, code):
    make_user("mallory")
    response = browser.post(f"/api/documents/{document.id}/{action}", body, **CROSS_SITE_FETCH)
    assert response.status_code == status and response.json()["error"] == code
    if code == "csrf_failed":
        assert "evil.example" in response.json()["detail"]
    assert unchanged(document)


def test_a_cross_site_form_post_is_refused(browser, document):
    response = browser.post(f"/api/documents/{document.id}/visibility/", "visibility=public", **CROSS_SITE_FORM)
    assert response.status_code == 415 and response.json()["error"] == "unsupported_media_type"
    assert unchanged(document)
    response = browser.post(f"/api/documents/{document.id}/publish/", "", **CROSS_SITE_FORM)
    assert response.status_code == 403 and response.json()["error"] == "csrf_failed"
    assert unchanged(document)


def test_a_cross_site_delete_is_refused(browser, document):
    response = browser.delete(f"/api/documents/{document.id}/", HTTP_ORIGIN=EVIL, HTTP_SEC_FETCH_SITE="cross-site")
    assert response.status_code == 403 and Document.objects.filter(pk=document.pk).exists()


def test_a_browser_that_sends_only_cookies_still_needs_the_csrf_token(browser, document):
    browser.cookies["csrftoken"] = "a" * 32
    response = browser.post(f"/api/documents/{document.id}/publish/", "", content_type="text/plain")
    assert response.status_code == 403 and response.json()["error"] == "csrf_failed"
    assert unchanged(document)


def test_our_own_page_with_the_csrf_token_may_post(browser, document):
    browser.get(f"/documents/{document.id}/share/")  # any page with a form sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    response = browser.post(f"/api/documents/{document.id}/visibility/", {"visibility": "public"},
                            content_type="application/json", HTTP_ORIGIN="http://testserver",
                            HTTP_SEC_FETCH_SITE="same-origin", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200 and response.json()["visibility"] == "public"


@pytest.mark.parametrize("content_type, body", [("text/plain", "hello"), ("application/x-www-form-urlencoded", "a=b")])
def test_a_body_the_api_does_not_parse_is_refused_with_415(api, document, content_type, body):
    response = api.generic("POST", f"/api/documents/{document.id}/publish/", body, content_type=content_type)
    assert response.status_code == 415
    assert response.json() == {"error": "unsupported_media_type", "field": None,
                               "detail": response.json()["detail"]} and content_type in response.json()["detail"]
    assert unchanged(document)


def test_the_sharing_page_refuses_a_cross_site_form(browser, document):
    response = browser.post(f"/documents/{document.id}/share/", "action=visibility&visibility=public", **CROSS_SITE_FORM)
    assert response.status_code == 403
    assert unchanged(document)


@pytest.mark.daphne
@pytest.mark.django_db(transaction=True)
def test_the_python_client_shares_in_single_user_mode_even_when_offered_cookies(live_server_url):
    with Session(live_server_url) as session:
        session.use_doc("shared")
        session.push(line_document())
        # A page that sets a cookie (as a proxy's sticky-session cookie would): the client keeps none.
        assert "csrftoken" in session.http.get(live_server_url + "accounts/login/").cookies
        assert not session.http.cookies
        assert session.publish().endswith("?public=true")
        assert "?key=" in session.secret_link()
        make_user("bob")
        assert session.share("bob", "write")["role"] == "write"
    assert Document.objects.get(title="shared").visibility == Visibility.SECRET
