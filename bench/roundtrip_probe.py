"""Probes for the round-trip benchmark's dashboard processes (see roundtrip.py).

``install()`` records, in the file ``$ROUNDTRIP_STAMPS`` (``time.time()`` seconds, one event a
line), when each ``on_change("value", ...)`` callback starts and ends (``callback START END``),
and when a websocket client receives a frame with someone else's change (``incoming T``), which
only a bokehsite client does. It knows the bundle layout and the ``patches`` message, not the
client's internals, so it measures any version of the client alike.

    python roundtrip_probe.py SCRIPT    installs the probes, then runs SCRIPT as __main__
"""

from __future__ import annotations

import json
import os
import runpy
import struct
import sys
import time


def install() -> None:
    stamps = open(os.environ["ROUNDTRIP_STAMPS"], "a", buffering=1)  # noqa: SIM115 - for the process's life
    _time_callbacks(stamps)
    _time_incoming(stamps)


def _time_callbacks(stamps) -> None:
    from bokeh.util.callback_manager import PropertyCallbackManager

    on_change = PropertyCallbackManager.on_change

    def timed_on_change(self, attr, *callbacks):
        def timed(callback):
            def call(attr, old, new):
                start = time.time()
                callback(attr, old, new)
                stamps.write(f"callback {start!r} {time.time()!r}\n")
            return call
        return on_change(self, attr, *(map(timed, callbacks) if attr == "value" else callbacks))

    PropertyCallbackManager.on_change = timed_on_change


def _others_change(frame: bytes) -> bool:
    """Whether a bundle is a ``patches`` message with a change that is not the receiver's own."""
    if frame[:4] != b"BKS1":
        return False
    (length,) = struct.unpack(">I", frame[4:8])
    header = json.loads(frame[8:8 + length])
    return header.get("type") == "patches" and any(not item.get("own") for item in header.get("items", []))


def _time_incoming(stamps) -> None:
    try:
        from websockets.asyncio.client import ClientConnection
    except ImportError:  # not a websocket client: bokeh serve
        return
    recv = ClientConnection.recv

    async def timed_recv(self, *args, **kwargs):
        data = await recv(self, *args, **kwargs)
        if isinstance(data, bytes) and _others_change(data):
            stamps.write(f"incoming {time.time()!r}\n")
        return data

    ClientConnection.recv = timed_recv


def read(path) -> tuple[list[tuple[float, float]], list[float]]:
    """The callbacks ``(start, end)`` and incoming frames recorded in ``path`` so far."""
    callbacks, incoming = [], []
    try:
        lines = open(path).read().splitlines()
    except FileNotFoundError:
        return callbacks, incoming
    for line in lines:
        kind, *times = line.split()
        if kind == "callback" and len(times) == 2:
            callbacks.append((float(times[0]), float(times[1])))
        elif kind == "incoming" and len(times) == 1:
            incoming.append(float(times[0]))
    return callbacks, incoming


if __name__ == "__main__":
    install()
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(script, run_name="__main__")
