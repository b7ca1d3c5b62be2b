"""The in-memory channel layer, as one process runs without Redis, fit for many connections.

Channels' ``InMemoryChannelLayer`` looks through every channel and every group membership for
expired ones on every ``receive``: with a thousand connections, each message delivered costs
thousands of steps, and delivering fifty viewers' messages took a whole core. Expiry is measured
in seconds (messages live ``expiry`` seconds, memberships ``group_expiry``), so looking once a
second changes nothing else.
"""

from __future__ import annotations

import time

from channels.layers import InMemoryChannelLayer

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
