"""The document websocket, driven through the real ASGI application."""

import pytest
from django.contrib.auth import get_user_model

from accounts.users import default_user
from bokehsite import protocol, wire
from documents import services
from documents.models import Event, Snapshot, Visibility
from streaming import broadcast
from tests.helpers import append_frame, communicator, open_socket, plain, receive, run, stored_line, stream_patch

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stored():
    return stored_line(default_user())


async def connect(document_id, origin=b"http://localhost"):
    """A socket to the document, from this site's page (or, with no origin, a Python session)."""
    socket, hello = await open_socket(protocol.path(document_id), [(b"host", b"localhost"), (b"origin", origin)] if origin else [])
    return socket, hello


def test_a_viewer_is_told_the_version_and_receives_changes_in_order(stored):
    document, doc, source = stored

    async def scenario():
        viewer, hello = await connect(document.id)
        assert hello == {"type": "hello", "version": 1, "role": "write", "window": 64, "max_message": 512 * 1024 * 1024}
        await viewer.send_json_to({"type": "sync", "version": 1})
        producer, _ = await connect(document.id, origin=None)  # a Python session sends no Origin
        for i in range(3):
            await producer.send_to(bytes_data=append_frame(doc, source, [10 + i], [i], request_id=i))
            assert await receive(producer) == {"type": "ack", "id": i, "version": 2 + i}
        frames = [await receive(viewer) for _ in range(3)]
        assert [(f["from"], f["version"]) for f in frames] == [(1, 2), (2, 3), (3, 4)]
        assert all(f["items"][0]["patch"]["events"][0]["kind"] == "ColumnsStreamed" for f in frames)
        assert await producer.receive_nothing(0.2)  # it did not sync: nothing comes back to it
        await viewer.disconnect()
        await producer.disconnect()

    run(scenario)


def test_a_change_is_not_echoed_to_its_sender(stored):
    document, doc, source = stored

    async def scenario():
        producer, _ = await connect(document.id, origin=None)
        await producer.send_json_to({"type": "sync", "version": 1})
        await producer.send_to(bytes_data=append_frame(doc, source, [6], [1]))
        replies = [await receive(producer), await receive(producer)]
        assert {"type": "ack", "id": 1, "version": 2} in replies
        marker = next(r for r in replies if r["type"] == "patches")
        assert marker["items"] == [{"version": 2, "own": True}]
        await producer.disconnect()

    run(scenario)


def test_changes_sent_back_to_back_are_stored_together_in_order(stored):
    document, doc, source = stored

    async def scenario():
        viewer, _ = await connect(document.id)
        await viewer.send_json_to({"type": "sync", "version": 1})
        producer, _ = await connect(document.id, origin=None)
        for i in range(20):  # sent without waiting, as a client with changes in flight does
            frame = append_frame(doc, source, [100 + i], [i], request_id=i)
            if i == 7:
                frame = wire.pack({"type": "patch", "id": i, "patch": {"events": [{"kind": "Teleported"}]}}, [])
            await producer.send_to(bytes_data=frame)
        replies = [await receive(producer) for _ in range(20)]
        assert [r["id"] for r in replies] == list(range(20))
        assert replies[7]["type"] == "error" and replies[7]["code"] == "invalid_patch"
        acks = [r["version"] for r in replies if r["type"] == "ack"]
        assert acks == list(range(2, 21))
        frames, version = [], 1
        while version < 20:
            frames.append(await receive(viewer))
            assert frames[-1]["from"] == version  # no gap, no overlap
            version = frames[-1]["version"]
        items = [item["version"] for frame in frames for item in frame["items"]]
        assert items == list(range(2, 21))
        assert len(frames) < len(items)  # those that waited for a transaction shared one, and one frame
        await viewer.disconnect()
        await producer.disconnect()

    run(scenario)
    document.refresh_from_db()
    assert document.version == 20
    assert list(Event.objects.order_by("version").values_list("version", flat=True)) == list(range(2, 21))


def test_a_late_viewer_gets_what_it_missed_in_one_frame(stored):
    document, doc, source = stored
    for i in range(4):
        services.apply_patch(document, *plain(*stream_patch(doc, source, [10 + i], [i])))

    async def scenario():
        viewer, hello = await connect(document.id)
        assert hello["version"] == 5
        await viewer.send_json_to({"type": "sync", "version": 2})
        frame = await receive(viewer)
        assert (frame["type"], frame["from"], frame["version"]) == ("patches", 2, 5)
        assert [item["version"] for item in frame["items"]] == [3, 4, 5]
        await viewer.send_json_to({"type": "sync", "version": None})
        snapshot = await receive(viewer)
        assert (snapshot["type"], snapshot["version"]) == ("snapshot", 5)
        assert "roots" in snapshot["doc"]
        await viewer.disconnect()

    run(scenario)


def test_a_slow_viewer_is_held_back_then_caught_up_from_the_log(stored, settings):
    settings.BOKEHSITE_VIEWER_WINDOW = 3
    settings.BOKEHSITE_CATCHUP_LIMIT = 5
    document, doc, source = stored

    async def scenario():
        viewer, _ = await connect(document.id)
        await viewer.send_json_to({"type": "sync", "version": 1})
        producer, _ = await connect(document.id, origin=None)
        for i in range(8):
            await producer.send_to(bytes_data=append_frame(doc, source, [i], [i], request_id=i))
            await receive(producer)
        # The viewer confirmed nothing: it was sent three changes, then nothing more.
        frames = [await receive(viewer) for _ in range(3)]
        assert [f["version"] for f in frames] == [2, 3, 4]
        assert await viewer.receive_nothing(0.3)
        await viewer.send_json_to({"type": "applied", "version": 4})
        catch_up = await receive(viewer)
        assert (catch_up["from"], catch_up["version"]) == (4, 9)
        assert [item["version"] for item in catch_up["items"]] == [5, 6, 7, 8, 9]
        await viewer.send_json_to({"type": "applied", "version": 9})
        # Further behind than the catch-up limit: a snapshot instead.
        for i in range(9):
            await producer.send_to(bytes_data=append_frame(doc, source, [i], [i], request_id=100 + i))
            await receive(producer)
        frames = [await receive(viewer) for _ in range(3)]
        assert [f["version"] for f in frames] == [10, 11, 12]
        await viewer.send_json_to({"type": "applied", "version": 12})
        frame = await receive(viewer)  # 13 to 18 are six changes, over the limit of five
        assert (frame["type"], frame["version"]) == ("snapshot", 18)
        await viewer.disconnect()
        await producer.disconnect()

    run(scenario)


