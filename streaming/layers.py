"""The channel layers: in memory, as one process runs without Redis, fit for many connections;
and channels-redis, whose clean-up after each message cannot fail loudly.

Channels' ``InMemoryChannelLayer`` looks through every channel and every group membership for
expired ones on every ``receive``: with a thousand connections, each message delivered costs
thousands of steps, and delivering fifty viewers' messages took a whole core. Expiry is measured
in seconds (messages live ``expiry`` seconds, memberships ``group_expiry``), so looking once a
second changes nothing else.
"""

from __future__ import annotations

import logging
import time

from channels.layers import InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer as ChannelsRedisLayer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

# Seconds between two looks for what has expired.
CLEAN_EVERY = 1.0


class LocalChannelLayer(InMemoryChannelLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._cleaned = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._cleaned >= CLEAN_EVERY:
            self._cleaned = now
            super()._clean_expired()


class RedisChannelLayer(ChannelsRedisLayer):
    async def _clean_receive_backup(self, index, channel):
        # channels-redis runs this after each message received, as a task nobody awaits: when
        # Redis goes away just then, its error came out as "Task exception was never retrieved".
        # The message was delivered; only its backup copy stays (delivered again later, which
        # connections ignore as already seen), or goes with a Redis that keeps nothing.
        try:
            await super()._clean_receive_backup(index, channel)
        except (RedisConnectionError, RedisTimeoutError, OSError) as error:
            logger.warning("the channel layer did not drop a delivered message's backup copy: %s", error)
