"""A document written out to leave the server: standalone HTML, Bokeh's document JSON, PNG, SVG.

HTML and JSON are written as a stream of chunks: the document's JSON with each binary array
encoded piece by piece where it is referenced, and for HTML BokehJS read from the installed
bokeh package, so an export never holds a second copy of the document in memory. PNG and SVG
are drawn by headless Chromium from the same HTML (``documents.images``).

The HTML needs no server and no network: BokehJS is inline, the arrays are base64 in the page,
and a few lines of script load them into BokehJS as the plot page's viewer does.
"""

from __future__ import annotations

import base64
import html
import json
import re
import secrets
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bokeh
from bokeh.core.serialization import Buffer
from bokeh.model import get_class
from bokeh.models import Plot, TableWidget, Widget

# The BokehJS bundles the plot page loads: core, WebGL, widgets and tables, so any document draws.
# A standalone page carries core and only those of the others its document's models need.
BOKEHJS = ["bokeh.min.js", "bokeh-gl.min.js", "bokeh-widgets.min.js", "bokeh-tables.min.js"]
BOKEHJS_DIR = Path(bokeh.__file__).parent / "server" / "static" / "js"
CHUNK = 1 << 20  # bytes of an array encoded at a time (a multiple of 3, so base64 pieces join)
CHUNK -= CHUNK % 3


@dataclass(frozen=True)
class Format:
    name: str
    media_type: str
    extension: str


FORMATS = {
    "html": Format("html", "text/html; charset=utf-8", "html"),
    "json": Format("json", "application/json", "json"),
    "png": Format("png", "image/png", "png"),
    "svg": Format("svg", "image/svg+xml", "svg"),
}

# Loads the arrays into BokehJS and draws the document, then marks #plot data-state="rendered"
# once BokehJS is idle (what a browser test, or Chromium drawing an image, waits for).
BOOT = """
(async function () {
  "use strict";
  const plot = document.getElementById("plot");
  try {
    const docJson = JSON.parse(document.getElementById("bokehsite-doc").textContent);
    const buffers = new Map();
    for (const element of document.querySelectorAll("script[data-buffer]")) {
      const text = atob(element.textContent.trim());
      const bytes = new Uint8Array(text.length);
      for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
      buffers.set(element.dataset.buffer, bytes.buffer);
    }
    const {Document} = Bokeh.require("document");
    const doc = Document.from_json(docJson, undefined, buffers);
    await Bokeh.embed.add_document_standalone(doc, plot);
    const done = () => { plot.dataset.state = "rendered"; };
    if (doc.is_idle) done(); else doc.idle.connect(done);
  } catch (error) {
    plot.dataset.state = "error";
    plot.textContent = "This plot could not be drawn: " + error;
    throw error;
  }
})();
"""


def filename(title: str, version: int, fmt: Format) -> str:
    """A file name for the export: the title made safe, its version, the format's extension."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", title).strip("-.")[:100] or "document"
    return f"{stem}-v{version}.{fmt.extension}"


def _script_safe(text: str) -> str:
    """JSON text that cannot end the script element holding it."""
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _base64_chunks(data: bytes | memoryview) -> Iterator[bytes]:
    view = memoryview(data).cast("B")
    for start in range(0, len(view), CHUNK):
        yield base64.b64encode(view[start:start + CHUNK])


def _gzip_base64_chunks(data: bytes | memoryview) -> Iterator[bytes]:
    """base64 of gzip of ``data``, as Bokeh writes inline arrays, compressed a piece at a time."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: the gzip container; level 1: 4x faster than 6, a few % larger
    view = memoryview(data).cast("B")
    pending = b""
    for start in range(0, len(view), CHUNK):
        pending += compressor.compress(view[start:start + CHUNK])
        whole = len(pending) - len(pending) % 3
        if whole:
            yield base64.b64encode(pending[:whole])
            pending = pending[whole:]
    yield base64.b64encode(pending + compressor.flush())


def _with_markers(doc_json: Any, marker: str) -> str:
    """``doc_json`` as JSON text with each buffer reference's data replaced by a marker string."""

    def mark(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("type") == "bytes" and isinstance(node.get("data"), dict) and "id" in node["data"]:
                return {**node, "data": f"{marker}{node['data']['id']}{marker}"}
            return {k: mark(v) for k, v in node.items()}
        if isinstance(node, list):
            return [mark(v) for v in node]
        return node

    return json.dumps(mark(doc_json), separators=(",", ":"), ensure_ascii=False)


def json_chunks(doc_json: dict[str, Any], buffers: list[Buffer]) -> Iterator[bytes]:
    """Bokeh's document JSON with its arrays inline (``Document.to_json(deferred=False)``'s
    form: base64 of gzip), which ``bokeh.document.Document.from_json`` loads."""
    by_id = {b.id: b for b in buffers}
    marker = "@@" + secrets.token_hex(8) + "@@"
    parts = re.split(f'"{re.escape(marker)}(.*?){re.escape(marker)}"', _with_markers(doc_json, marker))
    for i, part in enumerate(parts):
        if i % 2 == 0:
            yield part.encode()
        else:
            yield b'"'
            yield from _gzip_base64_chunks(by_id[json.loads(f'"{part}"')].data)
            yield b'"'


def bundles(doc_json: dict[str, Any]) -> list[str]:
    """The BokehJS bundles the document's models need, as ``bokeh.embed.bundle`` chooses them for
    a file Bokeh writes: core always; WebGL for a plot drawn with it, widgets for a widget, tables
    for a table. A model type Bokeh does not know asks for all of them."""
    gl = widgets = tables = False
    todo: list[Any] = [doc_json]
    while todo:  # a loop, not recursion: a document may nest deeply
        node = todo.pop()
        if isinstance(node, list):
            todo.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        todo.extend(node.values())
        if node.get("type") != "object" or not isinstance(node.get("name"), str):
            continue
        try:
            model = get_class(node["name"])
        except KeyError:
            return list(BOKEHJS)
        attributes = node.get("attributes")
        gl = gl or (issubclass(model, Plot) and isinstance(attributes, dict)
                    and attributes.get("output_backend") == "webgl")
        widgets = widgets or issubclass(model, Widget)
        tables = tables or issubclass(model, TableWidget)
    wanted = {"bokeh.min.js", *(["bokeh-gl.min.js"] * gl), *(["bokeh-widgets.min.js"] * widgets),
              *(["bokeh-tables.min.js"] * tables)}
    return [name for name in BOKEHJS if name in wanted]


def html_chunks(title: str, doc_json: dict[str, Any], buffers: list[Buffer]) -> Iterator[bytes]:
    """A standalone page that draws the document with no server: the BokehJS bundles it needs
    inline, the arrays as base64 in the page."""
    yield (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
           '<style>body { margin: 0; } #plot { display: inline-block; }</style>\n').encode()
    for name in bundles(doc_json):
        yield b"<script>\n"
        with open(BOKEHJS_DIR / name, "rb") as script:
            while chunk := script.read(CHUNK):
                yield chunk
        yield b"\n</script>\n"
    yield b'</head>\n<body>\n<div id="plot" data-state="loading"></div>\n<script type="application/json" id="bokehsite-doc">'
    yield _script_safe(json.dumps(doc_json, separators=(",", ":"), ensure_ascii=False)).encode()
    yield b"</script>\n"
    for buffer in buffers:
        yield f'<script type="application/octet-stream" data-buffer="{html.escape(str(buffer.id))}">'.encode()
        yield from _base64_chunks(buffer.data)
        yield b"</script>\n"
    yield f"<script>{BOOT}</script>\n</body>\n</html>\n".encode()
