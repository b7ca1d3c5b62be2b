"""Where Bokeh's Python and BokehJS apply a change differently, the Python made to do what
BokehJS does, so that a document stored or followed here ends as the browser draws it.

``source.data.update({"y": ...})`` sends a ColumnDataChanged that names the columns it changed
(``cols``) and carries only those. BokehJS sets those columns and keeps the others; Bokeh's
Python (``ColumnDataChangedEvent._handle_event``) replaces the whole ``data`` with them, so a
document rebuilt from stored changes, or a script following another's, lost every other column.
``install()`` keeps them; a ColumnDataChanged without ``cols`` replaces ``data`` as before.
"""

from __future__ import annotations

from typing import Any

from bokeh.document.events import ColumnDataChangedEvent


def _handle_column_data_changed(doc: Any, event: ColumnDataChangedEvent) -> None:
    data = event.data
    if event.cols is not None and isinstance(data, dict):
        current = getattr(event.model, event.attr)
        data = {**current, **data}  # the named columns replaced, in the source's own order
    event.model.set_from_json(event.attr, data, setter=event.setter)


def install() -> None:
    ColumnDataChangedEvent._handle_event = staticmethod(_handle_column_data_changed)  # type: ignore[method-assign]
