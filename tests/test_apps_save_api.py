"""POST /api/app-sessions/<id>/save/: an app session's state saved as a plot of the caller's, by
whoever holds the session's key and is signed in; errors are the one envelope."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from rest_framework.test import APIClient

from appserver.models import AppSession
from bokehsite.wire import model_objects
from appserver.sessions import apps_account
from documents import bokeh_json, replay, services
from documents.models import Document, Kind
from tests.conftest import token_client
from tests.helpers import line_document, store

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("multi_user")]

KEY = "session-key-" + "k" * 30


def app_session(owner=None) -> Document:
    """A session's document as a host would have stored it (an anonymous visitor's: the apps account's)."""
    document = services.create_document(owner or apps_account(), "sliders session", *bokeh_json.dump(line_document()),
                                        kind=Kind.SESSION, secret_key=KEY)
    AppSession.objects.create(app="sliders", document=document, user=owner, state=AppSession.State.RUNNING)
    return document


def url(document, **query) -> str:
    return f"/api/app-sessions/{document.id}/save/" + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def test_a_signed_in_holder_of_the_key_saves_the_session_as_a_plot_of_their_own(alice):
    session = app_session()
    response = token_client(alice).post(url(session, key=KEY), {"title": "my sliders"}, format="json")
    assert response.status_code == 201, response.content
    saved = Document.objects.get(pk=response.json()["id"])
    assert response.json()["title"] == "my sliders" and saved.owner == alice and saved.kind == Kind.PLOT
    def models(document):
        return sorted((o["id"], o.get("name")) for o in model_objects(replay.at(document.id, document.version).json()[0]))
    assert models(saved) == models(session)
    assert Document.objects.filter(pk=session.pk).exists()  # the session goes on


def test_a_browser_session_presents_the_key_in_the_authorization_header(client, alice):
    session = app_session()
    client.force_login(alice)
    response = client.post(url(session), {"title": "from the page"}, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Key {KEY}")
    assert response.status_code == 201, response.content
    assert Document.objects.get(pk=response.json()["id"]).owner == alice


def test_a_missing_title_names_the_field(alice):
    response = token_client(alice).post(url(app_session(), key=KEY), {}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "title"


def test_a_wrong_key_or_a_document_that_is_no_session_is_not_found(alice):
    client = token_client(alice)
    response = client.post(url(app_session(), key="wrong"), {"title": "t"}, format="json")
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    plot = store(alice, "a plot")  # alice may write it, but it is no session
    response = client.post(url(plot), {"title": "t"}, format="json")
    assert response.status_code == 404 and response.json()["error"] == "no_such_session"


def test_anonymous_callers_cannot_save(alice):
    response = APIClient().post(url(app_session(), key=KEY), {"title": "t"}, format="json")
    assert response.status_code in (401, 403) and response.json()["error"] == "not_authenticated"
    assert Document.objects.filter(kind=Kind.PLOT).count() == 0


def test_the_pages_save_form_sends_an_anonymous_visitor_to_log_in_and_back_to_the_app(client):
    def back(response) -> list[str]:
        assert response.status_code == 302
        location = urlsplit(response["Location"])
        assert location.path == "/accounts/login/"
        return parse_qs(location.query)["next"]

    page = "http://testserver/apps/sliders/?N=5"
    assert back(client.post("/apps/sliders/save/", {"title": "t"}, HTTP_REFERER=page)) == [page]
    assert back(client.post("/apps/sliders/save/", {"title": "t"})) == ["/apps/sliders/"]
    assert Document.objects.filter(kind=Kind.PLOT).count() == 0


def test_a_title_already_taken_says_so(alice):
    store(alice, "taken")
    response = token_client(alice).post(url(app_session(), key=KEY), {"title": "taken"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"] == "title_taken" and response.json()["field"] == "title"

