"""What a change to a document asks for (``PatchRequest``) and what was accepted (``Change``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from bokeh.core.serialization import Buffer

from documents.exceptions import InvalidPatch

# The kinds of PATCH-DOC event a stored document accepts: changes to the document's state, and
# MessageSent, which carries a browser's UI events (ButtonClick, Tap, ...) to client sessions.
PATCH_EVENT_KINDS = frozenset({
    "ModelChanged", "ColumnDataChanged", "ColumnsStreamed", "ColumnsPatched", "TitleChanged", "RootAdded",
    "RootRemoved", "MessageSent",
})


@dataclass
class PatchRequest:
    """A change asked for: Bokeh's PATCH-DOC content, whose arrays refer to ``buffers``.

    ``origin`` is the connection it came from, so that it is not echoed back there. ``key`` is
    the client's own name for it: a change whose key is already in the log is not applied again
    (a client resending after a dropped connection), and its version is returned. With
    ``base_version``, it applies only to that version (an optimistic write).
    """

    patch: Any
    buffers: list[Buffer] = field(default_factory=list)
    author: Any = None
    origin: str = ""
    key: str = ""
    base_version: int | None = None

    def events(self) -> list[dict[str, Any]]:
        """The patch's events, once its shape is checked; ``InvalidPatch`` says what is wrong."""
        patch = self.patch
        if not isinstance(patch, dict) or not isinstance(patch.get("events"), list) or not patch["events"]:
            raise InvalidPatch('must be a PATCH-DOC object: {"events": [event, ...]} with at least one event', field="patch")
        for event in patch["events"]:
            kind = event.get("kind") if isinstance(event, dict) else None
            if not isinstance(kind, str) or kind not in PATCH_EVENT_KINDS:
                shown = kind if isinstance(kind, str) else type(kind).__name__
                raise InvalidPatch(f"unsupported event kind {shown!r}; expected one of {', '.join(sorted(PATCH_EVENT_KINDS))}",
                                   field="patch")
        return patch["events"]


@dataclass
class Change:
    """An accepted change, as it is broadcast to viewers.

    ``resent`` marks a change whose key the log already had: it was stored (and broadcast) before.
    """

    document_id: uuid.UUID
    version: int
    kind: str
    patch: dict[str, Any] | None = None
    buffers: list[Buffer] = field(default_factory=list)
    origin: str = ""
    key: str = ""
    resent: bool = False
