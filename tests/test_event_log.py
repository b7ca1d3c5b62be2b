"""Changes: applied through Bokeh, logged with the version bump, broadcast after commit."""

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model

from accounts.users import default_user
from bokehsite import protocol, wire
from documents import log, replay, services
from documents.changes import PatchRequest
from documents.exceptions import HistoryTruncated, InvalidPatch, VersionConflict
from documents.models import Event, EventKind, Snapshot
from streaming import broadcast
from tests.helpers import line_document, plain, state, stored_line, stream_patch

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stored():
    return stored_line(default_user())


def append(document, doc, source_id, x, y, **kwargs):
    return services.apply_patch(document, *plain(*stream_patch(doc, source_id, x, y)), **kwargs)


def ys(document, version=None):
    return services.load_bokeh_document(document, version).get_model_by_name("ex_line").data_source.data["y"].tolist()


def test_a_change_is_applied_logged_and_bumps_the_version(stored):
    document, doc, source = stored
    change = append(document, doc, source, [6, 7], [8, 9], origin="conn-1")
    assert change.version == 2
    document.refresh_from_db()
    assert document.version == 2
    event = Event.objects.get(document=document)
    assert (event.version, event.kind, event.origin) == (2, EventKind.PATCH, "conn-1")
    assert ys(document) == [6, 7, 2, 4, 5, 8, 9]
    assert len(event.buffer_list()) == 2 and all(b.id.startswith("2.") for b in event.buffer_list())


def test_a_change_that_does_not_apply_leaves_nothing_behind(stored):
    document, doc, source = stored
    append(document, doc, source, [6], [1])
    bad = {"events": [{"kind": "ColumnsStreamed", "model": {"id": "no-such-model"}, "attr": "data",
                       "data": {"type": "map", "entries": [["x", [1]]]}, "rollover": None}]}
    with pytest.raises(InvalidPatch, match="Bokeh cannot apply it"):
        services.apply_patch(document, bad, [])
    document.refresh_from_db()
    assert document.version == 2 and Event.objects.count() == 1
    assert append(document, doc, source, [7], [2]).version == 3  # the live document was rebuilt
    assert ys(document) == [6, 7, 2, 4, 5, 1, 2]


@pytest.mark.parametrize("patch, message", [
    ({}, "PATCH-DOC object"),
    ({"events": []}, "at least one event"),
    ({"events": [{"kind": "Teleported"}]}, "unsupported event kind 'Teleported'"),
    ("nope", "PATCH-DOC object"),
])
def test_malformed_patches_are_refused(stored, patch, message):
    document, _, _ = stored
    with pytest.raises(InvalidPatch, match=message):
        services.apply_patch(document, patch, [])
    assert not Event.objects.exists()


def test_an_optimistic_write_against_an_old_version_conflicts(stored):
    document, doc, source = stored
    append(document, doc, source, [6], [1], base_version=1)
    with pytest.raises(VersionConflict) as raised:
        append(document, doc, source, [7], [2], base_version=1)
    assert raised.value.extra == {"current_version": 2}
    assert Event.objects.count() == 1


def test_changes_stored_together_are_accepted_or_refused_one_by_one(stored):
    document, doc, source = stored

    def change(x, y, **kwargs):
        return PatchRequest(*plain(*stream_patch(doc, source, x, y)), **kwargs)

    half_bad = change([50], [50])  # its first event applies, its second cannot
    half_bad.patch["events"].append({"kind": "ModelChanged", "model": {"id": source}, "attr": "name", "new": {"not": "a name"}})
    outcomes = services.apply_changes(document, [
        change([6], [1], key="a"), half_bad, change([7], [2], base_version=1), change([8], [3], key="a"),
        change([9], [4], base_version=2),
    ])
    assert [type(o).__name__ for o in outcomes] == ["Change", "InvalidPatch", "VersionConflict", "Change", "Change"]
    assert [outcomes[0].version, outcomes[3].version, outcomes[4].version] == [2, 2, 3]
    assert outcomes[2].extra == {"current_version": 2}
    document.refresh_from_db()
    assert document.version == 3
    assert list(Event.objects.values_list("version", "key")) == [(2, "a"), (3, "")]
    in_memory = state(replay.live(document.id).doc)
    replay.live_documents.discard(document.id)
    assert state(services.load_bokeh_document(document)) == in_memory  # the half-applied change was undone
    assert ys(document) == [6, 7, 2, 4, 5, 1, 4]


def another_process_appends(server_url, document, doc, source, x, y, *, key=""):
    """The change stored by a real second server process, as a client sends it over the websocket."""
    from websockets.sync.client import connect

    with connect(protocol.url(server_url, document.id), open_timeout=30) as ws:
        hello, _ = protocol.decode(ws.recv(timeout=30), sender=protocol.SERVER)
        assert isinstance(hello, protocol.Hello) and hello.role == "write", hello
        patch, buffers = stream_patch(doc, source, x, y)
        ws.send(protocol.Patch(id=1, patch=patch, key=key or None).encode(buffers))
        ack, _ = protocol.decode(ws.recv(timeout=30), sender=protocol.SERVER)
        assert isinstance(ack, protocol.Ack), ack
        return ack.version


