"""Publishing, secret links and collaborators, through the API, the sharing page and the admin."""

import pytest

from documents import services
from documents.models import Collaborator, Document
from tests.conftest import make_user, token_client
from tests.helpers import store

pytestmark = pytest.mark.django_db


def test_documents_are_private_by_default_in_multi_user_mode(alice, multi_user):
    body = token_client(alice).get(f"/api/documents/{store(alice).id}/").json()
    assert body["visibility"] == "private" and body["public_url"] is None and body["secret_url"] is None
    assert body["role"] == "owner"


def test_publishing_answers_with_the_public_url_that_anyone_may_open(alice, client, multi_user):
    document = store(alice)
    body = token_client(alice).post(f"/api/documents/{document.id}/publish/").json()
    assert body["visibility"] == "public"
    assert body["public_url"] == f"http://testserver/documents/{document.id}/?public=true"
    assert client.get(f"/documents/{document.id}/?public=true").status_code == 200
    assert client.get(f"/documents/{document.id}/").status_code == 200

    body = token_client(alice).post(f"/api/documents/{document.id}/unpublish/").json()
    assert body["visibility"] == "private" and body["public_url"] is None
    assert client.get(f"/documents/{document.id}/?public=true").status_code == 404
    assert client.get(f"/documents/{document.id}/").status_code == 302


def test_the_public_link_shows_the_public_version_even_to_the_owner(alice, client, multi_user):
    document = store(alice)
    client.force_login(alice)
    assert client.get(f"/documents/{document.id}/").status_code == 200
    assert client.get(f"/documents/{document.id}/?public=true").status_code == 404  # not published
    services.publish(document)
    page = client.get(f"/documents/{document.id}/?public=true").content.decode()
    assert "read-only" in page and "Share</a>" not in page


def test_a_new_secret_link_revokes_the_old_one(alice, client, multi_user):
    document = store(alice)
    api = token_client(alice)
    first = api.post(f"/api/documents/{document.id}/secret-link/").json()
    assert first["visibility"] == "secret" and "?key=" in first["secret_url"]
    old_path = first["secret_url"].removeprefix("http://testserver")
    assert client.get(old_path).status_code == 200
    assert client.get(f"/documents/{document.id}/").status_code == 302  # without the key: log in first

    second = api.post(f"/api/documents/{document.id}/secret-link/").json()
    assert second["secret_url"] != first["secret_url"]
    assert client.get(old_path).status_code == 302
    assert client.get(second["secret_url"].removeprefix("http://testserver")).status_code == 200
    assert len(Document.objects.get(pk=document.pk).secret_key) >= 40


def test_the_secret_link_is_shown_only_to_the_owner(alice, bob, multi_user):
    document = store(alice)
    services.regenerate_secret_link(document)
    services.share(document, "bob", "write")
    assert token_client(alice).get(f"/api/documents/{document.id}/").json()["secret_url"]
    body = token_client(bob).get(f"/api/documents/{document.id}/").json()
    assert body["role"] == "write" and body["secret_url"] is None


