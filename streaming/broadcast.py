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


def own_frame(version: int) -> bytes:
    return patches_frame([{"version": version, "own": True}], [], start=version - 1, version=version)


def snapshot_frame(version: int, bundle: bytes) -> bytes:
    return wire.update_payload(bundle, type="snapshot", version=version)


def change_accepted(change: Change) -> None:
    """Tell every connection to the document about a committed change.

    The frame is built once here, not once per viewer. A replace carries no frame: each
    connection sends its client a snapshot instead.
    """
    frame = None
    if change.patch is not None:
        item = patch_item(change.version, change.patch, change.key)
        frame = patches_frame([item], change.buffers, start=change.version - 1, version=change.version)
    message = {"type": CHANGED, "version": change.version, "origin": change.origin, "frame": frame}
    async_to_sync(get_channel_layer().group_send)(group_name(change.document_id), message)