def test_a_viewer_too_far_behind_gets_a_snapshot(stored, settings):
    settings.BOKEHSITE_CATCHUP_LIMIT = 2
    document, doc, source = stored
    for i in range(5):
        services.apply_patch(document, *plain(*stream_patch(doc, source, [i], [i])))

    async def scenario():
        viewer, _ = await connect(document.id)
        await viewer.send_json_to({"type": "sync", "version": 1})
        frame = await receive(viewer)
        assert (frame["type"], frame["version"]) == ("snapshot", 6)
        await viewer.disconnect()

    run(scenario)


@pytest.mark.parametrize("send, code", [
    ({"bytes_data": b"\x00garbage"}, "malformed_bundle"),
    ({"text_data": "{not json"}, "malformed_json"),
    ({"text_data": "[1, 2]"}, "malformed_json"),
    ({"text_data": '{"type": "dance"}'}, "unknown_message"),
    ({"text_data": '{"type": "sync", "version": "two"}'}, "bad_message"),
    ({"text_data": '{"type": "patch", "id": 7, "patch": {"events": [{"kind": "ModelChanged", "model": {"id": "nope"}, "attr": "x", "new": 1}]}}'}, "invalid_patch"),
    ({"text_data": '{"type": "patch", "id": 7, "patch": {"events": []}}'}, "invalid_patch"),
])
def test_bad_messages_get_an_error_and_the_connection_stays(stored, send, code):
    document, _, _ = stored

    async def scenario():
        socket, _ = await connect(document.id, origin=None)
        await socket.send_to(**send)
        error = await receive(socket)
        assert error["type"] == "error" and error["code"] == code and error["detail"]
        await socket.send_json_to({"type": "ping", "id": "still there?"})
        assert await receive(socket) == {"type": "pong", "id": "still there?"}
        await socket.disconnect()

    run(scenario)
    assert not Event.objects.exists()


def test_a_reader_may_not_change_the_document(stored):
    _, doc, source = stored
    owner = get_user_model().objects.create(username="owner")
    published = services.create_document(owner, "published", *services.bokeh_json.dump(doc))
    published.visibility = Visibility.PUBLIC
    published.save()

    async def scenario():
        socket, hello = await connect(published.id)
        assert hello["role"] == "read"
        await socket.send_to(bytes_data=append_frame(doc, source, [6], [1], request_id=3))
        error = await receive(socket)
        assert (error["code"], error["id"]) == ("forbidden", 3)
        await socket.disconnect()

    run(scenario)
    assert not Event.objects.exists()


def test_a_document_the_user_may_not_see_is_not_found(stored):
    _, doc, _ = stored
    owner = get_user_model().objects.create(username="owner")
    private = services.create_document(owner, "private", *services.bokeh_json.dump(doc))

    async def scenario():
        socket = communicator(protocol.path(private.id))
        assert (await socket.connect())[0]
        error = await receive(socket)
        assert error["code"] == "not_found"
        assert (await socket.receive_output(1))["code"] == 4404

    run(scenario)


def test_another_sites_page_does_not_get_the_local_identity(stored):
    document, _, _ = stored

    async def scenario():
        socket = communicator(protocol.path(document.id), headers=[(b"origin", b"http://evil.example")])
        assert (await socket.connect())[0]
        assert (await receive(socket))["code"] == "not_found"  # anonymous: the private document is not there
        await socket.disconnect()

    run(scenario)


def test_websocket_changes_are_folded_into_snapshots_once_answered(stored, settings):
    settings.BOKEHSITE_SNAPSHOT_EVERY = 4
    document, doc, source = stored

    async def scenario():
        producer, _ = await connect(document.id, origin=None)
        for i in range(9):
            await producer.send_to(bytes_data=append_frame(doc, source, [i], [i], request_id=i))
            assert (await receive(producer))["type"] == "ack"
        await producer.disconnect()

    run(scenario)
    versions = set(Snapshot.objects.filter(document=document).values_list("version", flat=True))
    assert {1, 5, 9} <= versions  # folded every four changes, after the answers went out
    assert services.load_bokeh_document(document).get_model_by_id(source).data["x"].tolist()[-3:] == [6, 7, 8]


def test_a_channel_layer_that_fails_loses_no_acknowledged_change(stored, monkeypatch):
    document, doc, source = stored

    async def broken(*args, **kwargs):
        raise ConnectionError("the channel layer is down")

    async def scenario():
        producer, _ = await connect(document.id, origin=None)
        monkeypatch.setattr(broadcast.get_channel_layer(), "group_send", broken)
        await producer.send_to(bytes_data=append_frame(doc, source, [9], [9]))
        assert await receive(producer) == {"type": "ack", "id": 1, "version": 2}
        await producer.disconnect()

    run(scenario)
    document.refresh_from_db()
    assert document.version == 2 and Event.objects.count() == 1
