"""The one module that knows the channel layer: group names, message types and frames.

Frames sent to websocket clients (see README, "Live documents"):

- ``{"type": "patches", "from": A, "version": B, "items": [...]}`` takes a client from version A
  to B. Each item is ``{"version": V, "patch": PATCH-DOC content}`` or, for the connection the
  change came from, ``{"version": V, "own": true}`` (it has the change already). An item of a
  change sent with a ``key`` carries it, so that its client knows it after a reconnect too.
- ``{"type": "snapshot", "version": V, "doc": ...}`` replaces the client's whole document.
"""

from __future__ import annotations

import uuid
from typing import Any

from asgiref.sync import async_to_sync
from bokeh.core.serialization import Buffer
from channels.layers import get_channel_layer

from bokehsite.client import wire
from documents.live import Change

CHANGED = "document.changed"


def group_name(document_id: uuid.UUID | str) -> str:
    return f"document.{uuid.UUID(str(document_id)).hex}"


def patch_item(version: int, patch: dict[str, Any], key: str = "") -> dict[str, Any]:
    """One change in a patches frame; ``key`` is the sending client's name for it, if it gave one."""
    return {"version": version, "patch": patch, **({"key": key} if key else {})}


def patches_frame(items: list[dict[str, Any]], buffers: list[Buffer], *, start: int, version: int) -> bytes:
    return wire.pack({"type": "patches", "from": start, "version": version, "items": items}, buffers)


def snapshot_frame(version: int, bundle: bytes) -> bytes:
    return wire.update_payload(bundle, type="snapshot", version=version)


def own_frame(start: int, version: int) -> bytes:
    """Versions ``start + 1`` to ``version``, all the receiving connection's own changes."""
    items = [{"version": v, "own": True} for v in range(start + 1, version + 1)]
    return patches_frame(items, [], start=start, version=version)


def message(changes: list[Change]) -> dict[str, Any]:
    """The channel layer message for consecutive committed changes.

    The frame is built once here, not once per viewer. A replace carries no frame: each
    connection sends its client a snapshot instead.
    """
    frame = None
    if all(change.patch is not None for change in changes):
        items = [patch_item(change.version, change.patch, change.key) for change in changes]
        buffers = [buffer for change in changes for buffer in change.buffers]
        frame = patches_frame(items, buffers, start=changes[0].version - 1, version=changes[-1].version)
    return {"type": CHANGED, "start": changes[0].version - 1, "version": changes[-1].version,
            "origins": [change.origin for change in changes], "frame": frame}


async def send_changes(changes: list[Change]) -> None:
    """Tell every connection to the document about consecutive committed changes."""
    if changes:
        await get_channel_layer().group_send(group_name(changes[0].document_id), message(changes))


def changes_accepted(changes: list[Change]) -> None:
    """``send_changes``, from synchronous code."""
    async_to_sync(send_changes)(changes)