def test_visibility_can_be_set_directly(alice, multi_user):
    document = store(alice)
    api = token_client(alice)
    assert api.post(f"/api/documents/{document.id}/visibility/", {"visibility": "secret"}, format="json").json()["secret_url"]
    response = api.post(f"/api/documents/{document.id}/visibility/", {"visibility": "everyone"}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "visibility"


def test_collaborators_are_added_changed_listed_and_removed(alice, bob, multi_user):
    document = store(alice)
    api = token_client(alice)
    url = f"/api/documents/{document.id}/collaborators/"
    assert api.post(url, {"username": "bob"}, format="json").json()["role"] == "read"
    assert token_client(bob).get(f"/api/documents/{document.id}/").json()["role"] == "read"
    response = api.post(url, {"username": "bob", "role": "write"}, format="json")
    assert response.status_code == 201 and response.json()["role"] == "write"
    assert [(c["username"], c["role"]) for c in api.get(url).json()] == [("bob", "write")]
    assert api.delete(url + "bob/").status_code == 204
    assert token_client(bob).get(f"/api/documents/{document.id}/").status_code == 404
    assert api.delete(url + "bob/").json()["error"] == "user_not_found"


def test_sharing_with_an_unknown_user_or_the_owner_fails(alice, multi_user):
    document = store(alice)
    api = token_client(alice)
    url = f"/api/documents/{document.id}/collaborators/"
    for username in ("nobody", "alice"):
        response = api.post(url, {"username": username}, format="json")
        assert response.status_code == 404
        assert response.json()["error"] == "user_not_found" and response.json()["field"] == "username"
    response = api.post(url, {"username": "alice", "role": "admin"}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "role"


def test_shared_documents_appear_on_the_collaborators_list_page(alice, bob, client, multi_user):
    document = store(alice, "team plot")
    services.share(document, "bob", "read")
    client.force_login(bob)
    page = client.get("/").content.decode()
    assert "Shared with you" in page and "team plot" in page
    assert [d["title"] for d in token_client(bob).get("/api/documents/").json()] == []  # the API lists own ones


def test_the_sharing_page_changes_visibility_links_and_collaborators(alice, bob, client, multi_user):
    document = store(alice)
    client.force_login(alice)
    url = f"/documents/{document.id}/share/"
    assert client.get(url).status_code == 200
    client.post(url, {"action": "visibility", "visibility": "public"})
    document.refresh_from_db()
    assert document.visibility == "public"
    assert f"/documents/{document.id}/?public=true" in client.get(url).content.decode()

    client.post(url, {"action": "regenerate"})
    document.refresh_from_db()
    old_key = document.secret_key
    assert document.visibility == "secret" and old_key in client.get(url).content.decode()
    client.post(url, {"action": "regenerate"})
    document.refresh_from_db()
    assert document.secret_key != old_key

    client.post(url, {"action": "share", "username": "bob", "role": "write"})
    assert Collaborator.objects.get(document=document).role == "write"
    assert "bob" in client.get(url).content.decode()
    response = client.post(url, {"action": "share", "username": "nobody", "role": "read"}, follow=True)
    assert "no user called &#x27;nobody&#x27;" in response.content.decode()
    client.post(url, {"action": "unshare", "username": "bob"})
    assert not Collaborator.objects.exists()


def test_the_sharing_page_is_the_owners(alice, bob, charlie, client, multi_user):
    document = store(alice)
    services.share(document, "bob", "write")
    url = f"/documents/{document.id}/share/"
    assert client.get(url)["Location"].startswith("/accounts/login/")
    client.force_login(charlie)
    assert client.get(url).status_code == 404
    client.force_login(bob)
    assert client.get(url).status_code == 403
    assert client.post(url, {"action": "visibility", "visibility": "public"}).status_code == 403
    document.refresh_from_db()
    assert document.visibility == "private"


def test_the_admin_edits_collaborators_inline(alice, bob, client):
    admin = make_user("root", is_staff=True, is_superuser=True)
    document = store(alice)
    client.force_login(admin)
    response = client.post(f"/admin/documents/document/{document.id}/change/", {
        "title": document.title, "owner": alice.id, "visibility": "private",
        "collaborators-TOTAL_FORMS": "1", "collaborators-INITIAL_FORMS": "0",
        "collaborators-0-user": bob.id, "collaborators-0-role": "write",
        "group_shares-TOTAL_FORMS": "0", "group_shares-INITIAL_FORMS": "0",
    })
    assert response.status_code == 302, response.content.decode()[-1500:]
    assert Collaborator.objects.get(document=document).user == bob


@pytest.mark.parametrize("away", ["private", "public"])
def test_leaving_secret_link_discards_the_key_and_coming_back_makes_a_new_one(alice, client, multi_user, away):
    document = store(alice)
    api = token_client(alice)
    leaked = api.post(f"/api/documents/{document.id}/secret-link/").json()["secret_url"].removeprefix("http://testserver")
    left = api.post(f"/api/documents/{document.id}/visibility/", {"visibility": away}, format="json").json()
    assert left["secret_url"] is None and Document.objects.get(pk=document.pk).secret_key == ""
    back = api.post(f"/api/documents/{document.id}/visibility/", {"visibility": "secret"}, format="json").json()
    assert back["secret_url"] and back["secret_url"].removeprefix("http://testserver") != leaked
    assert client.get(leaked).status_code == 302  # the old link asks to log in: it grants nothing
    assert client.get(back["secret_url"].removeprefix("http://testserver")).status_code == 200


def test_setting_secret_link_again_keeps_the_current_link(alice, multi_user):
    document = services.regenerate_secret_link(store(alice))
    key = document.secret_key
    assert services.set_visibility(document, "secret").secret_key == key


def test_the_sharing_page_discards_the_key_when_the_document_leaves_secret_link(alice, client, multi_user):
    document = services.regenerate_secret_link(store(alice))
    leaked = document.secret_url()
    client.force_login(alice)
    client.post(f"/documents/{document.id}/share/", {"action": "visibility", "visibility": "private"})
    client.post(f"/documents/{document.id}/share/", {"action": "visibility", "visibility": "secret"})
    client.logout()
    assert Document.objects.get(pk=document.pk).secret_key not in ("", document.secret_key)
    assert client.get(leaked).status_code == 302


def test_the_admin_discards_the_key_when_the_document_leaves_secret_link(alice, client, multi_user):
    document = services.regenerate_secret_link(store(alice))
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    form = {"title": document.title, "owner": alice.id, "collaborators-TOTAL_FORMS": "0",
            "collaborators-INITIAL_FORMS": "0", "group_shares-TOTAL_FORMS": "0", "group_shares-INITIAL_FORMS": "0"}
    for visibility in ("private", "secret"):
        response = client.post(f"/admin/documents/document/{document.id}/change/", {**form, "visibility": visibility})
        assert response.status_code == 302, response.content.decode()[-1500:]
        if visibility == "private":
            assert Document.objects.get(pk=document.pk).secret_key == ""
    assert Document.objects.get(pk=document.pk).secret_key not in ("", document.secret_key)
