"""What the tests share: waiting, running scripts, stored documents, changes, sockets, comparing.

Fixtures live in ``conftest.py``; real server processes in ``tests/servers.py``.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from asgiref.sync import async_to_sync
from bokeh.core.serialization import Buffer, Serializer
from bokeh.document import Document as BokehDocument
from bokeh.document.events import ColumnsStreamedEvent
from bokeh.model import Model
from bokeh.plotting import figure

from bokehsite import protocol, wire
from tests.conftest import PASSWORD
from tests.servers import ROOT

# The original guide's examples, with only their import changed.
SEED_LINE = (ROOT / "examples" / "line.py").read_text()
SEED_ANIMATED = (ROOT / "examples" / "animated_line.py").read_text()


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.02) -> None:
    """Wait until ``predicate()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {getattr(predicate, '__name__', predicate)}")


_opened: contextvars.ContextVar[list | None] = contextvars.ContextVar("opened sockets", default=None)


@contextlib.contextmanager
def killed_midway(daphne, when: Callable[[], bool], down: float = 1.0):
    """Kill ``daphne`` once ``when()`` holds (checked from a thread), and start it again ``down``
    seconds later; yields a function that says whether both happened."""
    killed, restarted = threading.Event(), threading.Event()

    def kill_midway():
        while not killed.is_set():
            if when():
                daphne.kill()
                killed.set()
                time.sleep(down)  # down for a while: the client retries meanwhile
                daphne.launch().wait_listening()
                restarted.set()
            time.sleep(0.01)

    killer = threading.Thread(target=kill_midway, daemon=True)
    killer.start()
    try:
        yield lambda: killed.is_set() and restarted.is_set()
    finally:
        killed.set()
        killer.join(30)


def run(scenario: Callable[[], Any]) -> Any:
    """Run an async test body (pytest here has no asyncio plugin). Every socket it opened with
    ``open_socket`` is disconnected after it, so that no consumer (a refused one, say) is left
    running when its event loop closes: one left waiting can hold the loop's shutdown forever."""

    async def scenario_then_close() -> Any:
        opened = []
        _opened.set(opened)
        try:
            return await scenario()
        finally:
            for socket in opened:
                with contextlib.suppress(Exception):
                    await socket.disconnect(timeout=2)

    return async_to_sync(scenario_then_close)()


# --- scripts in a child process ---------------------------------------------------------------


def script_env(url: str, **env: str) -> dict[str, str]:
    return {**os.environ, "BOKEH_SERVER_URL": url, **env}


def run_script(source: str, url: str, tmp_path, *, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """Run ``source`` as a script against the server at ``url``; its output and exit status."""
    script = tmp_path / "script.py"
    script.write_text(source)
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=script_env(url, **env),
                          capture_output=True, text=True, timeout=timeout)


