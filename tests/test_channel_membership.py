"""A connection's place in the channel layer (``broadcast.Membership``), on the in-memory layer:
its groups are renewed before they lapse, and a layer that stops delivering its ticks is noticed."""

import asyncio

import pytest

from streaming import broadcast
from streaming.layers import LocalChannelLayer


@pytest.fixture
def renew_fast(settings):
    settings.BOKEHSITE_GROUP_RENEW = 0.1


def recorder():
    """An event set when the membership reports the connection lost."""
    lost = asyncio.Event()

    async def on_lost():
        lost.set()

    return lost, on_lost


async def hear_ticks(layer, channel, membership, heard: list):
    """What the connection's consumer does: a tick that arrives is heard (and noted in ``heard``)."""
    while True:
        if (await layer.receive(channel))["type"] == broadcast.TICK:
            membership.heard_tick()
            heard.append(broadcast.TICK)


def test_renewed_groups_outlive_their_expiry_and_are_left_on_leaving(renew_fast):
    async def scenario():
        layer = LocalChannelLayer(group_expiry=1)
        channel = await layer.new_channel()
        lost, on_lost = recorder()
        membership = broadcast.Membership(layer, channel, lost=on_lost)
        await membership.join("document.a", "user.1")
        await membership.join("user.1", "dataset.b")  # joined once each
        assert membership.groups == ["document.a", "user.1", "dataset.b"]
        membership.start()
        heard = []
        hearing = asyncio.create_task(hear_ticks(layer, channel, membership, heard))
        await asyncio.sleep(2.5)  # past the groups' expiry, and the layer's look for what expired
        layer._clean_expired()
        assert all(channel in layer.groups.get(g, {}) for g in membership.groups)
        # a tick may be on its way at this instant, so count those heard rather than read the flag
        assert not lost.is_set() and len(heard) >= 5
        await membership.leave()
        hearing.cancel()
        assert not any(channel in layer.groups.get(g, {}) for g in membership.groups)

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_a_layer_that_stops_delivering_ticks_is_noticed(renew_fast):
    async def scenario():
        layer = LocalChannelLayer()
        channel = await layer.new_channel()
        lost, on_lost = recorder()
        membership = broadcast.Membership(layer, channel, lost=on_lost)
        await membership.join("document.a")
        membership.start()  # nobody receives from the channel: no tick is ever heard
        await asyncio.wait_for(lost.wait(), 2)
        await membership.leave()

    asyncio.run(asyncio.wait_for(scenario(), 10))
