"""Who a websocket connection is, in multi-user mode: API tokens, frame tokens, cookies."""

import json

import pytest

from accounts.tokens import create_token, revoke_token
from bokehsite import protocol
from documents import services
from documents.frames import sign_frame_token
from documents.models import Event, Role, Visibility
from tests.helpers import append_frame, closed_with, line_document, open_socket, run, stored_line

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("multi_user")]


@pytest.fixture
def document(alice):
    return stored_line(alice, "alice's")


def test_a_python_session_is_its_api_token(document, alice):
    stored, doc, source = document
    _, secret = create_token(alice, "laptop")

    async def scenario():
        socket, hello = await open_socket(protocol.path(stored.id), [(b"authorization", f"Token {secret}".encode())])
        assert hello["type"] == "hello" and hello["role"] == "write"
        await socket.send_to(bytes_data=append_frame(doc, source))
        assert json.loads(await socket.receive_from(5)) == {"type": "ack", "id": 1, "version": 2}
        await socket.disconnect()

    run(scenario)
    assert Event.objects.get().author == alice


@pytest.mark.parametrize("header", [b"Token bks_nottherightsecret", b"Bearer nonsense"])
def test_a_bad_api_token_is_refused_with_a_message(document, header):
    stored, _, _ = document

    async def scenario():
        socket, error = await open_socket(protocol.path(stored.id), [(b"authorization", header)])
        assert (error["type"], error["code"]) == ("error", "invalid_token")
        assert await closed_with(socket) == 4401

    run(scenario)


def test_a_revoked_token_is_refused(document, alice):
    stored, _, _ = document
    token, secret = create_token(alice, "old")
    revoke_token(token)

    async def scenario():
        socket, error = await open_socket(protocol.path(stored.id), [(b"authorization", f"Token {secret}".encode())])
        assert error["code"] == "invalid_token"

    run(scenario)


def test_someone_without_access_does_not_learn_the_document_exists(document, charlie):
    stored, _, _ = document
    _, secret = create_token(charlie, "nosy")

    async def scenario():
        socket, error = await open_socket(protocol.path(stored.id), [(b"authorization", f"Token {secret}".encode())])
        assert error["code"] == "not_found"
        assert await closed_with(socket) == 4404

    run(scenario)


def test_a_read_collaborator_follows_but_may_not_change(document, bob):
    stored, doc, source = document
    services.share(stored, bob.username, Role.READ)
    _, secret = create_token(bob, "bob")

    async def scenario():
        socket, hello = await open_socket(protocol.path(stored.id), [(b"authorization", f"Token {secret}".encode())])
        assert hello["role"] == "read"
        await socket.send_to(bytes_data=append_frame(doc, source))
        assert json.loads(await socket.receive_from(5))["code"] == "forbidden"
        await socket.disconnect()

    run(scenario)
    assert not Event.objects.exists()


def test_the_sandboxed_frame_is_admitted_by_its_token_from_the_opaque_origin(document):
    stored, doc, source = document
    token = sign_frame_token(stored, "owner", user_id=stored.owner_id)

    async def scenario():
        socket, hello = await open_socket(protocol.path(stored.id) + f"?frame_token={token}", [(b"origin", b"null")])
        assert hello["role"] == "write"
        await socket.send_to(bytes_data=append_frame(doc, source))
        assert json.loads(await socket.receive_from(5))["type"] == "ack"
        await socket.disconnect()

    run(scenario)


def test_a_read_only_frame_token_may_not_change_the_document(document):
    stored, doc, source = document
    stored.visibility = Visibility.PUBLIC
    stored.save()
    token = sign_frame_token(stored, "read")

    async def scenario():
        socket, hello = await open_socket(protocol.path(stored.id) + f"?frame_token={token}", [(b"origin", b"null")])
        assert hello["role"] == "read"
        await socket.send_to(bytes_data=append_frame(doc, source))
        assert json.loads(await socket.receive_from(5))["code"] == "forbidden"
        await socket.disconnect()

    run(scenario)
    assert not Event.objects.exists()


def test_a_frame_token_for_another_document_or_forged_is_refused(document, alice):
    stored, _, _ = document
    other = services.create_document(alice, "other", *services.bokeh_json.dump(line_document()))
    token = sign_frame_token(other, "owner", user_id=alice.pk)

    async def scenario():
        socket, error = await open_socket(protocol.path(stored.id) + f"?frame_token={token}", [(b"origin", b"null")])
        assert error["code"] == "invalid_frame_token" and await closed_with(socket) == 4401
        socket, error = await open_socket(protocol.path(stored.id) + f"?frame_token={token}x", [(b"origin", b"null")])
        assert error["code"] == "invalid_frame_token"

    run(scenario)


def test_a_logged_in_browser_from_another_site_is_anonymous(document, alice, client):
    stored, _, _ = document
    client.force_login(alice)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def scenario():
        socket, hello = await open_socket(protocol.path(stored.id), [(b"cookie", cookie), (b"host", b"localhost"), (b"origin", b"http://localhost")])
        assert hello["role"] == "write"  # alice's own page: her session
        await socket.disconnect()
        socket, error = await open_socket(protocol.path(stored.id), [(b"cookie", cookie), (b"origin", b"http://evil.example")])
        assert error["code"] == "not_found"  # another site's page does not get her session

    run(scenario)
