"""Who may do what to which document, in both modes, each case with its exact status code.

Rules (README, "Sharing"):
- Someone who may not see a document gets 404, never 403, so its existence does not leak.
- Someone who may see it but not do this gets 403 (they already know it exists).
- Read: owner, collaborators, staff, anyone for a public document, anyone with a secret link's key.
- Replace the content: owner and write collaborators. Rename, delete, publish, share: owner only.
- Multi-user mode: the API needs a login or a token (401); pages redirect anonymous visitors to
  the login page, except public and secret-link pages, which render for anyone.
- Single-user mode: every request is ``defaultuser``, whatever credentials it carries.
"""

import pytest
from rest_framework.test import APIClient

from bokehsite import wire
from documents import services
from documents.models import Document, Snapshot
from tests.conftest import make_user, token_client
from tests.helpers import line_document, store

pytestmark = pytest.mark.django_db

WHO = ["anonymous", "owner", "other", "reader", "writer", "staff"]
DOCS = ["private", "public", "secret_link", "secret_without_key"]
ACTIONS = ["list", "page", "get_json", "get_content", "replace", "rename", "delete", "publish", "collaborators"]
SUCCESS = {"list": 200, "page": 200, "get_json": 200, "get_content": 200, "replace": 200, "rename": 200,
           "delete": 204, "publish": 200, "collaborators": 201}
NEEDS = {"page": "read", "get_json": "read", "get_content": "read", "replace": "write", "rename": "owner",
         "delete": "owner", "publish": "owner", "collaborators": "owner"}
RANK = {None: 0, "read": 1, "write": 2, "owner": 3}
REPLACEMENT = None
CONTENT = None


def quick_store(owner, title):
    """A stored document, without validating the same content again for each of the many cases."""
    global CONTENT
    if CONTENT is None:
        CONTENT = services.bokeh_io.dump(line_document())
    document = Document.objects.create(owner=owner, title=title)
    snapshot = Snapshot(document=document, version=document.version)
    snapshot.set_content(*CONTENT)
    snapshot.save()
    return document


def replacement_body() -> bytes:
    global REPLACEMENT
    if REPLACEMENT is None:
        serialized = wire.document_json(line_document(20))
        REPLACEMENT = wire.pack({"doc": serialized.content}, serialized.buffers)
    return REPLACEMENT


def role_of(who: str, doc: str) -> str | None:
    """The role the matrix expects; in single-user mode every caller is defaultuser, an "other"."""
    if who == "owner":
        return "owner"
    if who in ("reader", "staff"):
        return "read"
    if who == "writer":
        return "write"
    return "read" if doc in ("public", "secret_link") else None


def expected(mode: str, who: str, doc: str, action: str) -> int:
    if mode == "single":
        who = "other"  # defaultuser: not the owner, not a collaborator, not staff
    if who == "anonymous" and action != "page":
        return 401
    if action == "list":
        return 200
    role = role_of(who, doc)
    if role is None:
        return 302 if who == "anonymous" and action == "page" else 404
    if RANK[role] < RANK[NEEDS[action]]:
        return 403
    return SUCCESS[action]


@pytest.fixture
def world(db):
    alice = make_user("alice")
    bob = make_user("bob")
    dave = make_user("dave")
    charlie = make_user("charlie")
    sam = make_user("sam", is_staff=True)
    make_user("erin")
    documents = {}
    for kind in DOCS:
        if kind == "secret_without_key" and "secret_link" in documents:
            documents[kind] = documents["secret_link"]
            continue
        document = quick_store(alice, kind)
        if kind == "public":
            services.publish(document)
        elif kind == "secret_link":
            services.regenerate_secret_link(document)
        services.share(document, "bob", "read")
        services.share(document, "dave", "write")
        documents[kind] = document
    users = {"owner": alice, "other": charlie, "reader": bob, "writer": dave, "staff": sam}
    return users, documents


