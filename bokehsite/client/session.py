"""A connection to a bokehsite server, mirroring the old ``bokeh.session.Session``."""

from __future__ import annotations

import os
import uuid
import webbrowser
from collections.abc import Callable
from datetime import datetime
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urlencode, urljoin

import requests
from bokeh.core.serialization import Serialized
from bokeh.document import Document
from bokeh.model import Model

from bokehsite import wire
from bokehsite.client import config
from bokehsite.client import backed
from bokehsite.client import browser_login
from bokehsite.client import datasets as dataset_api
from bokehsite.client import images as image_api
from bokehsite.client.embed import notebook_snippet
from bokehsite.client.exceptions import ServerError, ServerUnreachable
from bokehsite.client.sync import DocumentSync

DEFAULT_URL = "http://localhost:5006/"


def normalize_url(url: str | None) -> str:
    """``url``, else ``$BOKEH_SERVER_URL``, else the default, always ending in a slash."""
    url = url or os.environ.get("BOKEH_SERVER_URL") or DEFAULT_URL
    return url if url.endswith("/") else url + "/"


class Session:
    """Talks to one bokehsite server.

    Args:
        root_url: the server's address; defaults to ``$BOKEH_SERVER_URL``, else
            ``http://localhost:5006/``.
        token: an API token for a multi-user server. Default: ``$BOKEH_API_TOKEN``, else the
            token saved by the last ``login()`` or ``register()`` for this server.
        timeout: seconds to wait for each HTTP answer.
    """

    def __init__(self, root_url: str | None = None, token: str | None = None, *, timeout: float = 60.0):
        self.root_url = normalize_url(root_url)
        self.timeout = timeout
        self.http = requests.Session()
        # Keep no cookies (a proxy's sticky-session cookie, say): a request with cookies is a
        # browser's to the server, which then asks for a CSRF token in single-user mode.
        self.http.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        self.http.headers["User-Agent"] = "bokehsite-client"
        saved = config.saved_login(self.root_url) or {}
        self.token: str | None = token or os.environ.get("BOKEH_API_TOKEN") or saved.get("token")
        # Known only for a saved login; an explicit or environment token may be someone else's.
        self.username: str | None = saved.get("username") if self.token == saved.get("token") else None
        self.title: str | None = None
        self.document = Document()
        self.info: dict[str, Any] | None = None
        self._sync: DocumentSync | None = None

    # --- the current document, as output_server() / show() use it -----------------------------

    def use_doc(self, title: str) -> None:
        """Work on the document called ``title``, starting from an empty local document."""
        if not title or not isinstance(title, str):
            raise ValueError("a document title must be a non-empty string")
        self._close_sync()
        self.title = title
        self.document = Document()
        self.info = None

    def push(self, doc: Document | None = None) -> dict[str, Any]:
        """Store ``doc`` (default: this session's document) under the current title.

        The first push stores the whole document; from then on every change Bokeh reports
        (``source.stream``, ``source.patch``, ``source.data = ...``, property changes, roots
        added or removed) is sent as it happens, and ``push()`` waits until the server has
        acknowledged them all.
        """
        if self.title is None:
            raise RuntimeError("no document title: call output_server(title) or session.use_doc(title) first")
        doc = doc if doc is not None else self.document
        if self._sync is not None and self._sync.doc is doc:
            self.info = {**self.info, "version": self._sync.flush()}
            return self.info
        self._close_sync()
        self.info = self.push_document(doc, self.title)
        self.document = doc
        self._sync = DocumentSync(self, doc, self.info["id"], self.info["version"])
        return self.info

    def open_document(self, title_or_id: str) -> Document:
        """Fetch a stored document and keep it live, as if this session had pushed it: changes
        made to it are sent, and ``pull()`` and the loops bring in everyone else's."""
        doc, version = self.fetch(title_or_id)
        info = self.document_info(title_or_id)
        self._close_sync()
        self.title, self.document, self.info = info["title"], doc, {**info, "version": version}
        self._sync = DocumentSync(self, doc, info["id"], version)
        return doc

    def pull(self, timeout: float = 30.0) -> int:
        """Bring the local document up to the server's current version, running Bokeh's
        callbacks (``on_change``, ``on_event``) for each change; returns the version."""
        sync = self._synced()
        return sync.pull(self.document_info(sync.document_id)["version"], timeout)

    def loop_until_closed(self) -> None:
        """Apply everyone else's changes as they come, running callbacks, until Ctrl-C or
        ``close()``; what the callbacks change goes back to the server (and every browser)."""
        self._synced().loop_until_closed()

    def start_background(self):
        """The same as ``loop_until_closed`` in a background thread; returns the thread.

        Callbacks run in that thread. To change the document from another thread meanwhile,
        hold ``session.lock``.
        """
        return self._synced().start_background()

    @property
    def lock(self):
        """Held while incoming changes are applied."""
        return self._synced().lock

    def _synced(self) -> DocumentSync:
        if self._sync is None:
            raise RuntimeError("nothing live yet: call show(obj), session.push() or session.open_document() first")
        return self._sync

    def store_objects(self, *objs: Model) -> None:
        """Send the whole current state of ``objs``: for in-place edits Bokeh cannot see,
        such as ``shuffle(source.data["y"])``. The document must have been pushed."""
        self._synced().store_objects(*objs)

    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate this session's requests, HTTP and websocket alike."""
        return {"Authorization": f"Token {self.token}"} if self.token else {}

    def _close_sync(self) -> None:
        sync, self._sync = self._sync, None
        if sync is not None:
            sync.close()

    @property
    def url(self) -> str | None:
        """The page of the last pushed document."""
        return self.info["url"] if self.info else None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Send any queued changes, then disconnect."""
        self._close_sync()
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

    def login_browser(self, *, timeout: float = 300.0, open_browser: Callable[[str], object] | None = None) -> str:
        """Log in through a browser, with whatever the server offers there (single sign-on, a
        password): the browser asks you to allow a new API token, then hands it back to this
        script at ``127.0.0.1``. The token is saved as ``login()`` saves it.

        Args:
            timeout: seconds to wait for the browser.
            open_browser: opens a URL; default ``webbrowser.open``. The URL is printed too, for a
                machine whose browser cannot be opened from here.

        Returns:
            The new API token.

        Raises:
            BrowserLoginFailed: the token was denied, or no answer came within ``timeout``.
        """
        with browser_login.LoopbackReceiver() as receiver:
            url = urljoin(self.root_url, "accounts/token/authorize/?" + urlencode(
                {"port": receiver.port, "state": receiver.state}))
            print(f"Log in and allow the token in your browser: {url}", flush=True)
            (open_browser or webbrowser.open)(url)
            answer = receiver.wait(timeout)
        self.token, self.username = answer["token"], answer.get("username") or None
        if not self.username:
            self.username = self._request("GET", "api/account/").json()["username"]
        config.save_login(self.root_url, self.token, self.username)
        return self.token

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

    # --- embeds ------------------------------------------------------------------------------

    def embed_token(self, title_or_id: str | None = None, origins: list[str] | tuple[str, ...] = (),
                    expires: datetime | None = None, name: str = "") -> str:
        """A new embed token for a document (default: the current one), for ``autoload_server``:
        read-only, for the pages of ``origins`` (``["https://example.org"]``) only, until
        ``expires`` (default: in 30 days) or until it is revoked.

        Returns:
            Its secret, which the server shows only now.
        """
        if isinstance(origins, str):
            origins = [origins]
        body: dict[str, Any] = {"origins": list(origins), "name": name}
        if expires is not None:
            body["expires"] = expires.isoformat()
        target = self._share_target(title_or_id)
        return self._request("POST", f"api/documents/{target}/embed-tokens/", json=body).json()["token"]

    def embed_tokens(self, title_or_id: str | None = None) -> list[dict[str, Any]]:
        """A document's embed tokens (never their secrets), revoked and expired ones included."""
        return self._request("GET", f"api/documents/{self._share_target(title_or_id)}/embed-tokens/").json()

    def revoke_embed_token(self, token_id: str, title_or_id: str | None = None) -> None:
        """Revoke an embed token (by its ``id``): pages that show it stop, and say why."""
        self._request("DELETE", f"api/documents/{self._share_target(title_or_id)}/embed-tokens/{token_id}/")

    def _repr_html_(self) -> str | None:
        """In a notebook, the session's current document, live (once pushed)."""
        if self.info is None:
            return None
        return str(notebook_snippet(self))

    def _share_target(self, title_or_id: str | None) -> str:
        if title_or_id is not None:
            return self.document_info(title_or_id)["id"]
        if self.info is None:
            self.push()  # raises if there is no current document
        return self.info["id"]

    # --- documents ---------------------------------------------------------------------------

    def documents(self, title: str | None = None, *, search: str | None = None,
                  sort: str | None = None) -> list[dict[str, Any]]:
        """Metadata of the caller's documents, every page of them.

        Args:
            title: only the one with exactly this title.
            search: only those whose title holds this, in any case.
            sort: "updated", "created", "title" or "version", or one of them reversed with "-".
        """
        params = {k: v for k, v in {"title": title, "q": search, "sort": sort, "limit": 1000}.items() if v}
        found: list[dict[str, Any]] = []
        while True:  # the server sends a page at a time, and says how many there are in all
            response = self._request("GET", "api/documents/", params={**params, "offset": len(found)})
            page = response.json()
            found.extend(page)
            total = response.headers.get("X-Total-Count")
            if not page or total is None or len(found) >= int(total):
                return found

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
        backed.pin_ranges(doc)
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

    def load_document(self, title_or_id: str, version: int | None = None) -> Document:
        """Fetch a stored document back as a Bokeh ``Document`` (model ids are kept).

        Args:
            version: an earlier version, as long as the server's history still holds it.
        """
        return self.fetch(title_or_id, version)[0]

    def fetch(self, title_or_id: str, version: int | None = None) -> tuple[Document, int]:
        """The stored document (now, or at ``version``) and the version it is at."""
        info = self.document_info(title_or_id)
        params = {"version": version} if version is not None else None
        response = self._request("GET", f"api/documents/{info['id']}/doc/", accept=wire.CONTENT_TYPE, params=params)
        header, buffers = wire.unpack(response.content)
        return wire.load_document(header["doc"], buffers), int(response.headers["X-Document-Version"])

    def delete_document(self, title_or_id: str) -> None:
        info = self.document_info(title_or_id)
        self._request("DELETE", f"api/documents/{info['id']}/")

    # --- datasets ---------------------------------------------------------------------------

    def upload_dataset(self, name: str, columns: Any, *, x: str | None = None,
                       require_sorted_x: bool = False) -> dataset_api.Dataset:
        """Upload large columns as the dataset ``name``, as raw binary in chunks; a progress bar
        shows on a terminal. A dropped connection or a restarted server is retried (the server
        says which chunks it has); an upload that fails or is interrupted is cancelled.

        Args:
            columns: a dict of one-dimensional numpy arrays (bool, integers, floats,
                datetime64) of equal length, a pandas DataFrame, a path to a Parquet file,
                or a pyarrow Table (these two need ``bokehsite[parquet]``; a file is read a
                row group at a time).
            x: the x column; default: the first.
            require_sorted_x: refuse the upload unless x never decreases (a line needs it).

        Returns:
            The ``Dataset``, with ``id``, ``name``, ``length`` and ``columns``.
        """
        return dataset_api.upload(self, name, columns, x=x, require_sorted_x=require_sorted_x)

    def upload_image(self, name: str, array: Any, *, x: tuple[float, float] | None = None,
                     y: tuple[float, float] | None = None) -> image_api.Image:
        """Upload a 2-D array as the image ``name`` (a dataset of kind ``image``), in chunks as
        ``upload_dataset`` does; the server builds its pyramid of reduced levels.

        Args:
            array: a 2-D NumPy array of any numeric dtype, row 0 at ``y[0]`` (as Bokeh's ``image``
                draws it), or an xarray ``DataArray`` with two dims (y, x) whose coordinates give
                its extent (pixel centres; a decreasing y is flipped).
            x, y: the outer edges of the image, ``(x0, x1)`` and ``(y0, y1)``; default: one unit a pixel.

        Returns:
            The ``Image``; draw it with ``server_source(image, "image", reduce="mean")``.
        """
        return image_api.upload(self, name, array, x=x, y=y)

    def append_image(self, name_or_id: Any, rows: Any) -> image_api.Image:
        """Append a 2-D block of rows (the image's width and dtype) on top of an image, in one request
        (at most the server's ``BOKEHSITE_MAX_BODY_BYTES``); views that show the top refresh."""
        return image_api.append(self, name_or_id, rows)

    def datasets(self) -> list[dataset_api.Dataset]:
        """The caller's datasets (images as ``Image``)."""
        return [image_api.wrap(self, info) for info in self._request("GET", "api/datasets/").json()]

    def dataset(self, name_or_id: str) -> dataset_api.Dataset:
        """One of the caller's datasets (an ``Image`` if it is one), by name or id."""
        return image_api.wrap(self, dataset_api.find(self, name_or_id))

    def append_dataset(self, name_or_id: str, columns: Any) -> dataset_api.Dataset:
        """Append rows to every column of a dataset, in one request (at most the server's
        ``BOKEHSITE_MAX_BODY_BYTES``); x must not decrease if it was sorted. Returns the dataset."""
        return dataset_api.append(self, name_or_id, columns)

    def dataset_view(self, dataset_id: str, *, kind: str, width: int, height: int, **query: Any) -> tuple[dict[str, Any], list]:
        """A view of a dataset at a plot's size (``x``, ``y``, ``x0``... as the server takes them):
        the ``view_data`` header and its buffers (``backed.decode_view`` reads its columns, a
        1-byte image's 16-bit means among them). ``server_source`` starts from one."""
        params = {"kind": kind, "width": width, "height": height, **{k: v for k, v in query.items() if v is not None}}
        if isinstance(params.get("y"), list):  # many columns (lines): more than a URL holds
            response = self._request("POST", f"api/datasets/{dataset_id}/view/", accept=wire.CONTENT_TYPE, json=params)
        else:
            response = self._request("GET", f"api/datasets/{dataset_id}/view/", accept=wire.CONTENT_TYPE, params=params)
        return wire.unpack(response.content)

    def delete_dataset(self, name_or_id: str) -> None:
        """Delete a dataset and its files."""
        self._request("DELETE", f"api/datasets/{dataset_api.find(self, name_or_id)['id']}/")

    # --- history -----------------------------------------------------------------------------

    def history(self, title_or_id: str | None = None, *, limit: int | None = None) -> list[dict[str, Any]]:
        """The versions of a document (default: the current one) the server still holds, newest
        first: each a dict with ``version``, ``kind`` ("create", "change", "replace" or
        "restore"), ``created``, ``author``, ``size`` and ``restored_from``.

        Args:
            limit: at most this many (default: all of them, fetched a page at a time).
        """
        target = self._share_target(title_or_id)
        versions: list[dict[str, Any]] = []
        before = None
        while limit is None or len(versions) < limit:
            params = {"limit": 1000 if limit is None else min(1000, limit - len(versions))}
            if before is not None:
                params["before"] = before
            page = self._request("GET", f"api/documents/{target}/history/", params=params).json()
            versions.extend(page["items"])
            before = page["next"]
            if before is None:
                break
        return versions

    def restore(self, version: int, title_or_id: str | None = None) -> dict[str, Any]:
        """Make a new version of a document (default: the current one) equal to ``version``;
        every viewer, and this session's live document, moves to it. Returns the metadata,
        with the new ``version``. The history keeps everything, recorded as a restore."""
        target = self._share_target(title_or_id)
        info = self._request("POST", f"api/documents/{target}/restore/", json={"version": version}).json()
        if self.info is not None and self.info.get("id") == info["id"]:
            self.info = info
        return info

    # --- exports -----------------------------------------------------------------------------

    EXPORT_FORMATS = ("html", "json", "png", "svg")

    def export(self, title_or_id: str | None = None, format: str = "html", version: int | None = None,
               path: str | os.PathLike[str] | None = None) -> bytes | str:
        """A document (default: the current one) written out: ``"html"`` (a standalone page with
        BokehJS inline, which opens from disk), ``"json"`` (Bokeh's document JSON), ``"png"`` or
        ``"svg"`` (drawn by the server's headless Chromium).

        Args:
            version: an earlier version (default: the current one).
            path: a file to write it to, as it arrives; then the path is returned, else the bytes.
        """
        if format not in self.EXPORT_FORMATS:
            raise ValueError(f"format must be one of {', '.join(self.EXPORT_FORMATS)}, not {format!r}")
        params: dict[str, Any] = {"format": format}
        if version is not None:
            params["version"] = version
        response = self._request("GET", f"api/documents/{self._share_target(title_or_id)}/export/",
                                 accept="*/*", params=params, stream=True)
        with response:
            if path is None:
                return response.content
            with open(path, "wb") as out:
                for chunk in response.iter_content(1 << 20):
                    out.write(chunk)
        return os.fspath(path)

    def export_account(self, path: str | os.PathLike[str], *, history: bool = False) -> str:
        """Write every document this session's user owns to the zip file ``path``: metadata and
        Bokeh JSON of each, and with ``history`` their snapshots and change log. Returns the path."""
        response = self._request("GET", "api/account/export/", accept="*/*",
                                 params={"history": "true" if history else "false"}, stream=True)
        with response, open(path, "wb") as out:
            for chunk in response.iter_content(1 << 20):
                out.write(chunk)
        return os.fspath(path)

    def import_account(self, path: str | os.PathLike[str], *, on_conflict: str | None = None) -> list[dict[str, Any]]:
        """Store the documents of an account zip (``export_account``, ``manage.py export_documents``)
        as this session's user's, all or none, with each document's history when the zip carries
        it (``export_account(..., history=True)``). ``on_conflict`` ("rename", "skip" or "replace")
        says what to do with a title the user already has; without it a clash raises
        ``ServerError`` (409 ``title_taken``) and nothing is stored. Returns what became of each:
        ``{"title", "id", "outcome"}``."""
        params = {"on_conflict": on_conflict} if on_conflict else None
        with open(path, "rb") as f:
            return self._request("POST", "api/account/import/", data=f, content_type="application/zip",
                                 params=params).json()

    # --- plumbing ----------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, content_type: str | None = None, accept: str = "application/json",
        auth: bool = True, **kwargs: Any,
    ) -> requests.Response:
        url = urljoin(self.root_url, path)
        headers = {"Accept": accept, **(self.auth_headers() if auth else {})}
        if content_type:
            headers["Content-Type"] = content_type
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
