"""What a change to a document asks for (``PatchRequest``) and what was accepted (``Change``)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bokeh.core.serialization import Buffer

from documents import bokeh_json
from documents.exceptions import InvalidPatch

# The kinds of PATCH-DOC event a stored document accepts: changes to the document's state, and
# MessageSent, which carries a browser's UI events (ButtonClick, Tap, ...) to client sessions.
PATCH_EVENT_KINDS = frozenset({
    "ModelChanged", "ColumnDataChanged", "ColumnsStreamed", "ColumnsPatched", "TitleChanged", "RootAdded",
    "RootRemoved", "MessageSent",
})


@dataclass(frozen=True)
class _Member:
    check: Callable[[Any], bool]
    describe: str
    optional: bool = False


_REFERENCE = _Member(lambda v: isinstance(v, dict) and isinstance(v.get("id"), str), 'a model reference {"id": ID}')
_MODEL = _Member(lambda v: isinstance(v, dict), 'a model, or a reference {"id": ID}')
_ATTRIBUTE = _Member(lambda v: isinstance(v, str), "an attribute name (a string)")
_DATA_ATTRIBUTE = _Member(lambda v: v == "data", '"data"')
_TEXT = _Member(lambda v: isinstance(v, str), "a string")
_VALUE = _Member(lambda v: True, "any value")
# What each kind of event holds: Bokeh's serialized events, member by member.
EVENT_MEMBERS: dict[str, dict[str, _Member]] = {
    "ModelChanged": {"model": _REFERENCE, "attr": _ATTRIBUTE, "new": _VALUE},
    "ColumnDataChanged": {"model": _REFERENCE, "attr": _DATA_ATTRIBUTE, "data": _VALUE, "cols": _Member(
        lambda v: v is None or (isinstance(v, list) and all(isinstance(c, str) for c in v)),
        "null or a list of column names", optional=True)},
    "ColumnsStreamed": {"model": _REFERENCE, "attr": _DATA_ATTRIBUTE, "data": _VALUE, "rollover": _Member(
        lambda v: v is None or (type(v) is int and 0 <= v <= bokeh_json.MAX_INTEGER), "null or a count of rows",
        optional=True)},
    "ColumnsPatched": {"model": _REFERENCE, "attr": _DATA_ATTRIBUTE, "patches": _VALUE},
    "TitleChanged": {"title": _TEXT},
    "RootAdded": {"model": _MODEL},
    "RootRemoved": {"model": _REFERENCE},
    "MessageSent": {"msg_type": _TEXT, "msg_data": _VALUE},
}
assert set(EVENT_MEMBERS) == PATCH_EVENT_KINDS


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
    received: float = field(default_factory=time.monotonic)  # when it arrived, for the metrics

    def events(self) -> list[dict[str, Any]]:
        """The patch's events, once its shape is checked; ``InvalidPatch`` says what is wrong."""
        patch = self.patch
        if not isinstance(patch, dict) or not isinstance(patch.get("events"), list) or not patch["events"]:
            raise InvalidPatch('must be a PATCH-DOC object: {"events": [event, ...]} with at least one event', field="patch")
        for i, event in enumerate(patch["events"]):
            kind = event.get("kind") if isinstance(event, dict) else None
            if not isinstance(kind, str) or kind not in PATCH_EVENT_KINDS:
                shown = kind[:100] if isinstance(kind, str) else type(kind).__name__
                raise InvalidPatch(f"unsupported event kind {shown!r}; expected one of {', '.join(sorted(PATCH_EVENT_KINDS))}",
                                   field="patch")
            members = EVENT_MEMBERS[kind]
            for name in event.keys() - members.keys() - {"kind"}:
                raise InvalidPatch(f"patch.events[{i}]: a {kind} event has no member {str(name)[:100]!r}", field="patch")
            for name, member in members.items():
                if name not in event:
                    if member.optional:
                        continue
                    raise InvalidPatch(f"patch.events[{i}]: a {kind} event needs {name!r}", field="patch")
                if not member.check(event[name]):
                    raise InvalidPatch(f"patch.events[{i}].{name} must be {member.describe}", field="patch")
        return patch["events"]

    def validated(self) -> tuple[dict[str, Any], list[Buffer]]:
        """The patch and its buffers, made safe for Bokeh to read (``bokeh_json.prepare``: nesting,
        values, inline arrays decoded under the size limit).

        Raises:
            InvalidPatch: what is wrong with it, and where.
            PayloadTooLarge: its inline arrays decode to more than the limit.
        """
        self.events()
        return bokeh_json.prepare(self.patch, self.buffers, field="patch", invalid=InvalidPatch)


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
