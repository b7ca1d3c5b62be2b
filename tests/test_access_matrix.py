"""Who may do what to which document, in both modes, each case with its exact status code.

Rules (README, "Sharing"):
- Someone who may not see a document gets 404, never 403, so its existence does not leak.
- Someone who may see it but not do this gets 403 (they already know it exists).
- Read: owner, collaborators, members of a group it is shared with, staff, anyone for a public
  document, anyone with a secret link's key.
- Replace the content: owner, write collaborators, members of a group it is shared with for writing
  (whoever has several roles has the strongest). Rename, delete, publish, share: owner only.
- Multi-user mode: the API needs a login or a token (401); pages redirect anonymous visitors to
  the login page, except public and secret-link pages, which render for anyone.
- Single-user mode: every request is ``defaultuser``, whatever credentials it carries.
"""

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from bokehsite import wire
from documents import services
from documents.models import Document, Snapshot
from tests.conftest import make_user, token_client
from tests.helpers import line_document, store

pytestmark = pytest.mark.django_db

WHO = ["anonymous", "owner", "other", "reader", "writer", "staff",
       "group_reader", "group_writer", "group_reader_and_writer", "group_outsider"]
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
        CONTENT = services.bokeh_json.dump(line_document())
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
    if who in ("reader", "staff", "group_reader"):
        return "read"
    if who in ("writer", "group_writer", "group_reader_and_writer"):
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
    readers, writers, others = (Group.objects.create(name=name) for name in ("readers", "writers", "others"))
    group_reader, group_writer = make_user("gina"), make_user("walt")
    both, outsider = make_user("bea"), make_user("otto")
    group_reader.groups.add(readers, others)
    group_writer.groups.add(writers)
    both.groups.add(readers)
    outsider.groups.add(others)
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
        services.share_with_group(document, "readers", "read")
        services.share_with_group(document, "writers", "write")
        services.share(document, "bea", "write")  # and a member of "readers"
        documents[kind] = document
    users = {"owner": alice, "other": charlie, "reader": bob, "writer": dave, "staff": sam,
             "group_reader": group_reader, "group_writer": group_writer, "group_reader_and_writer": both,
             "group_outsider": outsider}
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


# --- connections already open when access changes ---------------------------------------------
# How a websocket connected, and what then changes; within a second each connection must either
# carry on untouched, be told it may now only read, or be told why and closed (4401: its
# credentials no longer hold; 4404: it may no longer see the document).

CONNECTED = ["owner_token", "writer_token", "reader_token", "writer_session", "public_anonymous",
             "secret_link", "writer_frame", "group_writer_token", "group_writer_session",
             "group_reader_and_writer_token"]
CHANGES = ["revoke_tokens", "deactivate", "unshare", "demote", "make_private", "rotate_secret", "delete",
           "leave_group", "unshare_group", "demote_group", "delete_group"]


def after_change(connected: str, change: str) -> str:
    """What the rules say happens to the connection: "same", "read", "4401" or "4404"."""
    user_bound = connected not in ("public_anonymous", "secret_link")
    collaborator = connected in ("writer_token", "reader_token", "writer_session", "writer_frame")
    member = connected.startswith("group_")  # of the "writers" group, whose share is "write"
    if member and change in ("leave_group", "unshare_group", "delete_group"):
        # a write collaborator too keeps writing; a member only, nothing
        return "same" if connected == "group_reader_and_writer_token" else "4404"
    if member and change == "demote_group":
        return "same" if connected == "group_reader_and_writer_token" else "read"
    if connected == "group_reader_and_writer_token" and change in ("unshare", "demote"):
        return "same"  # the group still lets them write
    if change == "delete":
        return "4404"
    if change == "revoke_tokens":
        return "4401" if connected.endswith("_token") else "same"
    if change == "deactivate" and user_bound:
        return "4401" if connected.endswith("_token") else "4404"
    if change == "unshare" and collaborator:
        return "4404"
    if change == "demote" and collaborator:
        return "same" if connected == "reader_token" else "read"
    if change in ("make_private", "rotate_secret") and not user_bound:
        return "4404"  # the public and the holders of the old link may no longer see it
    return "same"


