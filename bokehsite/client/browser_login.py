"""Receiving an API token through the browser (``Session.login_browser()``).

A one-shot HTTP server on ``127.0.0.1`` and a port the system picks waits for the browser to
come back from the server's ``/accounts/token/authorize/`` page with ``?token=...&state=...``
(or ``?error=...``). Only an answer carrying the state this login chose is taken; anything
else is answered 400 and ignored, so another page cannot slip in a token of its own.
"""

from __future__ import annotations

import secrets
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

from bokehsite.client.exceptions import BrowserLoginFailed

# Answers a tab shows once it has handed the token over (or failed to).
DONE_PAGE = b"<!DOCTYPE html><title>bokehsite</title><p>Logged in: you can close this tab and go back to your script.</p>"
REFUSED_PAGE = b"<!DOCTYPE html><title>bokehsite</title><p>No token: the request was refused.</p>"
# A query longer than this is no answer of the server's.
MAX_QUERY = 2048


class LoopbackReceiver:
    """Listens on 127.0.0.1 for the one answer with ``state``; a context manager."""

    def __init__(self) -> None:
        self.state = secrets.token_urlsafe(32)
        self.answer: dict[str, str] | None = None
        self._arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urlsplit(self.path).query
                fields = {k: v[0] for k, v in parse_qs(query).items()} if len(query) <= MAX_QUERY else {}
                if not secrets.compare_digest(fields.get("state", ""), receiver.state):
                    self.send_error(400, "not the answer this login waits for")
                    return
                ok = "token" in fields
                self.send_response(200 if ok else 403)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(DONE_PAGE if ok else REFUSED_PAGE)
                receiver.answer = fields
                receiver._arrived.set()

            def log_message(self, *args: object) -> None:
                pass  # the script's output is the user's, not a web server's log

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="bokehsite-login", daemon=True)

    def __enter__(self) -> LoopbackReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait(self, timeout: float) -> dict[str, str]:
        """The answer's fields (``token`` and ``username``).

        Raises:
            BrowserLoginFailed: none came within ``timeout`` seconds, or it was a refusal.
        """
        if not self._arrived.wait(timeout):
            raise BrowserLoginFailed(f"no answer from the browser within {timeout:g} seconds")
        answer = self.answer or {}
        if "token" not in answer:
            raise BrowserLoginFailed(f"the server gave no token: {answer.get('error', 'no reason given')}")
        return answer
