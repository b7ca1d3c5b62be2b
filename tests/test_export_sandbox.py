"""A document's code runs when the server draws it as PNG, and reaches nothing: not the network,
not the server's files."""

import http.server
import io
import threading
from pathlib import Path

import numpy as np
import pytest
from bokeh.events import DocumentReady
from bokeh.models import CustomJS
from PIL import Image

from documents import services
from tests.conftest import CHROMIUM
from tests.helpers import line_document, store

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


def red_pixels(png: bytes) -> int:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return int((np.abs(pixels - np.array([255, 0, 0])) < 8).all(axis=-1).sum())


def test_a_documents_code_runs_offline_when_it_is_drawn(alice):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing")
    heard = []

    class Listener(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            heard.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Listener)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    doc = line_document()
    glyph = doc.get_model_by_name("ex_line").glyph
    doc.js_on_event(DocumentReady, CustomJS(args={"glyph": glyph}, code=f"""
        glyph.line_color = "red";
        fetch("{url}/fetch").catch(() => null);
        new Image().src = "{url}/image";
        const frame = document.createElement("iframe");
        frame.src = "file:///etc/passwd";
        document.body.appendChild(frame);
    """))
    try:
        _, chunks = services.export_document(store(alice, "curious", doc), "png")
        png = b"".join(chunks)
    finally:
        server.shutdown()
    assert red_pixels(png) > 200  # its code ran
    assert heard == []  # and reached nothing