def open_connection(connected: str):
    """A document shared as ``connected`` needs, and the path and headers of that connection."""
    from django.test import Client

    from accounts.tokens import create_token
    from bokehsite import protocol
    from documents import access

    alice, bob, carol, gus = make_user("alice"), make_user("bob"), make_user("carol"), make_user("gus")
    document = quick_store(alice, "matrix")
    services.share(document, "bob", "write")
    services.share(document, "carol", "read")
    writers = Group.objects.create(name="writers")
    services.share_with_group(document, "writers", "write")
    gus.groups.add(writers)
    if connected == "group_reader_and_writer_token":
        gus.groups.add(Group.objects.create(name="readers"))
        services.share_with_group(document, "readers", "read")
        services.share(document, "gus", "write")
    path, headers, user = protocol.path(document.id), [], None
    ours = [(b"origin", b"http://localhost"), (b"host", b"localhost")]  # a page of this site
    if connected.startswith("group_"):
        user = gus
    if connected.endswith("_token"):
        user = {"owner_token": alice, "writer_token": bob, "reader_token": carol}.get(connected, user)
        headers = [(b"authorization", f"Token {create_token(user, 'matrix')[1]}".encode())]
    elif connected.endswith("_session"):
        user, client = user or bob, Client()
        client.force_login(user)
        headers = [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()), *ours]
    elif connected == "writer_frame":
        user, caller = bob, access.Caller(bob)
        path += f"?frame_token={access.mint_frame_token(caller, access.resolve(caller, document.id))}"
        headers = [(b"origin", b"null")]
    elif connected == "public_anonymous":
        services.publish(document)
        headers = ours
    else:
        services.regenerate_secret_link(document)
        path += f"?key={document.secret_key}"
        headers = ours
    return document, user, path, headers


def make_change(change: str, document, user) -> None:
    from accounts import tokens

    if change == "revoke_tokens" and user is not None:
        for token in tokens.tokens_of(user):
            tokens.revoke_token(token)
    elif change == "deactivate" and user is not None:
        user.is_active = False
        user.save()
    elif change == "unshare" and document.collaborators.filter(user=user).exists():
        services.unshare(document, user.username)
    elif change == "demote" and document.collaborators.filter(user=user).exists():
        services.share(document, user.username, "read")
    elif change == "make_private":
        services.set_visibility(document, "private")
    elif change == "rotate_secret":
        services.regenerate_secret_link(document)
    elif change == "delete":
        Document.objects.filter(pk=document.pk).delete()
    elif change == "leave_group" and user is not None:
        user.groups.remove(Group.objects.get(name="writers"))
    elif change == "unshare_group":
        services.unshare_group(document, "writers")
    elif change == "demote_group":
        services.share_with_group(document, "writers", "read")
    elif change == "delete_group":
        Group.objects.filter(name="writers").delete()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("connected", CONNECTED)
def test_open_connections_follow_changes_of_access(connected, change, multi_user):
    from channels.db import database_sync_to_async

    from bokehsite import protocol
    from tests.helpers import closed_with, open_socket, receive, run

    document, user, path, headers = open_connection(connected)
    outcome = after_change(connected, change)

    async def scenario():
        socket, hello = await open_socket(path, headers)
        assert hello["type"] == "hello", hello
        await database_sync_to_async(make_change)(change, document, user)
        if outcome == "same":
            assert await socket.receive_nothing(0.3)
            await socket.disconnect()
        elif outcome == "read":
            assert await receive(socket, timeout=1) == {"type": "role", "role": "read"}
            await socket.send_to(text_data=protocol.Patch(id=7, patch={"events": [
                {"kind": "TitleChanged", "title": "mine now"}]}).encode())
            refused = await receive(socket)
            assert (refused["code"], refused["id"]) == ("forbidden", 7)
            await socket.disconnect()
        else:
            error = await receive(socket, timeout=1)
            assert error["code"] == {"4401": "invalid_token", "4404": "not_found"}[outcome], error
            assert await closed_with(socket) == int(outcome)

    run(scenario)
