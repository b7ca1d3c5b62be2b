"""The local channel layer (one process, no Redis) still expires messages and group memberships."""

import asyncio
import time

from streaming import layers
from streaming.layers import LocalChannelLayer
from tests.helpers import run


def test_expired_messages_and_memberships_go(monkeypatch):
    monkeypatch.setattr(layers, "CLEAN_EVERY", 0.2)
    layer = LocalChannelLayer(expiry=1, group_expiry=1)

    async def scenario():
        await layer.group_add("viewers", "gone.inmemory!a")
        await layer.group_add("viewers", "alive.inmemory!b")
        await layer.send("gone.inmemory!a", {"type": "old"})
        await asyncio.sleep(1.3)
        await layer.group_add("viewers", "alive.inmemory!b")  # renewed: stays
        await layer.send("alive.inmemory!b", {"type": "new"})
        assert await layer.receive("alive.inmemory!b") == {"type": "new"}  # cleans on the way
        return dict(layer.groups["viewers"]), "gone.inmemory!a" in layer.channels

    members, queued = run(scenario)
    assert list(members) == ["alive.inmemory!b"] and not queued


def test_receiving_does_not_look_through_everything_each_time(monkeypatch):
    layer = LocalChannelLayer()
    looks = []
    monkeypatch.setattr(layers.InMemoryChannelLayer, "_clean_expired", lambda self: looks.append(time.monotonic()))

    async def scenario():
        for i in range(100):
            await layer.send("c.inmemory!x", {"type": "m", "i": i})
            await layer.receive("c.inmemory!x")

    run(scenario)
    assert len(looks) == 1
