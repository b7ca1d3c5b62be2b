"""Bokeh's ``HasProps.set_from_json`` formats a trace message of the whole value it applies
(``f"... {value!r}"``) whatever the log level: for a patched column of thousands of numbers,
several milliseconds per change, on the server that checks every change and in the app process
that applies the browser's. ``install()`` makes it format that message only when Bokeh's trace
logging is on; what it applies, and how, is Bokeh's own code unchanged."""

from __future__ import annotations

from typing import Any

from bokeh.core import has_props
from bokeh.util.logconfig import TRACE

_bokehs = has_props.HasProps.set_from_json


def _set_from_json(self: has_props.HasProps, name: str, value: Any, *, setter: Any = None) -> None:
    if has_props.log.isEnabledFor(TRACE) or name not in self.properties(_with_props=True):
        _bokehs(self, name, value, setter=setter)  # its trace message, or its warning
        return
    self.lookup(name).set_from_json(self, value, setter=setter)


def install() -> None:
    has_props.HasProps.set_from_json = _set_from_json  # type: ignore[method-assign]