def test_changes_written_by_another_process_are_caught_up_first(stored, live_server_url):
    document, doc, source = stored
    append(document, doc, source, [6], [1])
    assert another_process_appends(live_server_url, document, doc, source, [7], [2]) == 3
    assert append(document, doc, source, [8], [3]).version == 4
    assert ys(document) == [6, 7, 2, 4, 5, 1, 2, 3]


def test_a_resent_change_stored_meanwhile_by_another_process_is_not_applied_twice(stored, live_server_url, monkeypatch):
    document, doc, source = stored
    append(document, doc, source, [6], [1])
    original = log._apply_in_memory
    raced = []

    def another_process_stores_it_first(*args):
        # The client's first send reached another process, which commits it while this one is
        # applying the resend in memory.
        if not raced:
            raced.append(another_process_appends(live_server_url, document, doc, source, [7], [2], key="k"))
        return original(*args)

    monkeypatch.setattr(log, "_apply_in_memory", another_process_stores_it_first)
    assert append(document, doc, source, [7], [2], key="k").version == 3
    assert raced == [3]
    assert list(Event.objects.values_list("version", "key")) == [(2, ""), (3, "k")]
    assert ys(document) == [6, 7, 2, 4, 5, 1, 2]


def test_an_optimistic_write_is_judged_by_what_another_process_stored(stored, live_server_url):
    document, doc, source = stored
    append(document, doc, source, [6], [1])
    another_process_appends(live_server_url, document, doc, source, [7], [2])  # version 3
    assert append(document, doc, source, [8], [3], base_version=3).version == 4
    with pytest.raises(VersionConflict) as raised:
        append(document, doc, source, [9], [4], base_version=3)
    assert raised.value.extra == {"current_version": 4}


def test_the_log_is_folded_into_snapshots_and_old_history_dropped(stored, settings):
    settings.BOKEHSITE_SNAPSHOT_EVERY = 3
    settings.BOKEHSITE_HISTORY = 4
    document, doc, source = stored
    for i in range(9):
        append(document, doc, source, [10 + i], [i])
    assert sorted(Snapshot.objects.filter(document=document).values_list("version", flat=True)) == [4, 7, 10]
    # The oldest snapshot's own change stays, so the history still says who made version 4.
    assert list(Event.objects.filter(document=document).values_list("version", flat=True)) == [4, 5, 6, 7, 8, 9, 10]
    assert ys(document, 6) == [6, 7, 2, 4, 5, 0, 1, 2, 3, 4]  # rebuilt from snapshot 4 and events 5, 6
    with pytest.raises(HistoryTruncated):
        ys(document, 3)
    assert ys(document) == [6, 7, 2, 4, 5] + list(range(9))


def test_a_replace_is_logged_and_rebuilds_from_its_snapshot(stored):
    document, doc, source = stored
    append(document, doc, source, [6], [1])
    services.replace_document(document, *services.bokeh_json.dump(line_document(20)))
    assert document.version == 3
    assert Event.objects.get(version=3).kind == EventKind.REPLACE
    assert len(ys(document)) == 20 and len(ys(document, 2)) == 6


def test_a_change_is_broadcast_after_commit_with_its_frame(stored):
    document, doc, source = stored
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(broadcast.group_name(document.id), channel)
    append(document, doc, source, [6], [1], origin="conn-1")
    message = async_to_sync(layer.receive)(channel)
    assert (message["type"], message["start"], message["version"]) == ("document.changed", 1, 2)
    assert message["origins"] == ["conn-1"]
    header, buffers = wire.unpack(message["frame"])
    assert header["type"] == "patches" and header["from"] == 1 and header["version"] == 2
    assert header["items"][0]["patch"]["events"][0]["kind"] == "ColumnsStreamed"
    assert len(buffers) == 2


def test_history_rebuilds_every_version_exactly(stored):
    document, doc, source = stored
    versions = {1: state(services.load_bokeh_document(document))}
    for i in range(5):
        append(document, doc, source, [10 + i], [i])
        versions[i + 2] = state(services.load_bokeh_document(document))
    for version, expected in versions.items():
        assert state(services.load_bokeh_document(document, version)) == expected


def test_someone_elses_document_cannot_be_patched_through_the_api(stored, api):
    _, doc, source = stored
    other = get_user_model().objects.create(username="someone")
    theirs = services.create_document(other, "theirs", *services.bokeh_json.dump(doc))
    patch, buffers = stream_patch(doc, source, [6], [1])  # a change that applies, arrays and all
    body = wire.pack({"patch": patch}, buffers)
    response = api.post(f"/api/documents/{theirs.id}/events/", body, content_type=wire.CONTENT_TYPE)
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    theirs.refresh_from_db()
    assert theirs.version == 1 and not Event.objects.exists()
