"""Fuzzing the document websocket through the real ASGI application: whatever frames a client
sends, the connection stays open and answers with messages of the protocol (an ``error`` for what
it refuses), and nothing stored changes except by a change it acknowledges."""

import uuid

import pytest
from channels.db import database_sync_to_async
from hypothesis import given
from hypothesis import strategies as st

from accounts.users import default_user
from bokehsite import protocol, wire
from documents.models import Document
from tests.helpers import open_socket, plain, run, stored_line, stream_patch
from tests.strategies import DEEP_TEXT, FUZZ, GARBAGE_BYTES, JSON, Shown, bundle, json_text, mutated

pytestmark = pytest.mark.django_db(transaction=True)


def stored_state(document_id):
    document = Document.objects.get(pk=document_id)
    return (document.version, [(s.version, s.doc, bytes(s.buffers)) for s in document.snapshots.all()],
            [(e.version, e.patch, bytes(e.buffers)) for e in document.events.all()])


def valid_messages(doc, source):
    """A valid message of every kind a client sends, with the buffers it carries."""
    patch, buffers = plain(*stream_patch(doc, source, [6.0], [1.0]))
    events = [
        {"kind": "ModelChanged", "model": {"id": source}, "attr": "name", "new": "renamed"},
        {"kind": "TitleChanged", "title": "retitled"},
        {"kind": "ColumnsPatched", "model": {"id": source}, "attr": "data",
         "patches": {"type": "map", "entries": [["y", [[0, 1.5]]]]}},
        {"kind": "ColumnDataChanged", "model": {"id": source}, "attr": "data",
         "data": {"type": "map", "entries": [["x", [1, 2]], ["y", [3, 4]]]}, "cols": ["x", "y"]},
        {"kind": "MessageSent", "msg_type": "bokeh_event", "msg_data": {"type": "event", "name": "button_click",
                                                                         "values": {"model": {"id": source}}}},
    ]
    return [
        (protocol.Patch(id=1, patch=patch, key="k1", base_version=None).to_json(), buffers),
        *[(protocol.Patch(id=2, patch={"events": [event]}).to_json(), []) for event in events],
        (protocol.Sync(1).to_json(), []),
        (protocol.Sync(None).to_json(), []),
        (protocol.Applied(1).to_json(), []),
        (protocol.Ping("p").to_json(), []),
    ]


def frames(doc, source):
    """One websocket frame a hostile or broken client might send, as ``send_to`` arguments."""
    return _frames(doc, source).map(Shown)


@st.composite
def _frames(draw, doc, source):
    message, buffers = draw(st.sampled_from(valid_messages(doc, source)))
    kind = draw(st.sampled_from(["mutated text", "mutated text", "mutated bundle", "mutated bundle", "valid",
                                 "buffers", "json", "garbage", "deep"]))
    if kind == "valid":
        return {"text_data": json_text(message)} if not buffers else {"bytes_data": bundle(message, [(b.id, b.data) for b in buffers])}
    if kind == "mutated text":
        return {"text_data": json_text(draw(mutated(message)))}
    if kind == "mutated bundle":
        return {"bytes_data": bundle(draw(mutated(message)), [(b.id, b.data) for b in buffers])}
    if kind == "buffers":  # the right header, buffers that do not fit it
        index = draw(st.none() | JSON)
        blobs = draw(st.lists(st.tuples(st.sampled_from([b.id for b in buffers] or ["x"]), st.binary(max_size=24)),
                              max_size=3))
        return {"bytes_data": bundle(message, blobs, index=index)}
    if kind == "json":
        value = draw(JSON)
        return {"text_data": json_text(value)} if draw(st.booleans()) else {"bytes_data": bundle(value)}
    if kind == "garbage":
        return {"bytes_data": draw(GARBAGE_BYTES)} if draw(st.booleans()) else {"text_data": draw(st.text(min_size=1, max_size=40))}
    deep = draw(DEEP_TEXT)
    return {"text_data": deep} if draw(st.booleans()) else {"bytes_data": wire._HEAD.pack(wire.MAGIC, len(deep)) + deep.encode()}


async def exchange(document_id, sent):
    """Send each frame, then a ping; read until the pong (and the answer to a change) arrives. Every
    message must be one of the protocol's; nothing stored may change but by an acknowledged change."""
    db = database_sync_to_async
    socket, hello = await open_socket(protocol.path(document_id))
    assert hello["type"] == "hello"
    for frame in sent:
        before = await db(stored_state)(document_id)
        try:  # what the server will make of it: a change is answered by its id once stored or refused
            message, _ = protocol.decode(frame.get("text_data", frame.get("bytes_data")), sender=protocol.CLIENT)
        except protocol.ProtocolError:
            message = None
        change = isinstance(message, protocol.Patch)
        probe = f"probe-{uuid.uuid4().hex}"
        await socket.send_to(**frame)
        await socket.send_json_to({"type": "ping", "id": probe})
        answer, ponged = None, False
        while not ponged or (change and answer is None):
            output = await socket.receive_output(10)
            assert output["type"] == "websocket.send", f"the connection closed: {output} after {frame!r:.300}"
            reply, _ = protocol.decode(output.get("text") or output.get("bytes"), sender=protocol.SERVER)
            assert not (isinstance(reply, protocol.Error) and reply.code == "server_error"), f"{reply} after {frame!r:.300}"
            if isinstance(reply, protocol.Pong) and reply.id == probe:
                ponged = True
            elif change and isinstance(reply, (protocol.Ack, protocol.Error)) and reply.id == message.id:
                answer = reply
            elif message is None and isinstance(reply, protocol.Error):
                answer = reply
        after = await db(stored_state)(document_id)
        if isinstance(answer, protocol.Ack) and answer.version > before[0]:
            assert after[0] == before[0] + 1
        else:
            assert after == before, f"a refused frame changed what is stored: {frame!r:.300}"
        if message is None:
            assert isinstance(answer, protocol.Error), f"no error for a frame that is not a message: {frame!r:.300}"
    await socket.disconnect()


_seeded: dict = {}


def seed():
    """The document every example of a run works on, and the frames strategy for it, made once so
    that every example draws from the same valid messages (Hypothesis replays and shrinks examples)."""
    document = _seeded.get("document")
    if document is None or not Document.objects.filter(pk=document.pk).exists():
        document, doc, source = stored_line(default_user(), "fuzzed")
        _seeded.update(document=document, frames=frames(doc, source))
    return document, _seeded["frames"]


@FUZZ
@given(data=st.data())
def test_no_frame_closes_the_connection_or_changes_what_is_stored_unless_acknowledged(data):
    document, strategy = seed()
    sent = data.draw(st.lists(strategy, min_size=1, max_size=5), label="frames")

    async def scenario():
        await exchange(document.id, sent)

    run(scenario)
