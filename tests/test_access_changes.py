"""Open connections follow changes of access: within a second they are told their new role, or
why they may no longer follow the document, and closed. (``test_access_matrix`` has every kind of
connection against every kind of change; these are the cases around it.)"""

import asyncio
import json
import os

import pytest
import requests
import websockets
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.test import Client
from rest_framework.test import APIClient

from accounts.tokens import create_token, revoke_token
from bokehsite import protocol
from bokehsite.client import Session
from bokehsite.client.exceptions import ServerError
from bokehsite.client.follower import Follower
from documents import access, services
from documents.models import Event, Role
from streaming import broadcast
from tests.helpers import append_frame, closed_with, open_socket, receive, run, stored_line
from tests.servers import DaphneServer, database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("multi_user")]
db = database_sync_to_async
# What "at once" means here: the change reaches the connection within this many seconds.
PROMPTLY = 1.0
OURS = [(b"origin", b"http://localhost"), (b"host", b"localhost")]  # a page of this site


@pytest.fixture
def document(alice):
    return stored_line(alice, "alice's")


def with_token(user):
    return [(b"authorization", f"Token {create_token(user, 'laptop')[1]}".encode())]


def with_session(user):
    client = Client()
    client.force_login(user)
    return client, [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()), *OURS]


async def assert_refused(socket, code: str, close_code: int) -> None:
    error = await receive(socket, timeout=PROMPTLY)
    assert (error["type"], error["code"]) == ("error", code), error
    assert await closed_with(socket) == close_code


async def assert_role(socket, role: str) -> None:
    assert await receive(socket, timeout=PROMPTLY) == {"type": "role", "role": role}


def share(document, user, role):
    services.share(document, user.username, role)


def test_revoking_a_token_closes_the_connection_it_opened(document, alice):
    stored, _, _ = document
    token, secret = create_token(alice, "laptop")
    untouched = with_token(alice)

    async def scenario():
        socket, hello = await open_socket(protocol.path(stored.id), [(b"authorization", f"Token {secret}".encode())])
        other, _ = await open_socket(protocol.path(stored.id), untouched)
        assert hello["role"] == "write"
        await db(revoke_token)(token)
        await assert_refused(socket, "invalid_token", 4401)
        assert await other.receive_nothing(0.3)  # her other token still works
        await other.disconnect()

    run(scenario)


def test_logging_out_through_the_api_closes_that_tokens_connections(document, alice):
    stored, _, _ = document
    _, secret = create_token(alice, "laptop")
    header = [(b"authorization", f"Token {secret}".encode())]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {secret}")

    async def scenario():
        socket, _ = await open_socket(protocol.path(stored.id), header)
        assert (await db(api.post)("/api/auth/logout/")).status_code == 204
        await assert_refused(socket, "invalid_token", 4401)

    run(scenario)


def test_a_deleted_user_loses_every_connection(document, alice, charlie):
    stored, _, _ = document
    share(stored, charlie, Role.READ)
    by_token, (_, by_cookie) = with_token(charlie), with_session(charlie)

    async def scenario():
        token_socket, _ = await open_socket(protocol.path(stored.id), by_token)
        cookie_socket, hello = await open_socket(protocol.path(stored.id), by_cookie)
        assert hello["role"] == "read"
        await db(charlie.delete)()
        await assert_refused(token_socket, "invalid_token", 4401)
        await assert_refused(cookie_socket, "not_found", 4404)

    run(scenario)


def test_logging_out_of_the_browser_ends_its_connections(document, alice, bob):
    stored, _, _ = document
    share(stored, bob, Role.WRITE)
    browser, cookie = with_session(bob)

    async def scenario():
        socket, hello = await open_socket(protocol.path(stored.id), cookie)
        assert hello["role"] == "write"
        assert (await db(browser.post)("/accounts/logout/")).status_code == 302
        await assert_refused(socket, "not_found", 4404)

    run(scenario)


def test_logging_out_leaves_what_anyone_may_see(document, alice):
    stored, _, _ = document
    services.publish(stored)
    browser, cookie = with_session(alice)

    async def scenario():
        socket, hello = await open_socket(protocol.path(stored.id), cookie)
        assert hello["role"] == "write"
        await db(browser.post)("/accounts/logout/")
        await assert_role(socket, "read")  # the public still may read it
        await socket.disconnect()

    run(scenario)


