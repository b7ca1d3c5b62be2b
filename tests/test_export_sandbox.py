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


class Listener:
    """A TCP listener and a UDP socket on one loopback port, counting whatever reaches them."""

    def __init__(self) -> None:
        import socket

        self.tcp = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.connections = self.datagrams = 0
        self.tcp.settimeout(0.1)
        self.udp.settimeout(0.1)
        self.running = True
        self.threads = [threading.Thread(target=self._accept, daemon=True),
                        threading.Thread(target=self._receive, daemon=True)]
        for thread in self.threads:
            thread.start()

    def _accept(self) -> None:
        while self.running:
            try:
                connection, _ = self.tcp.accept()
            except OSError:
                continue
            self.connections += 1
            connection.close()

    def _receive(self) -> None:
        while self.running:
            try:
                self.udp.recv(4096)
            except OSError:
                continue
            self.datagrams += 1

    def close(self) -> None:
        self.running = False
        for thread in self.threads:
            thread.join()
        self.tcp.close()
        self.udp.close()


def hostile_document(port: int):
    """A plot whose page tries every way out to ``port`` that a page has."""
    from bokeh.layouts import column
    from bokeh.models import Div

    url, host = f"http://127.0.0.1:{port}", f"127.0.0.1:{port}"
    doc = line_document()
    plot = doc.roots[0]
    doc.remove_root(plot)
    div = Div(text=f'<img src="{url}/img"><link rel="preconnect" href="{url}"><link rel="dns-prefetch" '
                   f'href="//localhost:{port}"><link rel="prefetch" href="{url}/prefetch">'
                   f'<iframe src="{url}/frame"></iframe>')
    doc.add_root(column(div, plot))
    glyph = doc.get_model_by_name("ex_line").glyph
    doc.js_on_event(DocumentReady, CustomJS(args={"glyph": glyph}, code=f"""
        glyph.line_color = "red";
        const tries = [
          () => fetch("{url}/fetch", {{mode: "no-cors"}}).catch(() => null),
          () => fetch("http://localhost:{port}/by-name").catch(() => null),
          () => {{ const ws = new WebSocket("ws://{host}/ws"); ws.onerror = () => null; }},
          () => navigator.sendBeacon("{url}/beacon", "x"),
          () => {{ const x = new XMLHttpRequest(); x.open("GET", "{url}/xhr"); x.send(); }},
          () => new EventSource("{url}/events"),
          () => navigator.serviceWorker.register("{url}/worker.js").catch(() => null),
          () => {{
            const pc = new RTCPeerConnection({{iceServers: [{{urls: "stun:{host}"}},
              {{urls: "turn:{host}?transport=tcp", username: "u", credential: "p"}},
              {{urls: "turn:{host}?transport=udp", username: "u", credential: "p"}}]}});
            pc.createDataChannel("out");
            pc.createOffer().then((offer) => pc.setLocalDescription(offer)).catch(() => null);
          }},
        ];
        for (const attempt of tries) {{ try {{ attempt(); }} catch (e) {{}} }}
        const until = Date.now() + 1500;  // WebRTC gathers and sends on threads of its own meanwhile
        while (Date.now() < until) {{}}
    """))
    return doc


@pytest.fixture
def isolation(request, monkeypatch):
    """The renderer started the way the parameter says, and stopped after."""
    from documents import images

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing")
    if request.param == "flags":  # as where the system allows no namespace
        monkeypatch.setattr(images, "ISOLATIONS", [[]])
    elif request.param == "user namespace":  # as an unprivileged user would
        monkeypatch.setattr(images, "ISOLATIONS", [["unshare", "--user", "--map-root-user", "--net", "--"], []])
    images.stop()
    monkeypatch.setattr(images._renderer, "_isolations", None)
    yield request.param
    images.stop()


@pytest.mark.timeout(300)
@pytest.mark.django_db(transaction=True)  # the renderer's answers come on a thread of their own
@pytest.mark.parametrize("isolation", ["namespace", "user namespace", "flags"], indirect=True)
def test_the_renderer_opens_no_socket_yet_draws(alice, isolation, settings):
    import os
    import time

    from documents import images, thumbnails

    settings.BOKEHSITE_EXPORT_TIMEOUT = 120  # a busy machine; the renderer gets what CPU is left
    listener = Listener()
    try:
        document = store(alice, "hostile", hostile_document(listener.port))
        png = b"".join(services.export_document(document, "png")[1])
        svg = b"".join(services.export_document(document, "svg")[1]).decode()
        drawn = thumbnails.draw(document.id)
        status = images.status()
        time.sleep(1)  # what a page left running has had its chance
    finally:
        listener.close()
    if isolation != "flags":
        if status["isolation"] != "network namespace" and (isolation == "user namespace" or os.geteuid() != 0):
            pytest.skip(f"this system allows no {isolation}")
        assert status["isolation"] == "network namespace" and status["network"] == "none"
    else:
        assert status["isolation"] == "Chromium's proxy and resolver flags" and status["network"] == "host"
    assert (listener.connections, listener.datagrams) == (0, 0)
    assert red_pixels(png) > 200  # the plot, drawn after the document's code ran
    assert svg.startswith("<svg") and "<path" in svg
    assert drawn is not None and bytes(drawn.png).startswith(b"\x89PNG") and drawn.version == document.version


def process_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo.extend(children.get(tree[-1], []))
    return tree


@pytest.mark.timeout(300)
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("isolation", ["namespace"], indirect=True)
def test_one_browser_at_idle_priority_draws_one_picture_after_another(alice, isolation, settings):
    import os

    from documents import images

    settings.BOKEHSITE_EXPORT_TIMEOUT = 120
    document = store(alice, "again and again")
    pictures = [b"".join(services.export_document(document, fmt)[1]) for fmt in ("png", "svg", "png")]
    assert pictures[0].startswith(b"\x89PNG") and pictures[1].startswith(b"<svg")
    status = images.status()
    assert status["launches"] == 1 and status["drawings"] == 3 and status["priority"] == "idle"
    tree = process_tree(status["pid"])
    browsers = []
    for pid in tree:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            policy = os.sched_getscheduler(pid)
        except (OSError, ProcessLookupError):
            continue  # gone meanwhile
        assert policy == os.SCHED_IDLE, command  # Chromium and the driver inherit the renderer's
        # Chromium's helpers (zygotes, renderers, GPU, network) say --type; the browser does not.
        if command.split(b"\0")[0].split(b" ")[0].endswith(b"chromium") and b"--type=" not in command:
            browsers.append(pid)
    assert len(tree) > 3 and len(browsers) == 1
    assert status["pid"] != os.getpid() and images.status()["pid"] == status["pid"]
