"""Messages clients send on a document's websocket, parsed and checked.

Text frames carry a JSON object; binary frames carry a bundle whose header is the message and
whose buffers are the arrays its patch refers to.
"""

from __future__ import annotations

import json
from typing import Any

from bokeh.core.serialization import Buffer

from bokehsite.client import wire
from bokehsite.errors import ApiError

TYPES = ("sync", "patch", "applied", "ping")


class ProtocolError(ApiError):
    code = "bad_message"


def parse(text: str | None, data: bytes | None) -> tuple[dict[str, Any], list[Buffer]]:
    """The message and its buffers, or ``ProtocolError`` naming what is wrong."""
    if data is not None:
        try:
            message, buffers = wire.unpack(data)
        except wire.BundleError as e:
            raise ProtocolError(f"malformed bundle: {e}", code="malformed_bundle") from None
    else:
        try:
            message, buffers = json.loads(text or ""), []
        except json.JSONDecodeError as e:
            raise ProtocolError(f"malformed JSON: {e}", code="malformed_json") from None
    if not isinstance(message, dict):
        raise ProtocolError("a message must be a JSON object", code="malformed_json")
    if message.get("type") not in TYPES:
        raise ProtocolError(f"unknown message type {message.get('type')!r}; expected one of {', '.join(TYPES)}",
                            field="type", code="unknown_message")
    return message, buffers


def version(message: dict[str, Any], key: str = "version", *, required: bool = True) -> int | None:
    value = message.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError(f"{key!r} must be a version number (an integer of 0 or more)", field=key)
    return value


def key(message: dict[str, Any]) -> str:
    value = message.get("key", "")
    if not isinstance(value, str) or len(value) > 100:
        raise ProtocolError("'key' must be a string of at most 100 characters", field="key")
    return value
