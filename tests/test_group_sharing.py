"""Sharing a document with a group of users (``django.contrib.auth``'s groups): every member has
the group's role, the strongest of their roles counts, and only the owner shares."""

import re

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from documents import access, services
from documents.models import GroupShare
from tests.conftest import make_user, token_client
from tests.helpers import store

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(bob):
    group = Group.objects.create(name="team")
    bob.groups.add(group)
    return group


def test_group_shares_are_added_changed_listed_and_removed(alice, bob, team, multi_user):
    document = store(alice)
    api = token_client(alice)
    url = f"/api/documents/{document.id}/groups/"
    response = api.post(url, {"group": "team"}, format="json")
    assert response.status_code == 201 and response.json()["role"] == "read"
    assert token_client(bob).get(f"/api/documents/{document.id}/").json()["role"] == "read"
    assert api.post(url, {"group": "team", "role": "write"}, format="json").json()["role"] == "write"
    assert token_client(bob).get(f"/api/documents/{document.id}/").json()["role"] == "write"
    assert [(s["group"], s["role"]) for s in api.get(url).json()] == [("team", "write")]
    assert api.delete(url + "team/").status_code == 204
    assert token_client(bob).get(f"/api/documents/{document.id}/").status_code == 404
    response = api.delete(url + "team/")
    assert response.status_code == 404 and response.json()["field"] == "group"


def test_sharing_with_an_unknown_group_answers_400_naming_the_field(alice, multi_user):
    document = store(alice)
    url = f"/api/documents/{document.id}/groups/"
    response = token_client(alice).post(url, {"group": "nobody", "role": "read"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "unknown_group" and response.json()["field"] == "group"
    response = token_client(alice).post(url, {"group": "x\x00y"}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "group"
    Group.objects.create(name="team")
    response = token_client(alice).post(url, {"group": "team", "role": "admin"}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "role"
    assert not GroupShare.objects.exists()


def test_only_the_owner_shares_with_groups(alice, bob, charlie, team, multi_user):
    document = store(alice)
    services.share_with_group(document, "team", "write")
    url = f"/api/documents/{document.id}/groups/"
    assert token_client(bob).post(url, {"group": "team", "role": "read"}, format="json").status_code == 403
    assert token_client(bob).delete(url + "team/").status_code == 403
    assert token_client(charlie).get(url).status_code == 404
    assert GroupShare.objects.get().role == "write"


def test_the_role_is_found_in_one_query_however_many_groups(alice, bob, multi_user):
    document = store(alice)
    for n in range(5):
        group = Group.objects.create(name=f"g{n}")
        bob.groups.add(group)
        services.share_with_group(document, group.name, "write" if n == 3 else "read")
    services.share(document, "bob", "read")
    with CaptureQueriesContext(connection) as queries:
        assert access.role_for(bob, document) == "write"
    assert len(queries) == 1


def test_a_groups_documents_appear_on_its_members_list_page_once(alice, bob, client, multi_user):
    document = store(alice, "team plot")
    for name in ("one", "two"):
        bob.groups.add(Group.objects.create(name=name))
        services.share_with_group(document, name, "read")
    services.share(document, "bob", "read")
    assert list(services.shared_documents(bob)) == [document]
    client.force_login(bob)
    page = client.get("/").content.decode()
    assert "Shared with you" in page and page.count("team plot") >= 1


def test_the_sharing_page_adds_and_removes_group_shares(alice, bob, team, client, multi_user):
    document = store(alice)
    client.force_login(alice)
    url = f"/documents/{document.id}/share/"
    client.post(url, {"action": "share_group", "group": "team", "role": "write"})
    assert GroupShare.objects.get(document=document).role == "write"
    page = client.get(url).content.decode()
    assert "group-shares" in page and "team" in page
    response = client.post(url, {"action": "share_group", "group": "nobody", "role": "read"}, follow=True)
    assert "no group called &#x27;nobody&#x27;" in response.content.decode()
    client.post(url, {"action": "unshare_group", "group": "team"})
    assert not GroupShare.objects.exists()


def test_the_sharing_page_shows_its_groups_once_and_a_plain_title(alice, team, client, multi_user):
    document = store(alice, title="team plot")
    services.share_with_group(document, "team", "read")
    client.force_login(alice)
    page = client.get(f"/documents/{document.id}/share/").content.decode()
    assert re.search(r"<title>(.*?)</title>", page, re.S).group(1) == "Share team plot · bokehsite"
    assert page.count('id="group-share-form"') == 1 and page.count('class="documents group-shares"') == 1


def test_the_admin_edits_group_shares_inline(alice, team, client):
    admin = make_user("root", is_staff=True, is_superuser=True)
    document = store(alice)
    client.force_login(admin)
    response = client.post(f"/admin/documents/document/{document.id}/change/", {
        "title": document.title, "owner": alice.id, "visibility": "private",
        "collaborators-TOTAL_FORMS": "0", "collaborators-INITIAL_FORMS": "0",
        "group_shares-TOTAL_FORMS": "1", "group_shares-INITIAL_FORMS": "0",
        "group_shares-0-group": team.id, "group_shares-0-role": "write",
    })
    assert response.status_code == 302, response.content.decode()[-1500:]
    assert GroupShare.objects.get(document=document).group == team
