"""A document's history: its versions listed a page at a time, any version rebuilt, and restores
that make a new version equal to an old one without losing any."""

import html
import re

import numpy as np
import pytest
from rest_framework.test import APIClient

from bokehsite import wire
from documents import bokeh_json, services
from documents.models import Collaborator, Document, Event, Snapshot
from tests.conftest import token_client
from tests.helpers import BUNDLE, line_document, plain, state, store, stored_line, stream_patch

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(alice, multi_user):
    """Alice's API client, on a multi-user server."""
    return token_client(alice)


def streamed(owner, n: int, title: str = "line"):
    """A stored line document with ``n`` streams after it was created (versions 1 to n + 1)."""
    document, doc, source_id = stored_line(owner, title)
    for i in range(n):
        patch, buffers = plain(*stream_patch(doc, source_id, [6 + i], [i]))
        services.apply_patch(document, patch, buffers, author=owner)
    document.refresh_from_db()
    return document, doc, source_id


def content(api, document, version=None):
    params = {"version": version} if version is not None else {}
    response = api.get(f"/api/documents/{document.id}/doc/", params, HTTP_ACCEPT=BUNDLE)
    assert response.status_code == 200, response.content
    header, buffers = wire.unpack(response.content)
    return state(wire.load_document(header["doc"], buffers))


def test_the_history_lists_every_version_with_its_time_author_kind_and_size(alice, api):
    document, _, _ = streamed(alice, 3)
    services.replace_document(document, *bokeh_json.dump(line_document()), author=alice)
    body = api.get(f"/api/documents/{document.id}/history/").json()
    assert body["version"] == 5 and body["oldest"] == 1 and body["pruned"] is False and body["next"] is None
    assert [(i["version"], i["kind"]) for i in body["items"]] == [
        (5, "replace"), (4, "change"), (3, "change"), (2, "change"), (1, "create")]
    assert all(i["author"] == "alice" and i["size"] > 0 and i["created"] for i in body["items"])


def test_the_history_pages_by_version(alice, api):
    document, _, _ = streamed(alice, 9)
    seen, before = [], None
    while True:
        query = {"limit": 3, **({"before": before} if before else {})}
        page = api.get(f"/api/documents/{document.id}/history/", query).json()
        seen += [i["version"] for i in page["items"]]
        before = page["next"]
        if before is None:
            break
    assert seen == list(range(10, 0, -1))


@pytest.mark.parametrize("query, field", [({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"before": "x"}, "before"),
                                          ({"before": 0}, "before")])
def test_a_bad_history_query_is_refused_naming_the_field(alice, api, query, field):
    document, _, _ = streamed(alice, 1)
    response = api.get(f"/api/documents/{document.id}/history/", query)
    assert response.status_code == 400 and response.json()["field"] == field


def test_a_reader_may_browse_the_history_but_not_restore(alice, bob, charlie, api):
    document, _, _ = streamed(alice, 2)
    Collaborator.objects.create(document=document, user=bob, role="read")
    reader = token_client(bob)
    assert reader.get(f"/api/documents/{document.id}/history/").status_code == 200
    assert content(reader, document, 1)["roots"]
    response = reader.post(f"/api/documents/{document.id}/restore/", {"version": 1}, format="json")
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    assert token_client(charlie).get(f"/api/documents/{document.id}/history/").status_code == 404
    assert Document.objects.get(pk=document.pk).version == 3


