"""Who may open a document's pages (log in first, 404, 403), and what their forms do with an
action they do not know."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.messages import get_messages

from accounts.users import default_user
from documents import services
from tests.helpers import store

pytestmark = pytest.mark.django_db

# Each page of one document, and the role it needs.
PAGES = {"": "read", "history/": "read", "share/": "owner", "embeds/": "owner"}
UNKNOWN = "/documents/00000000-0000-0000-0000-000000000000/"


def said(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.mark.parametrize("page", PAGES)
def test_an_anonymous_visitor_logs_in_first_and_comes_back_to_the_same_query(page, alice, client, multi_user):
    for url in (f"/documents/{store(alice).id}/{page}?key=nope&x=1", f"{UNKNOWN}{page}"):
        response = client.get(url)
        assert response.status_code == 302
        location = urlsplit(response["Location"])
        assert location.path == "/accounts/login/" and parse_qs(location.query)["next"] == [url]


def test_an_anonymous_visitor_logs_in_first_to_see_the_list(client, multi_user):
    response = client.get("/?q=plots")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=/%3Fq%3Dplots"


@pytest.mark.parametrize("page", PAGES)
def test_asking_for_the_public_version_of_a_private_document_is_404_not_a_login(page, alice, client, multi_user):
    assert client.get(f"/documents/{store(alice).id}/{page}", {"public": "true"}).status_code == 404


@pytest.mark.parametrize("page", PAGES)
def test_someone_without_access_gets_404(page, alice, charlie, client, multi_user):
    client.force_login(charlie)
    assert client.get(f"/documents/{store(alice).id}/{page}").status_code == 404
    assert client.get(f"{UNKNOWN}{page}").status_code == 404


@pytest.mark.parametrize("page", PAGES)
def test_a_reader_gets_the_readers_pages_and_403_on_the_owners(page, alice, bob, client, multi_user):
    document = store(alice)
    services.share(document, "bob", "read")
    client.force_login(bob)
    assert client.get(f"/documents/{document.id}/{page}").status_code == (200 if PAGES[page] == "read" else 403)


def test_restoring_needs_write_where_browsing_needs_read(alice, bob, client, multi_user):
    document = store(alice)
    services.share(document, "bob", "read")
    client.force_login(bob)
    url = f"/documents/{document.id}/history/"
    assert client.get(url).status_code == 200
    assert client.post(url, {"version": 1}).status_code == 403
    services.share(document, "bob", "write")
    assert client.post(url, {"version": 1}).status_code == 302


@pytest.mark.parametrize("page", PAGES)
def test_in_single_user_mode_nobody_logs_in_and_an_unknown_document_is_404(page, client):
    assert client.get(f"/documents/{store(default_user()).id}/{page}").status_code == 200
    assert client.get(f"{UNKNOWN}{page}").status_code == 404


def test_a_thumbnail_never_sends_to_the_login_page(alice, client, multi_user):
    assert client.get(f"/documents/{store(alice).id}/thumbnail.png").status_code == 404


@pytest.mark.parametrize("page, form", [
    ("share/", {"action": "nonsense"}),
    ("share/", {}),
    ("share/", {"action": "visibility", "visibility": "everyone"}),
    ("share/", {"action": "share", "username": "bob", "role": "boss"}),
    ("embeds/", {"action": "nonsense"}),
    ("embeds/", {"action": "revoke", "token": "00000000-0000-0000-0000-000000000000"}),
])
def test_an_unknown_action_goes_back_to_the_page_saying_so(page, form, alice, bob, client, multi_user):
    url = f"/documents/{store(alice).id}/{page}"
    client.force_login(alice)
    response = client.post(url, form)
    assert response.status_code == 302 and response["Location"] == url
    assert said(response) == ["Unknown action."]


def test_a_refused_action_goes_back_to_the_page_saying_why(alice, client, multi_user):
    url = f"/documents/{store(alice).id}/embeds/"
    client.force_login(alice)
    response = client.post(url, {"action": "create", "days": "0"})
    assert response.status_code == 302 and response["Location"] == url
    assert said(response) == ["days must be from 1 to 366"]


def test_a_new_embed_token_is_shown_once_in_the_answer_not_after_a_redirect(alice, client, multi_user):
    url = f"/documents/{store(alice).id}/embeds/"
    client.force_login(alice)
    response = client.post(url, {"action": "create", "origins": "https://example.org"})
    assert response.status_code == 200 and response.context["created"]["secret"].startswith("bke_")
    assert client.get(url).context["created"] is None


def test_the_tokens_page_shows_itself_again_for_a_form_naming_no_action(alice, client, multi_user):
    client.force_login(alice)
    response = client.post("/accounts/tokens/", {"action": "nonsense"})
    assert response.status_code == 200 and said(response) == [] and response.context["created"] is None