def call(mode, who, doc, action, world, client):
    users, documents = world
    document = documents[doc]
    query = f"?key={document.secret_key}" if doc == "secret_link" else ""
    base = f"/api/documents/{document.id}/"
    if action == "page":
        if who != "anonymous":
            client.force_login(users[who])
        return client.get(f"/documents/{document.id}/{query}")
    api = APIClient() if who == "anonymous" else token_client(users[who])
    if action == "list":
        return api.get("/api/documents/")
    if action == "get_json":
        return api.get(base + query)
    if action == "get_content":
        return api.get(base + "doc/" + query, HTTP_ACCEPT=wire.CONTENT_TYPE)
    if action == "replace":
        return api.generic("PUT", base + "doc/" + query, replacement_body(), content_type=wire.CONTENT_TYPE)
    if action == "rename":
        return api.patch(base + query, {"title": "renamed"}, format="json")
    if action == "delete":
        return api.delete(base + query)
    if action == "publish":
        return api.post(base + "publish/" + query)
    if action == "collaborators":
        return api.post(base + "collaborators/" + query, {"username": "erin", "role": "read"}, format="json")
    raise AssertionError(action)


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("doc", DOCS)
@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("mode", ["multi", "single"])
def test_access(mode, who, doc, action, world, client, settings):
    settings.BOKEHSITE_MULTI_USER = mode == "multi"
    document = world[1][doc]
    before = Document.objects.values("title", "visibility", "version").get(pk=document.pk)

    response = call(mode, who, doc, action, world, client)

    status = expected(mode, who, doc, action)
    assert response.status_code == status, getattr(response, "content", b"")[:300]
    if status == 302:
        assert response["Location"].startswith("/accounts/login/?next=")
    if status >= 400 and response.get("Content-Type", "").startswith("application/json"):
        code = {401: ("not_authenticated",), 403: ("forbidden",), 404: ("not_found",)}[status]
        assert response.json()["error"] in code
    if action == "list":
        titles = [d["title"] for d in response.json()] if status == 200 else []
        assert (document.title in titles) == (mode == "multi" and who == "owner")
    if status >= 300:  # nothing changed
        after = Document.objects.filter(pk=document.pk).values("title", "visibility", "version").first()
        assert after == before
        assert not document.collaborators.filter(user__username="erin").exists()


@pytest.mark.parametrize("action", ACTIONS)
def test_in_single_user_mode_defaultuser_may_do_everything_to_its_documents(action, client):
    from accounts.users import default_user

    document = store(default_user(), "mine")
    make_user("erin")
    api = APIClient()  # no credentials at all
    base = f"/api/documents/{document.id}/"
    response = {
        "list": lambda: api.get("/api/documents/"),
        "page": lambda: client.get(f"/documents/{document.id}/"),
        "get_json": lambda: api.get(base),
        "get_content": lambda: api.get(base + "doc/", HTTP_ACCEPT=wire.CONTENT_TYPE),
        "replace": lambda: api.generic("PUT", base + "doc/", replacement_body(), content_type=wire.CONTENT_TYPE),
        "rename": lambda: api.patch(base, {"title": "renamed"}, format="json"),
        "delete": lambda: api.delete(base),
        "publish": lambda: api.post(base + "publish/"),
        "collaborators": lambda: api.post(base + "collaborators/", {"username": "erin"}, format="json"),
    }[action]()
    assert response.status_code == SUCCESS[action]


def test_a_secret_link_without_its_key_or_with_an_old_key_is_not_found(world, multi_user):
    users, documents = world
    document = documents["secret_link"]
    old_key = document.secret_key
    services.regenerate_secret_link(document)
    api = token_client(users["other"])
    assert api.get(f"/api/documents/{document.id}/?key={old_key}").status_code == 404
    assert api.get(f"/api/documents/{document.id}/?key={document.secret_key}").status_code == 200