def test_a_restore_makes_a_new_version_equal_to_the_old_one_and_keeps_history(alice, bob, api):
    document, _, _ = streamed(alice, 3)
    Collaborator.objects.create(document=document, user=bob, role="write")
    writer = token_client(bob)
    before = content(writer, document, 2)
    response = writer.post(f"/api/documents/{document.id}/restore/", {"version": 2}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["version"] == 5
    assert content(writer, document) == before
    assert content(writer, document, 4) != before  # what came after is still there
    latest = writer.get(f"/api/documents/{document.id}/history/", {"limit": 1}).json()["items"][0]
    assert latest == {**latest, "version": 5, "kind": "restore", "restored_from": 2, "author": "bob"}


def test_a_restore_of_a_version_that_does_not_exist_names_it(alice, api):
    document, _, _ = streamed(alice, 1)
    for body, status, error in [({"version": 3}, 400, "invalid"), ({"version": 0}, 400, "invalid"),
                                ({"version": "two"}, 400, "invalid"), ({}, 400, "invalid")]:
        response = api.post(f"/api/documents/{document.id}/restore/", body, format="json")
        assert response.status_code == status and response.json()["error"] == error
        assert response.json()["field"] == "version"
    assert Document.objects.get(pk=document.pk).version == 2


def test_pruned_versions_say_so(alice, api, settings):
    settings.BOKEHSITE_HISTORY = 5
    settings.BOKEHSITE_SNAPSHOT_EVERY = 3
    document, _, _ = streamed(alice, 12)
    body = api.get(f"/api/documents/{document.id}/history/", {"limit": 1000}).json()
    assert body["pruned"] is True and body["oldest"] > 1 and body["retention"] == 5
    assert body["items"][-1]["version"] == body["oldest"]
    assert min(Snapshot.objects.filter(document=document).values_list("version", flat=True)) == body["oldest"]
    gone = api.get(f"/api/documents/{document.id}/doc/", {"version": 1}, HTTP_ACCEPT=BUNDLE)
    assert gone.status_code == 410 and gone.json()["error"] == "history_truncated"
    refused = api.post(f"/api/documents/{document.id}/restore/", {"version": 1}, format="json")
    assert refused.status_code == 410 and refused.json()["field"] == "version"
    assert content(api, document, body["oldest"])["roots"]


def test_a_restore_is_broadcast_as_a_replace(alice, api, django_capture_on_commit_callbacks):
    from documents import signals

    heard = []
    signals.changes_committed.connect(lambda sender, changes, **kw: heard.extend(changes), weak=False, dispatch_uid="t")
    try:
        document, _, _ = streamed(alice, 2)
        with django_capture_on_commit_callbacks(execute=True):
            api.post(f"/api/documents/{document.id}/restore/", {"version": 1}, format="json")
    finally:
        signals.changes_committed.disconnect(dispatch_uid="t")
    assert [(c.version, c.kind) for c in heard] == [(4, "replace")]
    assert Event.objects.get(document=document, version=4).restored_from == 1


def test_the_history_page_shows_the_versions_and_restores_for_writers(alice, bob, charlie, client, multi_user):
    document, _, _ = streamed(alice, 2)
    Collaborator.objects.create(document=document, user=bob, role="read")
    url = f"/documents/{document.id}/history/"
    assert client.get(url).status_code == 302  # log in first
    client.force_login(charlie)
    assert client.get(url).status_code == 404
    client.force_login(bob)
    page = client.get(url).content.decode()
    assert 'id="scrubber"' in page and 'min="1" max="3"' in page and "restore-form" not in page
    assert client.post(url, {"version": 1}).status_code == 403
    client.force_login(alice)
    page = client.get(url).content.decode()
    assert "restore-form" in page and page.count('<tr data-version="') == 3
    frame = re.search(r'<iframe id="plot-frame"[^>]* src="([^"]+)"', page).group(1)
    assert "version=3" in html.unescape(frame)
    assert client.post(url, {"version": 1}).status_code == 302
    assert Document.objects.get(pk=document.pk).version == 4
    for bad in ({"version": "x"}, {"version": 99}, {}):
        response = client.post(url, bad, follow=True)
        assert "no version" in response.content.decode()
    assert Document.objects.get(pk=document.pk).version == 4


def test_the_history_frame_shows_one_version_and_follows_nothing_live(alice, client, multi_user):
    document, _, _ = streamed(alice, 2)
    client.force_login(alice)
    page = client.get(f"/documents/{document.id}/history/").content.decode()
    frame = client.get(html.unescape(re.search(r'<iframe id="plot-frame"[^>]* src="([^"]+)"', page).group(1)))
    body = frame.content.decode()
    assert frame["Content-Security-Policy"] == "sandbox allow-scripts"
    assert f'data-doc-url="/api/documents/{document.id}/doc/?version=3"' in body
    assert 'data-ws-path=""' in body and "history.js" in body


def test_the_events_answer_a_history_frame_with_its_token(alice, api):
    from documents.frames import sign_frame_token

    document, _, _ = streamed(alice, 2)
    token = sign_frame_token(document, "read", user_id=alice.pk)
    response = APIClient().get(f"/api/documents/{document.id}/events/", {"since": 1, "frame_token": token},
                               HTTP_ACCEPT=BUNDLE, HTTP_ORIGIN="null")
    assert response.status_code == 200 and response["Access-Control-Allow-Origin"] == "*"
    header, _ = wire.unpack(response.content)
    assert [i["version"] for i in header["items"]] == [2, 3] and all(i["created"] for i in header["items"])


def test_a_hundred_thousand_versions_are_listed_a_page_at_a_time(alice, api, settings):
    settings.BOKEHSITE_HISTORY = 200_000
    document, _, _ = streamed(alice, 0)
    n = 100_000
    Event.objects.bulk_create([Event(document=document, version=v, patch={"events": []}, size=10, author=alice)
                               for v in range(2, n + 1)], batch_size=5000)
    Document.objects.filter(pk=document.pk).update(version=n)
    first = api.get(f"/api/documents/{document.id}/history/").json()
    assert [i["version"] for i in first["items"]] == list(range(n, n - 100, -1)) and first["next"] == n - 99
    middle = api.get(f"/api/documents/{document.id}/history/", {"before": 50_001, "limit": 1000}).json()
    assert middle["items"][0]["version"] == 50_000 and middle["next"] == 49_001
    last = api.get(f"/api/documents/{document.id}/history/", {"before": 3}).json()
    assert [i["version"] for i in last["items"]] == [2, 1] and last["next"] is None


@pytest.mark.parametrize("rollover", [None, 7, 30])
def test_a_streamed_history_rebuilds_to_what_bokeh_reaches_change_by_change(alice, settings, rollover):
    from bokeh.document.events import ColumnsStreamedEvent
    from bokeh.core.serialization import Serializer

    from documents import replay
    from documents.replay import _streamed_json

    settings.BOKEHSITE_SNAPSHOT_EVERY = 8
    doc = line_document(10)  # float columns, as streams append float arrays
    document = store(alice, "line", doc)
    source = doc.get_model_by_name("ex_line").data_source
    source_id = source.id
    for i in range(20):
        event = ColumnsStreamedEvent(doc, source, "data", {"x": np.arange(i, i + 3, dtype=float),
                                                           "y": np.full(3, float(i))}, rollover)
        serializer = Serializer(references=doc.models)
        encoded = serializer.encode(event)
        patch, buffers = plain({"events": [wire.binary_event(encoded, serializer.buffers)]}, serializer.buffers)
        services.apply_patch(document, patch, buffers)
    if rollover is None:  # a change that is no stream breaks a run
        services.apply_patch(document, {"events": [{"kind": "ModelChanged", "model": {"id": source_id},
                                                    "attr": "name", "new": "renamed"}]}, [])
    document.refresh_from_db()
    for version in range(2, document.version + 1):
        snapshot, events = replay.base(document.id, version)
        reference = bokeh_json.load(snapshot.doc, snapshot.buffer_list())
        for event in events:
            event.apply_to(reference)
        header, buffers = wire.unpack(replay.at(document.id, version).bundle())
        assert state(wire.load_document(header["doc"], buffers)) == state(reference), version
        assert state(replay.build(replay.base(document.id, version)[0], events)) == state(reference), version
        if events and all(e.patch["events"][0]["kind"] == "ColumnsStreamed" for e in events):
            assert _streamed_json(*replay.base(document.id, version)) is not None  # the fast path ran
