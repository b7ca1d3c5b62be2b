"""A connection to a bokehsite server, mirroring the old ``bokeh.session.Session``."""

from __future__ import annotations

import os
import uuid
from typing import Any
from urllib.parse import urljoin

import requests
from bokeh.core.serialization import Serialized
from bokeh.document import Document

from bokehsite.client import config, wire
from bokehsite.client.exceptions import ServerError, ServerUnreachable

DEFAULT_URL = "http://localhost:8000/"


def normalize_url(url: str | None) -> str:
    """``url``, else ``$BOKEH_SERVER_URL``, else the default, always ending in a slash."""
    url = url or os.environ.get("BOKEH_SERVER_URL") or DEFAULT_URL
    return url if url.endswith("/") else url + "/"


class Session:
    """Talks to one bokehsite server.

    Args:
        root_url: the server's address; defaults to ``$BOKEH_SERVER_URL``, else
            ``http://localhost:8000/``.
        token: an API token for a multi-user server. Default: ``$BOKEH_API_TOKEN``, else the
            token saved by the last ``login()`` or ``register()`` for this server.
        timeout: seconds to wait for each HTTP answer.
    """

    def __init__(self, root_url: str | None = None, token: str | None = None, *, timeout: float = 60.0):
        self.root_url = normalize_url(root_url)
        self.timeout = timeout
        self.http = requests.Session()
        self.http.headers["User-Agent"] = "bokehsite-client"
        saved = config.saved_login(self.root_url) or {}
        self.token: str | None = token or os.environ.get("BOKEH_API_TOKEN") or saved.get("token")
        # Known only for a saved login; an explicit or environment token may be someone else's.
        self.username: str | None = saved.get("username") if self.token == saved.get("token") else None
        self.title: str | None = None
        self.document = Document()
        self.info: dict[str, Any] | None = None

    # --- the current document, as output_server() / show() use it -----------------------------

    def use_doc(self, title: str) -> None:
        """Work on the document called ``title``, starting from an empty local document."""
        if not title or not isinstance(title, str):
            raise ValueError("a document title must be a non-empty string")
        self.title = title
        self.document = Document()
        self.info = None

    def push(self, doc: Document | None = None) -> dict[str, Any]:
        """Store ``doc`` (default: this session's document) under the current title."""
        if self.title is None:
            raise RuntimeError("no document title: call output_server(title) or session.use_doc(title) first")
        doc = doc if doc is not None else self.document
        self.info = self.push_document(doc, self.title)
        self.document = doc
        return self.info

    @property
    def url(self) -> str | None:
        """The page of the last pushed document."""
        return self.info["url"] if self.info else None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def __repr__(self) -> str:
        return f"Session(root_url={self.root_url!r}, username={self.username!r})"

    # --- accounts (multi-user servers) --------------------------------------------------------

    def register(self, username: str, password: str) -> str:
        """Create an account on the server and log in as it; the token is saved for later scripts.

        Returns:
            The new API token.
        """
        return self._log_in("api/auth/register/", username, password)

    def login(self, username: str, password: str) -> str:
        """Log in; the API token is saved in ``~/.bokeh/config.json`` so later scripts need no login.

        Returns:
            The new API token.
        """
        return self._log_in("api/auth/login/", username, password)

    def logout(self) -> None:
        """Revoke this session's token on the server and forget the saved one."""
        if self.token:
            try:
                self._request("POST", "api/auth/logout/")
            except ServerError as e:
                if e.status != 401:  # already revoked or expired: nothing left to revoke
                    raise
        config.forget_login(self.root_url)
        self.token = None
        self.username = None

    def _log_in(self, path: str, username: str, password: str) -> str:
        body = self._request("POST", path, json={"username": username, "password": password}, auth=False).json()
        self.token, self.username = body["token"], body["username"]
        config.save_login(self.root_url, self.token, self.username)
        return self.token

    # --- sharing ---------------------------------------------------------------------------

    def publish(self, title_or_id: str | None = None) -> str:
        """Make a document public; by default the current one (pushed first if it never was).

        Returns:
            Its public URL (the page with ``?public=true``), which works without logging in.
        """
        return self._request("POST", f"api/documents/{self._share_target(title_or_id)}/publish/").json()["public_url"]

    def unpublish(self, title_or_id: str | None = None) -> dict[str, Any]:
        """Make a document private again; by default the current one. Returns its metadata."""
        return self._request("POST", f"api/documents/{self._share_target(title_or_id)}/unpublish/").json()

    def secret_link(self, title_or_id: str | None = None) -> str:
        """A new secret link to a document (the previous one stops working); returns its URL."""
        return self._request("POST", f"api/documents/{self._share_target(title_or_id)}/secret-link/").json()["secret_url"]

    def share(self, username: str, role: str = "read", title_or_id: str | None = None) -> dict[str, Any]:
        """Let ``username`` read (``role="read"``) or also change (``"write"``) a document."""
        return self._request(
            "POST", f"api/documents/{self._share_target(title_or_id)}/collaborators/",
            json={"username": username, "role": role},
        ).json()

    def unshare(self, username: str, title_or_id: str | None = None) -> None:
        self._request("DELETE", f"api/documents/{self._share_target(title_or_id)}/collaborators/{username}/")

    def _share_target(self, title_or_id: str | None) -> str:
        if title_or_id is not None:
            return self.document_info(title_or_id)["id"]
        if self.info is None:
            self.push()  # raises if there is no current document
        return self.info["id"]

    # --- documents ---------------------------------------------------------------------------

    def documents(self, title: str | None = None) -> list[dict[str, Any]]:
        """Metadata of the caller's documents, optionally only the one with ``title``."""
        return self._request("GET", "api/documents/", params={"title": title} if title else None).json()

    def document_info(self, title_or_id: str) -> dict[str, Any]:
        """Metadata of one document, found by id or by title."""
        if _is_uuid(title_or_id):
            return self._request("GET", f"api/documents/{title_or_id}/").json()
        found = self.documents(title=title_or_id)
        if not found:
            raise ServerError(self.root_url, 404, "not_found", f"no document titled {title_or_id!r}")
        return found[0]

    def push_document(self, doc: Document, title: str) -> dict[str, Any]:
        """Store ``doc`` under ``title``: replace the caller's document of that title, or create it.

        Returns:
            The stored document's metadata, including its page ``url``.
        """
        serialized = wire.document_json(doc)
        existing = self.documents(title=title)
        if existing:
            return self._put_content(existing[0]["id"], serialized)
        body = wire.pack({"title": title, "doc": serialized.content}, serialized.buffers)
        try:
            return self._request("POST", "api/documents/", data=body, content_type=wire.CONTENT_TYPE).json()
        except ServerError as e:
            if e.code != "title_taken":  # someone created it since we looked
                raise
            return self._put_content(self.documents(title=title)[0]["id"], serialized)

    def _put_content(self, document_id: str, serialized: Serialized[Any]) -> dict[str, Any]:
        body = wire.pack({"doc": serialized.content}, serialized.buffers)
        return self._request(
            "PUT", f"api/documents/{document_id}/doc/", data=body, content_type=wire.CONTENT_TYPE
        ).json()

    def load_document(self, title_or_id: str) -> Document:
        """Fetch a stored document back as a Bokeh ``Document`` (model ids are kept)."""
        info = self.document_info(title_or_id)
        response = self._request("GET", f"api/documents/{info['id']}/doc/", accept=wire.CONTENT_TYPE)
        header, buffers = wire.unpack(response.content)
        return Document.from_json(Serialized(header["doc"], buffers))

    def delete_document(self, title_or_id: str) -> None:
        info = self.document_info(title_or_id)
        self._request("DELETE", f"api/documents/{info['id']}/")

    # --- plumbing ----------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, content_type: str | None = None, accept: str = "application/json",
        auth: bool = True, **kwargs: Any,
    ) -> requests.Response:
        url = urljoin(self.root_url, path)
        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        if auth and self.token:
            headers["Authorization"] = f"Token {self.token}"
        try:
            response = self.http.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
        except requests.RequestException as e:
            raise ServerUnreachable(self.root_url, str(e)) from None
        if response.status_code >= 400:
            raise _server_error(url, response)
        return response


def _server_error(url: str, response: requests.Response) -> ServerError:
    try:
        body = response.json()
        detail = body["detail"]
        if response.status_code == 401 and body["error"] in ("not_authenticated", "invalid_token"):
            detail += "; log in with Session(root_url=url).login(username, password) or set BOKEH_API_TOKEN"
        return ServerError(url, response.status_code, body["error"], detail, body.get("field"))
    except (ValueError, KeyError, TypeError):
        text = response.text.strip()[:200] or response.reason
        return ServerError(url, response.status_code, "http_error", text)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