def test_a_frame_token_is_checked_against_the_rights_of_now(document, alice, bob, client):
    stored, _, _ = document
    share(stored, bob, Role.WRITE)
    bob_as_caller = access.Caller(bob)
    token = access.mint_frame_token(bob_as_caller, access.resolve(bob_as_caller, stored.id))
    path = protocol.path(stored.id) + f"?frame_token={token}"
    frame = [(b"origin", b"null")]

    async def scenario():
        socket, hello = await open_socket(path, frame)
        assert hello["role"] == "write"
        await db(share)(stored, bob, Role.READ)
        await assert_role(socket, "read")
        await db(services.unshare)(stored, "bob")
        await assert_refused(socket, "not_found", 4404)
        # The same token, still within its lifetime, opens nothing now.
        socket, error = await open_socket(path, frame)
        assert error["code"] == "not_found" and await closed_with(socket) == 4404

    run(scenario)
    content = client.get(f"/api/documents/{stored.id}/doc/", {"frame_token": token}, HTTP_ACCEPT="application/vnd.bokehsite.bundle")
    assert content.status_code == 404
    assert client.get(f"/documents/{stored.id}/frame/", {"frame_token": token}).status_code == 404


def test_a_frame_token_of_a_demoted_writer_reads_only(document, alice, bob):
    stored, doc, source = document
    share(stored, bob, Role.WRITE)
    caller = access.Caller(bob)
    token = access.mint_frame_token(caller, access.resolve(caller, stored.id))
    share(stored, bob, Role.READ)

    async def scenario():
        socket, hello = await open_socket(protocol.path(stored.id) + f"?frame_token={token}", [(b"origin", b"null")])
        assert hello["role"] == "read"
        await socket.send_to(bytes_data=append_frame(doc, source))
        assert (await receive(socket))["code"] == "forbidden"
        await socket.disconnect()

    run(scenario)
    assert not Event.objects.exists()


def test_a_frame_token_of_a_rotated_secret_link_opens_nothing(document, client):
    stored, _, _ = document
    services.regenerate_secret_link(stored)
    caller = access.Caller(AnonymousUser(), key=stored.secret_key)
    token = access.mint_frame_token(caller, access.resolve(caller, stored.id))
    path = protocol.path(stored.id) + f"?frame_token={token}"

    async def scenario():
        socket, hello = await open_socket(path, [(b"origin", b"null")])
        assert hello["role"] == "read"
        await db(services.regenerate_secret_link)(stored)
        await assert_refused(socket, "not_found", 4404)

    run(scenario)
    assert client.get(f"/documents/{stored.id}/frame/", {"frame_token": token}).status_code == 404


def test_an_expiring_token_is_noticed_when_it_expires(document, alice, settings):
    from django.utils import timezone

    stored, _, _ = document
    settings.BOKEHSITE_ACCESS_RECHECK = 300  # not by the check in case an announcement was lost
    token, secret = create_token(alice, "short", expires=timezone.now() + timezone.timedelta(seconds=1))

    async def scenario():
        socket, hello = await open_socket(protocol.path(stored.id), [(b"authorization", f"Token {secret}".encode())])
        assert hello["role"] == "write"
        error = await receive(socket, timeout=3)
        assert error["code"] == "invalid_token" and await closed_with(socket) == 4401

    run(scenario)


def test_changes_of_content_do_not_disturb_anyone(document, alice):
    stored, _, _ = document
    owners = with_token(alice)

    async def scenario():
        socket, _ = await open_socket(protocol.path(stored.id), owners)
        await db(services.rename_document)(stored, "renamed")
        await db(get_user_model().objects.filter(pk=alice.pk).update)(first_name="Alice")
        assert await socket.receive_nothing(0.3)
        await socket.disconnect()

    run(scenario)



