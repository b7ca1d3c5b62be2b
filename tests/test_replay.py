"""The one way to read a document at any version (``documents.replay.at``) gives, in every form,
the document that Bokeh's own API reaches change by change."""

import numpy as np
import pytest
from bokeh.core.serialization import Buffer
from bokeh.protocol import Protocol

from bokehsite import wire
from documents import bokeh_json, replay, services
from documents.models import Snapshot
from tests.helpers import line_document, plain, state, store

pytestmark = pytest.mark.django_db


def owned(buffers):
    """Buffers whose bytes are their own (Bokeh reads arrays only from bytes)."""
    return [Buffer(b.id, bytes(b.data)) for b in buffers]


class Reference:
    """A Bokeh document changed through Bokeh's API, each change also stored on the server, and
    what it was at each version."""

    def __init__(self, owner, doc):
        self.doc = doc
        self.document = store(owner, "replayed", doc)
        self.states = {1: state(doc)}
        self.saved = {1: self._save()}

    def _save(self):
        doc_json, buffers = bokeh_json.dump(self.doc)
        return doc_json, owned(buffers)  # later patches change arrays in place

    def _record(self):
        self.document.refresh_from_db()
        self.states[self.document.version] = state(self.doc)
        self.saved[self.document.version] = self._save()

    @property
    def source(self):
        return self.doc.get_model_by_name("ex_line").data_source

    def change(self, action):
        """Do ``action`` to the document through Bokeh's API, and store the change it makes."""
        seen = []
        self.doc.on_change(seen.append)
        action()
        self.doc.remove_on_change(seen.append)
        message = Protocol().create("PATCH-DOC", seen)
        services.apply_patch(self.document, *plain(message.content, message.buffers))
        self._record()

    def stream(self, n: int, rollover=None):
        start = float(len(self.source.data["x"]))
        self.change(lambda: self.source.stream({"x": np.arange(start, start + n), "y": np.full(n, start)}, rollover))

    def replace(self, doc):
        self.doc = doc
        services.replace_document(self.document, *bokeh_json.dump(doc))
        self._record()

    def restore(self, version: int):
        self.doc = wire.load_document(*self.saved[version])
        services.restore_version(self.document, version)
        self._record()


def test_every_version_reads_as_bokeh_reached_it_change_by_change(alice, settings):
    settings.BOKEHSITE_SNAPSHOT_EVERY = 4  # snapshots among the changes, and changes after the newest
    ref = Reference(alice, line_document(10))
    for _ in range(3):
        ref.stream(2)  # a run of streams
    ref.stream(3, rollover=12)
    ref.change(lambda: ref.source.patch({"y": [(0, 5.0), (slice(1, 3), [7.0, 8.0])]}))
    ref.change(lambda: setattr(ref.doc.roots[0].title, "text", "renamed"))
    ref.stream(1)
    ref.stream(1)
    ref.replace(line_document(20, title="other"))
    ref.stream(2)
    ref.stream(2, rollover=21)
    ref.restore(6)
    ref.stream(1)
    ref.change(lambda: setattr(ref.source, "data", {"x": np.arange(4.0), "y": np.ones(4)}))
    ref.change(lambda: (ref.source.stream({"x": [4.0], "y": [2.0]}), setattr(ref.doc.roots[0].title, "text", "both")))
    ref.stream(2)
    ref.stream(1)
    document = ref.document
    assert sorted(ref.states) == list(range(1, document.version + 1))
    kinds = {e["kind"] for e in services.version_history(document, limit=1000)["items"]}
    assert kinds == {"create", "change", "replace", "restore"}
    assert Snapshot.objects.filter(document=document).count() > 3

    for version, expected in ref.states.items():
        content = replay.at(document.id, version)
        assert content.version == version
        assert state(content.document()) == expected, version
        doc_json, buffers = replay.at(document.id, version).json()
        assert state(wire.load_document(doc_json, owned(buffers))) == expected, version
        header, buffers = wire.unpack(replay.at(document.id, version).bundle())
        assert state(wire.load_document(header["doc"], buffers)) == expected, version
        assert state(services.load_bokeh_document(document, version)) == expected, version

    # The current version, which no snapshot holds: from this process's live copy, then rebuilt.
    assert not Snapshot.objects.filter(document=document, version=document.version).exists()
    for _ in range(2):
        current = replay.at(document.id)
        assert current.version == document.version
        assert state(current.document()) == ref.states[document.version]
        header, buffers = wire.unpack(replay.at(document.id).bundle())
        assert state(wire.load_document(header["doc"], buffers)) == ref.states[document.version]
        replay.live_documents.discard(document.id)


def test_a_change_of_some_columns_keeps_the_others(alice):
    """``source.data.update(...)`` sends only the columns it names (with ``cols``): every version
    read back keeps the source's other columns, as the browser does."""
    ref = Reference(alice, line_document(10))
    ref.change(lambda: ref.source.data.update({"y": np.zeros(10)}))
    ref.change(lambda: ref.source.data.update({"y": np.ones(10), "z": np.arange(10.0)}))
    assert sorted(ref.source.data) == ["x", "y", "z"]
    for version, expected in ref.states.items():
        assert state(replay.at(ref.document.id, version).document()) == expected, version
    replay.live_documents.discard(ref.document.id)  # rebuilt from the snapshot and the stored changes
    assert state(replay.at(ref.document.id).document()) == ref.states[ref.document.version]
