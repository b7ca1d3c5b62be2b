"""Changes stored together by group commit are accepted or refused one by one: a change that
fails, whatever it holds, fails alone with its own error, and every other change of the batch is
stored. The live document stays what the database holds."""

import json

import pytest

from accounts.users import default_user
from bokehsite import protocol, wire
from documents import replay
from documents.models import Document, Event, Snapshot
from tests.helpers import append_frame, open_socket, receive, run, state, stored_line

pytestmark = pytest.mark.django_db(transaction=True)

VALID = 300


def nested(depth):
    return json.loads("[" * depth + "]" * depth)


def bad_changes(source):
    """Changes that Bokeh, the database or our checks refuse, each as a patch message's JSON text
    (some are not what json.dumps writes), with the error code it gets."""
    def event(**members):
        return {"events": [members]}

    def changed(attr, new):
        return event(kind="ModelChanged", model={"id": source}, attr=attr, new=new)

    data = {"type": "map", "entries": [["x", [1.0]], ["y", [2.0]]]}
    cases = [
        (event(kind=["ModelChanged"]), "invalid_patch"),
        (event(kind={"a": 1}), "invalid_patch"),
        (changed(["x"], 1), "invalid_patch"),
        (event(kind="ModelChanged", model={"id": {"an": "object"}}, attr="name", new="n"), "invalid_patch"),
        (event(kind="ModelChanged", model=[1], attr="name", new="n"), "invalid_patch"),
        (changed("tags", [10**400]), "invalid_patch"),
        (changed("name", 10**400), "invalid_patch"),
        (changed("tags", nested(200)), "invalid_patch"),
        (changed("tags", ["NUL \x00 in text"]), "invalid_patch"),
        (changed("tags", [{"type": "ndarray", "array": ["a"], "dtype": "U100000", "shape": [1], "order": "little"}]),
         "invalid_patch"),
        (changed("tags", [{"type": "ndarray", "array": {"type": "bytes", "data": "AAAA"}, "dtype": {"a": 1},
                           "shape": [1], "order": "little"}]), "invalid_patch"),
        (changed("tags", [{"type": "typed_array", "array": {"type": "bytes", "data": "AAAA"}, "dtype": "float64",
                           "order": "little"}]), "invalid_patch"),
        (changed("tags", [{"type": "bytes", "data": {"id": "no such buffer"}}]), "invalid_patch"),
        (changed("tags", [{"type": "set", "entries": [[1]]}]), "invalid_patch"),
        (changed("name", "x" * 10), "ok"),  # a valid one among them
        (event(kind="ColumnDataChanged", model={"id": source}, attr="data", data=5), "invalid_patch"),
        (event(kind="ColumnsStreamed", model={"id": source}, attr="selected", data=data), "invalid_patch"),
        (event(kind="ColumnsStreamed", model={"id": source}, attr="data", data=data, rollover=-5), "invalid_patch"),
        (event(kind="ColumnsStreamed", model={"id": source}, attr="data", data={"type": "map", "entries": [["x", [1]]]},
               rollover=None), "invalid_patch"),
        (event(kind="ColumnsPatched", model={"id": source}, attr="data",
               patches={"type": "map", "entries": [["y", [[10**6, 1]]]]}), "invalid_patch"),
        (event(kind="TitleChanged", title={"a": 1}), "invalid_patch"),
        (event(kind="RootAdded", model={"type": "object", "name": {"a": 1}, "id": "r1"}), "invalid_patch"),
        (event(kind="RootRemoved", model={"id": "nope"}), "invalid_patch"),
        (event(kind="MessageSent", msg_type={"a": 1}, msg_data=1), "invalid_patch"),
        (event(kind="ModelChanged", model={"id": source}, attr="tags", new=[], old=[]), "invalid_patch"),
    ]
    texts = [(json.dumps({"type": "patch", "id": f"bad{i}", "patch": patch}), code) for i, (patch, code) in enumerate(cases)]
    n = len(texts)
    # Text json.dumps does not write: a lone surrogate, a number too large for a float, a key with NUL.
    texts.append(('{"type":"patch","id":"bad%d","patch":{"events":[{"kind":"ModelChanged","model":{"id":"%s"},'
                  '"attr":"tags","new":["\\ud800"]}]}}' % (n, source), "invalid_patch"))
    texts.append(('{"type":"patch","id":"bad%d","patch":{"events":[{"kind":"ModelChanged","model":{"id":"%s"},'
                  '"attr":"tags","new":[1e400]}]}}' % (n + 1, source), "invalid_patch"))
    texts.append((json.dumps({"type": "patch", "id": f"bad{n + 2}", "key": "k\x00", "patch": {"events": [
        {"kind": "TitleChanged", "title": "t"}]}}), "bad_message"))
    return texts