def start_script(source: str, url: str, tmp_path, *, speedup: float = 1.0, **env: str) -> subprocess.Popen:
    """Start ``source`` as a script against ``url``, its ``time.sleep(0.5)`` ``speedup`` times shorter."""
    script = tmp_path / "started.py"
    script.write_text(source.replace("time.sleep(0.5)", f"time.sleep({0.5 / speedup})"))
    return subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=script_env(url, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# --- documents and changes ---------------------------------------------------------------------


def line_document(n: int = 5, *, title: str = "line") -> BokehDocument:
    """The seed's line plot (or a longer one), as a Bokeh document."""
    p = figure(width=400, height=400)
    if n == 5:
        p.line([1, 2, 3, 4, 5], [6, 7, 2, 4, 5], line_width=2, name="ex_line")
    else:
        x = np.arange(n, dtype=float)
        p.line(x, np.sin(x / 50), line_width=2, name="ex_line")
    doc = BokehDocument(title=title)
    doc.add_root(p)
    return doc


def store(owner, title: str = "line", doc: BokehDocument | None = None):
    """Store a document for ``owner`` directly through the service layer."""
    from documents import bokeh_json, services

    return services.create_document(owner, title, *bokeh_json.dump(doc or line_document()))


def stored_line(owner, title: str = "line"):
    """A stored line document, its Bokeh document, and the id of its line's data source."""
    doc = line_document()
    return store(owner, title, doc), doc, doc.get_model_by_name("ex_line").data_source.id


def stored_version(title: str) -> int:
    """The stored version of the document titled ``title`` (0 while there is none)."""
    from documents.models import Document

    return Document.objects.filter(title=title).values_list("version", flat=True).first() or 0


def stream_patch(doc: BokehDocument, source_id: str, x: list[float], y: list[float], rollover=None) -> tuple[dict, list[Buffer]]:
    """A PATCH-DOC that appends to a source, with binary arrays, as a client sends it."""
    source = doc.get_model_by_id(source_id)
    event = ColumnsStreamedEvent(doc, source, "data", {"x": np.asarray(x, float), "y": np.asarray(y, float)}, rollover)
    serializer = Serializer(references=doc.models)
    encoded = serializer.encode(event)
    buffers = serializer.buffers
    return {"events": [wire.binary_event(encoded, buffers)]}, buffers


def plain(patch: dict, buffers: list[Buffer]) -> tuple[dict, list[Buffer]]:
    """The patch as it travels: JSON with {"id": ...} buffer references."""
    header, unpacked = wire.unpack(wire.pack({"patch": patch}, buffers))
    return header["patch"], unpacked


def append_frame(doc: BokehDocument, source_id: str, x=(6,), y=(1,), request_id: Any = 1, **fields: Any) -> bytes:
    """A websocket ``patch`` message that appends to a source."""
    patch, buffers = stream_patch(doc, source_id, list(x), list(y))
    return protocol.Patch(id=request_id, patch=patch, **fields).encode(buffers)


# --- the REST API ---------------------------------------------------------------------------------

BUNDLE = wire.CONTENT_TYPE


def bundle_body(doc, **payload):
    serialized = wire.document_json(doc)
    return wire.pack({**payload, "doc": serialized.content}, serialized.buffers)


def create(api, title="line", doc=None):
    response = api.post("/api/documents/", bundle_body(doc or line_document(), title=title), content_type=BUNDLE)
    assert response.status_code == 201, response.content
    return response.json()


# --- websockets through the ASGI application -------------------------------------------------------


def communicator(path: str, headers=()):
    """A websocket to the ASGI application, not yet connected, which ``run`` disconnects after
    the scenario."""
    from channels.testing import WebsocketCommunicator

    from bokehsite.asgi import application

    socket = WebsocketCommunicator(application, path, headers=list(headers))
    if (opened := _opened.get()) is not None:
        opened.append(socket)
    return socket


async def open_socket(path: str, headers=()):
    """A websocket to the ASGI application, and the first message it got (``hello`` or ``error``)."""
    socket = communicator(path, headers)
    connected, _ = await socket.connect()
    assert connected
    return socket, await receive(socket)


async def receive(socket, timeout: float = 5) -> dict[str, Any]:
    """The next message on ``socket``, as its JSON object (a bundle's header for a binary frame)."""
    raw = await socket.receive_from(timeout)
    return wire.unpack(raw)[0] if isinstance(raw, bytes) else json.loads(raw)


async def closed_with(socket) -> int:
    """The code the server closed ``socket`` with."""
    return (await socket.receive_output(2))["code"]


# --- the browser ----------------------------------------------------------------------------------

# Counts the pixels of one colour on every canvas BokehJS drew, looking inside shadow roots.
COUNT_PIXELS = """([r, g, b]) => {
  const canvases = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll("*")) {
      if (el instanceof HTMLCanvasElement) canvases.push(el);
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  let count = 0;
  for (const canvas of canvases) {
    if (!canvas.width || !canvas.height) continue;
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < data.length; i += 4) {
      if (Math.abs(data[i] - r) < 8 && Math.abs(data[i + 1] - g) < 8 && Math.abs(data[i + 2] - b) < 8 && data[i + 3] > 200) count++;
    }
  }
  return count;
}"""
LINE_BLUE = (0x1F, 0x77, 0xB4)  # Bokeh's default line colour


def open_plot(page, url):
    """Open a plot page; returns the sandboxed frame the document renders in."""
    page.goto(url)
    page.frame_locator("#plot-frame").locator("#plot[data-state=rendered]").wait_for(timeout=30_000)
    page.wait_for_timeout(300)  # let the canvas paint
    return plot_frame(page)


def plot_frame(page):
    return next(frame for frame in page.frames if "/frame/" in frame.url)


def log_in(page, url: str, username: str = "alice") -> None:
    """Log in through the login form (``url`` is any page that asks for it)."""
    page.goto(url)
    assert "/accounts/login/" in page.url
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.stacked button[type=submit]")
    page.wait_for_load_state()


# --- comparing documents -------------------------------------------------------------------------


def _normal(value: Any) -> Any:
    if isinstance(value, Model):
        return ("model", value.id)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def state(doc: BokehDocument) -> dict[str, Any]:
    """Everything that makes up a document, comparable across processes and array types."""
    return {
        "title": doc.title,
        "roots": sorted(root.id for root in doc.roots),
        "models": {
            model.id: (type(model).__name__, _normal(model.properties_with_values(include_defaults=True)))
            for model in doc.models
        },
    }


# --- datasets ----------------------------------------------------------------------------------


def dtype_name(values: np.ndarray) -> str:
    """The dtype the datasets API names for ``values``."""
    return str(values.dtype) if values.dtype.kind == "M" else values.dtype.name


def column_bytes(values: np.ndarray) -> bytes:
    """What an upload sends for a column: little-endian rows, datetimes as int64."""
    if values.dtype.kind == "M":
        values = values.view("<i8")
    return np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<")).tobytes()


def start_upload(api, name: str, columns: dict[str, np.ndarray], **options: Any):
    spec = [{"name": key, "dtype": dtype_name(values), "length": len(values)} for key, values in columns.items()]
    return api.post("/api/datasets/uploads/", {"name": name, "columns": spec, **options}, format="json")


def send_chunk(api, upload: dict, column: str, data: bytes, offset: int, *, sha256: str | None = None):
    import hashlib

    chunk = data[offset:offset + upload["chunk_bytes"]]
    digest = sha256 or hashlib.sha256(chunk).hexdigest()
    return api.put(f"/api/datasets/uploads/{upload['id']}/chunks/?column={column}&offset={offset}&sha256={digest}",
                   chunk, content_type="application/octet-stream")


def upload_dataset(api, name: str, columns: dict[str, np.ndarray], *, finish: bool = True, **options: Any):
    """Upload ``columns`` through the API, chunk by chunk; the finish's answer (or the upload's)."""
    started = start_upload(api, name, columns, **options)
    assert started.status_code == 201, started.content
    upload = started.json()
    for key, values in columns.items():
        data = column_bytes(values)
        for offset in range(0, len(data), upload["chunk_bytes"]):
            sent = send_chunk(api, upload, key, data, offset)
            assert sent.status_code == 200, sent.content
    if not finish:
        return started
    return api.post(f"/api/datasets/uploads/{upload['id']}/finish/")
