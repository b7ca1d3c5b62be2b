"""An embed reads only, whoever looks at it: a page of the same site embedding a plot sends the
viewer's cookies along, and the viewer may be the document's owner or a write collaborator.
Neither their embed's socket nor its frame can change the document, and the access resolver
gives any embed caller at most ``read``, whatever user it carries."""

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from documents import access, embeds, services
from documents.frames import verify_frame_token
from documents.models import Document, Role
from tests.conftest import PASSWORD
from tests.helpers import BUNDLE, append_frame, open_socket, plain, receive, run, stored_line, stream_patch
from bokehsite import wire

HOST = "http://127.0.0.1:9001"  # the page that embeds


@pytest.fixture
def shared(alice, bob, multi_user):
    """Alice's public document, which Bob may change, and an embed token for it."""
    document, doc, source = stored_line(alice)
    services.publish(document)
    services.share(document, "bob", Role.WRITE)
    _, secret = embeds.create(document, [HOST])
    return document, doc, source, secret


def logged_in(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    assert client.login(username=user.username, password=PASSWORD)
    return client


def embed_frame_token(client: Client, document, secret: str | None) -> str:
    """The frame token of the embed this viewer's browser loads, cookies and all."""
    query = {"embed_token": secret} if secret else {"public": "true"}
    response = client.get(f"/documents/{document.id}/autoload.js", query, HTTP_REFERER=f"{HOST}/page.html")
    config = json.loads(re.search(r"const config = (\{.*\});", response.content.decode()).group(1))
    assert "error" not in config, config
    token = parse_qs(urlsplit(config["frame_url"]).query)["frame_token"][0]
    fresh = client.get(f"/documents/{document.id}/frame-token/", {"embed": "1", **query}, HTTP_ORIGIN=HOST)
    assert fresh.status_code == 200 and fresh.json()["role"] == "read"
    assert verify_frame_token(fresh.json()["token"]).role == "read"
    return token


VIEWERS = ["alice", "bob"]  # the owner, a write collaborator
EMBEDS = ["public", "embed token"]


@pytest.mark.parametrize("viewer", VIEWERS)
@pytest.mark.parametrize("kind", EMBEDS)
def test_the_access_resolver_gives_an_embed_caller_read_whoever_it_carries(shared, viewer, kind, django_user_model):
    document, _, _, secret = shared
    user = django_user_model.objects.get(username=viewer)
    assert access.resolve(access.Caller(user), document.id).role in ("owner", "write")
    embed = embeds.lookup(secret) if kind == "embed token" else "public"
    resolved = access.resolve(access.Caller(user, embed=embed), document.id)
    assert resolved.role == "read"
    assert verify_frame_token(access.mint_frame_token(access.Caller(user, embed=embed), resolved)).role == "read"


def test_in_single_user_mode_an_open_embed_of_the_one_user_reads_only(rf, db):
    from accounts.users import default_user

    document, _, _ = stored_line(default_user())
    caller = access.embed_caller(rf.get(f"/documents/{document.id}/autoload.js"))
    assert caller.user == default_user() and caller.embed == "open"
    assert access.resolve(caller, document.id).role == "read"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("viewer", VIEWERS)
@pytest.mark.parametrize("kind", EMBEDS)
def test_an_embeds_socket_opened_with_the_viewers_cookies_cannot_change_the_document(shared, viewer, kind):
    document, doc, source, secret = shared
    client = logged_in(document.owner if viewer == "alice" else document.collaborators.get().user)
    frame_token = embed_frame_token(client, document, secret if kind == "embed token" else None)
    cookies = "; ".join(f"{name}={morsel.value}" for name, morsel in client.cookies.items()).encode()

    async def scenario():
        for origin in (b"null", b"http://testserver"):
            socket, hello = await open_socket(f"/ws/documents/{document.id}/?frame_token={frame_token}",
                                              headers=[(b"cookie", cookies), (b"origin", origin), (b"host", b"testserver")])
            assert (hello["type"], hello["role"]) == ("hello", "read")
            await socket.send_to(bytes_data=append_frame(doc, source, request_id=5))
            error = await receive(socket)
            assert (error["type"], error["code"], error["id"]) == ("error", "forbidden", 5)
            await socket.disconnect()

    run(scenario)
    assert Document.objects.get().version == 1


@pytest.mark.parametrize("viewer", VIEWERS)
@pytest.mark.parametrize("kind", EMBEDS)
def test_an_embeds_frame_cannot_change_the_document_with_its_token_or_the_viewers_cookies(shared, viewer, kind):
    document, doc, source, secret = shared
    client = logged_in(document.owner if viewer == "alice" else document.collaborators.get().user)
    frame_token = embed_frame_token(client, document, secret if kind == "embed token" else None)
    frame = client.get(f"/documents/{document.id}/frame/", {"frame_token": frame_token})
    assert frame.status_code == 200 and 'data-role="read"' in frame.content.decode()
    patch, buffers = plain(*stream_patch(doc, source, [6], [1]))
    change = wire.pack({"patch": patch}, buffers)
    events = f"/api/documents/{document.id}/events/?frame_token={frame_token}"
    content = f"/api/documents/{document.id}/doc/?frame_token={frame_token}"
    # What the sandboxed frame sends: an opaque origin, with the viewer's cookies or without.
    for sender in (client, Client(enforce_csrf_checks=True)):
        refused = sender.post(events, change, content_type=BUNDLE, HTTP_ORIGIN="null")
        assert refused.status_code in (401, 403), refused.content
        replaced = sender.put(content, wire.pack({"doc": {}}, []), content_type=BUNDLE, HTTP_ORIGIN="null")
        assert replaced.status_code in (401, 403), replaced.content
    assert Document.objects.get().version == 1