def test_bad_changes_from_one_connection_fail_alone_among_anothers_valid_changes():
    document, doc, source = stored_line(default_user())
    bad = bad_changes(source)
    every = VALID // len(bad)

    async def scenario():
        producer, _ = await open_socket(protocol.path(document.id))
        vandal, _ = await open_socket(protocol.path(document.id))
        sent = 0
        for i in range(VALID):  # sent without waiting, so that group commit stores them together
            await producer.send_to(bytes_data=append_frame(doc, source, [100 + i], [i], request_id=i))
            if i % every == every // 2 and sent < len(bad):
                await vandal.send_to(text_data=bad[sent][0])
                sent += 1
        assert sent == len(bad)
        acks = [await receive(producer, timeout=30) for _ in range(VALID)]
        answers = {}
        for _ in bad:
            answer = await receive(vandal, timeout=30)
            answers[answer["id"]] = answer
        await producer.disconnect()
        await vandal.disconnect()
        return acks, answers

    acks, answers = run(scenario)
    assert [(a["type"], a["id"]) for a in acks] == [("ack", i) for i in range(VALID)]
    for i, (_, code) in enumerate(bad):
        answer = answers[f"bad{i}"]
        if code == "ok":
            assert answer["type"] == "ack"
        else:
            assert (answer["type"], answer["code"]) == ("error", code), answer
            assert answer["field"] in ("patch", "key") and answer["detail"]
    accepted = VALID + sum(code == "ok" for _, code in bad)
    document.refresh_from_db()
    assert document.version == 1 + accepted
    assert Event.objects.filter(document=document).count() == accepted
    stored = replay.build(Snapshot.objects.get(document=document, version=1), Event.objects.filter(document=document))
    x = stored.get_model_by_id(source).data["x"]
    assert list(x[5:]) == [100 + i for i in range(VALID)]
    # The live document that validates the next change is exactly what the database holds.
    live = replay.live_documents.get(document.id)
    assert live.version == document.version and state(live.doc) == state(stored)


def test_a_change_that_fails_after_others_of_its_batch_applied_leaves_them_stored():
    document, doc, source = stored_line(default_user())

    async def scenario():
        socket, _ = await open_socket(protocol.path(document.id))
        for i in range(10):
            await socket.send_to(bytes_data=append_frame(doc, source, [100 + i], [i], request_id=i))
            # Valid events, then one Bokeh refuses, in one change: none of it is applied.
            if i == 4:
                patch, buffers = wire.unpack(append_frame(doc, source, [0], [0], request_id="mixed"))
                patch["patch"]["events"].append({"kind": "ColumnsPatched", "model": {"id": source}, "attr": "data",
                                                 "patches": {"type": "map", "entries": [["y", [[10**6, 1]]]]}})
                await socket.send_to(bytes_data=wire.pack(patch, buffers))
        replies = [await receive(socket, timeout=30) for _ in range(11)]
        await socket.disconnect()
        return replies

    replies = run(scenario)
    assert [r["type"] for r in replies].count("ack") == 10
    refused = next(r for r in replies if r["type"] == "error")
    assert (refused["id"], refused["code"]) == ("mixed", "invalid_patch")
    stored = replay.build(Snapshot.objects.get(document=document, version=1), Event.objects.filter(document=document))
    assert list(stored.get_model_by_id(source).data["x"][5:]) == list(range(100, 110))
    assert state(replay.live_documents.get(document.id).doc) == state(stored)
    assert Document.objects.get(pk=document.pk).version == 11
