"""Plots in other pages and in notebooks: ``autoload_server`` writes the ``<script>`` snippet
that shows a stored document, live, in any web page; ``show()`` in a notebook displays it inline.

The snippet loads ``/documents/<id>/autoload.js`` from the server, which draws the plot in a
sandboxed frame after the script tag. A public document needs nothing (``public=True``); a
private one an embed token (``Session.embed_token``), bound to the origins of the pages that may
show it; on a single-user server any document shows without one.
"""

from __future__ import annotations

import html
import os
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin

from bokeh.model import Model

from bokehsite.client.exceptions import BokehsiteError

if TYPE_CHECKING:
    from bokehsite.client.session import Session

# Where notebooks are served, for the embed tokens show() makes in them (JupyterHub: its URL).
DEFAULT_NOTEBOOK_ORIGINS = "http://localhost:8888,http://127.0.0.1:8888"


class Snippet(str):
    """An HTML snippet; notebooks display it as what it shows."""

    def _repr_html_(self) -> str:
        return str(self)


def browser_url(session: Session) -> str:
    """The server's address as browsers reach it: ``$BOKEH_SERVER_BROWSER_URL`` when it differs
    from the one this process uses (behind a JupyterHub proxy, say), else the session's."""
    url = os.environ.get("BOKEH_SERVER_BROWSER_URL") or session.root_url
    return url if url.endswith("/") else url + "/"


def notebook_origins() -> list[str]:
    """The origins of the notebook pages that show plots: ``$BOKEHSITE_NOTEBOOK_ORIGINS``."""
    value = os.environ.get("BOKEHSITE_NOTEBOOK_ORIGINS") or DEFAULT_NOTEBOOK_ORIGINS
    return [origin.strip() for origin in value.split(",") if origin.strip()]


def document_id(session: Session, model: Model | None) -> str:
    """The stored id of ``model``'s document (default: the session's current one)."""
    doc = model.document if model is not None else session.document
    if model is not None and doc is None:
        raise BokehsiteError("the model belongs to no document: show(model) or session.push() it first")
    if session.info is None or doc is not session.document:
        raise BokehsiteError("that document was not pushed by this session: show() or session.push() it first")
    return session.info["id"]


def autoload_server(model: Model | None = None, session: Session | None = None, public: bool = False,
                    token: str | None = None) -> Snippet:
    """An HTML snippet (a ``<script>`` tag) that shows a stored plot, live, in any web page.

    Args:
        model: a model of the document to show; default: the session's current document.
        session: default: the current session (``output_server``).
        public: load the public version; the document must be public (``Session.publish``).
        token: an embed token (``Session.embed_token``) for a private document, bound to the
            origins of the pages that may show it.
    Raises:
        BokehsiteError: the document was not pushed, or ``public`` for one that is not public.
    """
    if session is None:
        from bokehsite.client.io import cursession

        session = cursession()
    if public and token:
        raise BokehsiteError("give public=True or an embed token, not both")
    doc_id = document_id(session, model)
    if public and session.document_info(doc_id)["visibility"] != "public":
        raise BokehsiteError("the document is not public: session.publish() it first, or give an embed token")
    element = f"bokehsite-{uuid.uuid4().hex[:12]}"
    query: dict[str, Any] = {"public": "true"} if public else {"embed_token": token} if token else {}
    src = urljoin(browser_url(session), f"documents/{doc_id}/autoload.js") + "?" + urlencode({**query, "id": element})
    return Snippet(f'<script src="{html.escape(src)}" id="{element}"></script>')


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel, whose output cells show HTML."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def notebook_snippet(session: Session) -> Snippet:
    """The snippet ``show()`` displays in a notebook: the public version of a public document, an
    embed token for the notebook's origins when the session logs in, else none (single-user)."""
    info = session.info or {}
    if info.get("visibility") == "public":
        return autoload_server(session=session, public=True)
    if session.token:
        # One token per document and session, however often the cell is shown again.
        made = getattr(session, "_notebook_embed", None)
        if made is None or made[0] != info.get("id"):
            made = session._notebook_embed = (info.get("id"), session.embed_token(origins=notebook_origins(), name="notebook"))
        return autoload_server(session=session, token=made[1])
    return autoload_server(session=session)


def display_inline(session: Session) -> None:
    from IPython.display import display

    display({"text/html": notebook_snippet(session)}, raw=True)
