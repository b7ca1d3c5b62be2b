"""Flow control of one follower (``streaming.flow``), without a socket or a channel layer: what it
is sent as changes are committed, when its window is full, and when the log fills in."""

import asyncio
from dataclasses import dataclass, field

import numpy as np
from bokeh.core.serialization import Buffer

from bokehsite import protocol, wire
from streaming.flow import REPLACE, Flow

ME, OTHER = "me", "another"


@dataclass
class Entry:
    version: int
    origin: str = OTHER
    kind: str = "patch"
    key: str = ""
    buffers: list[Buffer] = field(default_factory=list)

    @property
    def patch(self):
        return {"events": [{"kind": "TitleChanged", "title": f"v{self.version}"}]}

    def buffer_list(self):
        return list(self.buffers)


class Log:
    """A document's log held in a list; ``kept_from`` is the first version it still holds."""

    def __init__(self, version: int, kept_from: int = 2):
        self.entries = [Entry(v) for v in range(2, version + 1)]
        self.kept_from = kept_from
        self.reads = 0

    @property
    def version(self) -> int:
        return self.entries[-1].version if self.entries else 1

    def commit(self, entry: Entry) -> Entry:
        self.entries.append(entry)
        return entry

    async def after(self, version, limit):
        self.reads += 1
        if version + 1 < self.kept_from:
            return None
        return [e for e in self.entries if e.version > version][:limit]

    async def whole(self):
        return self.version, wire.pack({"doc": {"title": f"v{self.version}", "roots": []}})

    async def current(self):
        return self.version


def flow(window=4, limit=10) -> Flow:
    return Flow(ME, window=window, limit=limit)


def synced(log: Log, version: int, **kwargs) -> Flow:
    follower = flow(**kwargs)
    asyncio.run(follower.sync(version, log))
    return follower


def read(frame: bytes):
    return protocol.decode(frame, sender=protocol.SERVER)


def frame_of(*entries: Entry) -> bytes:
    """The frame the channel layer carries for these changes (as ``streaming.broadcast`` builds it)."""
    return protocol.Patches.frame(entries[0].version - 1, entries[-1].version,
                                  [(protocol.item(e.version, e.patch, e.key), e.buffers) for e in entries])


def announce(follower: Flow, *entries: Entry, frame: bytes | None = b"") -> bytes | None:
    """Tell the follower that ``entries`` were committed, with their frame (None: a replace)."""
    frame = frame_of(*entries) if frame == b"" else frame
    return follower.changed(entries[0].version - 1, entries[-1].version, [e.origin for e in entries], frame)


def test_a_follower_that_has_not_synced_is_sent_nothing():
    log = Log(3)
    follower = flow()
    assert announce(follower, log.commit(Entry(4))) is None
    assert not follower.due()


def test_changes_in_order_are_relayed_as_announced_and_counted_as_sent():
    log = Log(3)
    follower = synced(log, 3)
    change = log.commit(Entry(4))
    assert announce(follower, change) == frame_of(change)
    assert follower.sent == 4 and not follower.behind
    assert announce(follower, change) is None  # heard twice: already sent


def test_a_followers_own_changes_come_back_as_own_items_only():
    log = Log(3)
    follower = synced(log, 3)
    mine = [log.commit(Entry(4, origin=ME)), log.commit(Entry(5, origin=ME))]
    message, buffers = read(announce(follower, *mine))
    assert message == protocol.Patches(3, 5, [protocol.own_item(4), protocol.own_item(5)]) and buffers == []


def test_a_gap_a_replace_or_others_changes_among_its_own_leave_it_to_the_log():
    for announced in ([Entry(5)], [Entry(4, origin=ME), Entry(5)]):
        follower = synced(Log(3), 3)
        assert announce(follower, *announced) is None
        assert follower.behind and follower.due() and follower.sent == 3
    follower = synced(Log(3), 3)
    assert announce(follower, Entry(4, kind=REPLACE), frame=None) is None
    assert follower.due()


def test_a_full_window_holds_changes_back_until_the_follower_confirms():
    log = Log(1)
    follower = synced(log, 1, window=2)
    assert announce(follower, log.commit(Entry(2))) is not None
    assert announce(follower, log.commit(Entry(3))) is not None
    assert not follower.has_room()
    for version in (4, 5):
        assert announce(follower, log.commit(Entry(version))) is None
    assert follower.behind and not follower.due()  # no room: nothing is read from the log yet
    assert follower.confirmed(1) is False
    assert follower.confirmed(99) is True  # more than it was sent counts as what it was sent
    assert follower.applied == 3
    message, _ = read(asyncio.run(follower.catch_up(log)))
    assert (message.start, message.version, [i["version"] for i in message.items]) == (3, 5, [4, 5])
    assert follower.sent == 5 and not follower.behind


def test_a_catch_up_is_one_frame_with_own_changes_as_own_items_and_every_buffer():
    log = Log(3)
    follower = synced(log, 3, window=10)
    buffers = [Buffer(f"b{v}", np.full(2, v, dtype="<f8").tobytes()) for v in (4, 6)]
    log.commit(Entry(4, buffers=[buffers[0]], key="k:4"))
    log.commit(Entry(5, origin=ME))
    log.commit(Entry(6, buffers=[buffers[1]]))
    message, got = read(asyncio.run(follower.catch_up(log)))
    assert message.items == [protocol.item(4, log.entries[2].patch, "k:4"), protocol.own_item(5),
                             protocol.item(6, log.entries[4].patch)]
    assert [(b.id, np.frombuffer(b.data, "<f8").tolist()) for b in got] == [("b4", [4, 4]), ("b6", [6, 6])]


def test_a_catch_up_with_nothing_new_sends_nothing():
    log = Log(3)
    follower = synced(log, 3)
    assert asyncio.run(follower.catch_up(log)) is None
    assert follower.sent == 3


def test_a_snapshot_when_the_follower_has_nothing_or_is_ahead_of_the_log():
    log = Log(5)
    for version in (None, 9):  # nothing, or a version from the future
        follower = synced(log, version)
        assert follower.sent == -1
        message, _ = read(asyncio.run(follower.catch_up(log)))
        assert message == protocol.Snapshot(5, {"title": "v5", "roots": []})
        assert follower.sent == follower.applied == 5


def test_a_snapshot_when_the_log_holds_too_much_no_longer_holds_it_or_holds_a_replace():
    cases = {"too many": Log(20), "truncated": Log(8, kept_from=6), "replaced": Log(5)}
    cases["replaced"].commit(Entry(6, kind=REPLACE))
    cases["replaced"].commit(Entry(7))
    for name, log in cases.items():
        follower = synced(log, 3, limit=10)
        message, _ = read(asyncio.run(follower.catch_up(log)))
        assert isinstance(message, protocol.Snapshot), name
        assert follower.sent == follower.applied == log.version and not follower.behind, name


def test_the_limit_reads_one_change_more_than_a_frame_may_hold():
    log = Log(13)
    follower = synced(log, 3, limit=10)
    message, _ = read(asyncio.run(follower.catch_up(log)))
    assert isinstance(message, protocol.Patches) and message.version == 13


def test_the_stored_version_tells_a_follower_it_missed_a_change():
    log = Log(3)
    follower = synced(log, 3)
    assert follower.unsure() and not follower.stored(3)
    assert follower.stored(4) and follower.behind
    assert not follower.unsure()  # known to be behind: the catch-up is what it waits for
    assert not flow().unsure()  # not synced: nothing to miss