@pytest.mark.daphne
@pytest.mark.skipif("REDIS_URL" not in os.environ, reason="needs REDIS_URL: the multi-process run uses Redis")
def test_a_change_made_through_one_process_reaches_connections_on_another(document, alice, bob):
    stored, _, _ = document
    share(stored, bob, Role.WRITE)
    bobs_token, bobs_secret = create_token(bob, "laptop")
    _, alices_secret = create_token(alice, "laptop")
    env = {"DATABASE_URL": database_url(settings.DATABASES["default"]), "REDIS_URL": os.environ["REDIS_URL"],
           "BOKEHSITE_MULTI_USER": "1"}

    async def connect(server: DaphneServer, secret: str):
        ws = await websockets.connect(protocol.url(server.url, stored.id),
                                      additional_headers={"Authorization": f"Token {secret}"})
        assert json.loads(await ws.recv())["role"] == "write"
        return ws

    async def closed(ws) -> tuple[dict, int]:
        """The error the server sent, within a second, and the code it closed with."""
        error = json.loads(await asyncio.wait_for(ws.recv(), PROMPTLY))
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closing:
            await asyncio.wait_for(ws.recv(), PROMPTLY)
        return error, closing.value.rcvd.code

    async def scenario(first: DaphneServer, second: DaphneServer):
        by_token = await connect(first, bobs_secret)
        as_collaborator = await connect(first, bobs_secret)
        revoked = await asyncio.to_thread(requests.delete, f"{second.url}api/tokens/{bobs_token.id}/",
                                          headers={"Authorization": f"Token {bobs_secret}"})
        assert revoked.status_code == 204
        for ws in (by_token, as_collaborator):
            error, code = await closed(ws)
            assert (error["code"], code) == ("invalid_token", 4401)

        _, fresh = await asyncio.to_thread(create_token, bob, "another")
        ws = await connect(first, fresh)
        unshared = await asyncio.to_thread(requests.delete, f"{second.url}api/documents/{stored.id}/collaborators/bob/",
                                           headers={"Authorization": f"Token {alices_secret}"})
        assert unshared.status_code == 204
        error, code = await closed(ws)
        assert (error["code"], code) == ("not_found", 4404)

    with DaphneServer(env=env) as first, DaphneServer(env=env) as second:
        asyncio.run(scenario(first, second))


@pytest.mark.daphne
def test_a_python_follower_whose_access_is_taken_stops_with_the_servers_reason(multi_user_server_url, document, alice, bob):
    stored, _, _ = document
    share(stored, bob, Role.READ)
    _, bobs = create_token(bob, "laptop")
    _, alices = create_token(alice, "laptop")

    async def scenario():
        async with Follower(Session(multi_user_server_url, token=bobs), str(stored.id)) as follower:
            unshared = await asyncio.to_thread(
                requests.delete, f"{multi_user_server_url}api/documents/{stored.id}/collaborators/bob/",
                headers={"Authorization": f"Token {alices}"})
            assert unshared.status_code == 204
            with pytest.raises(ServerError) as refused:
                await follower.wait_for(follower.version + 1, timeout=5)
            return refused.value

    refusal = asyncio.run(scenario())
    assert (refusal.code, refusal.status) == ("not_found", 404)


def test_a_member_removed_from_a_group_in_the_admin_loses_the_groups_document(document, alice, bob):
    from django.contrib.auth.models import Group

    stored, _, _ = document
    writers, readers = Group.objects.create(name="writers"), Group.objects.create(name="readers")
    bob.groups.add(writers, readers)
    services.share_with_group(stored, "writers", "write")
    services.share_with_group(stored, "readers", "read")
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", password="x"))
    header = with_token(bob)

    def set_groups(*groups):
        url = f"/admin/auth/user/{bob.pk}/change/"
        form = {"username": "bob", "is_active": "on", "groups": [g.pk for g in groups],
                "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"}
        for inline in admin.get(url).context["inline_admin_formsets"]:  # as the page sends them
            management = inline.formset.management_form
            form.update({management.add_prefix(name): value for name, value in management.initial.items()})
        response = admin.post(url, form)
        assert response.status_code == 302, response.context["adminform"].form.errors

    async def scenario():
        socket, hello = await open_socket(protocol.path(stored.id), header)
        assert hello["role"] == "write"
        await db(set_groups)(readers)
        await assert_role(socket, "read")
        await db(lambda: readers.user_set.clear())()
        await assert_refused(socket, "not_found", 4404)

    run(scenario)


def test_a_document_ended_on_purpose_says_only_why_though_its_deletion_is_heard_after(document, alice):
    # An app session that ends: its viewers are told why, then the document is deleted, whose own
    # announcement comes next. The connection closes on the first; the second must not tell the
    # page, after the reason, that there is "no such document".
    stored, _, _ = document
    _, by_cookie = with_session(alice)

    async def scenario():
        socket, _ = await open_socket(protocol.path(stored.id), by_cookie)
        await db(broadcast.document_ended)(stored.id, "its Python stopped")
        await db(services.delete_document)(stored)
        error = await receive(socket, timeout=PROMPTLY)
        assert (error["type"], error["code"], error["detail"]) == ("error", "not_found", "its Python stopped")
        assert await closed_with(socket) == 4404
        assert await socket.receive_nothing(PROMPTLY)  # no second refusal after the close

    run(scenario)
