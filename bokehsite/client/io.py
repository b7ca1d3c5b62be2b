"""The old bokeh-server plotting workflow: ``output_server(title)``, build a plot, ``show(p)``."""

from __future__ import annotations

import webbrowser
from typing import Any

from bokeh.document import Document
from bokeh.model import Model

from bokehsite.client.embed import display_inline, in_notebook
from bokehsite.client.session import Session, normalize_url

_current: Session | None = None


def output_server(title: str, session: Session | None = None, url: str | None = None) -> Session:
    """Send what ``show()`` displays to a bokehsite server, as the document called ``title``.

    Args:
        title: the document's title; pushing again under it replaces the stored document.
        session: the session to use; by default the current one, or a new one for ``url``.
        url: the server's address, for a new session (default ``$BOKEH_SERVER_URL``).
    """
    global _current
    if session is None:
        reuse = _current is not None and (url is None or normalize_url(url) == _current.root_url)
        session = _current if reuse else Session(url)
    session.use_doc(title)
    _current = session
    return session


def cursession() -> Session:
    """The session ``output_server()`` last set up."""
    if _current is None:
        raise RuntimeError("no current session: call output_server(title) first")
    return _current


def curdoc() -> Document:
    """The document ``show()`` and ``push()`` store."""
    return cursession().document


def push() -> dict[str, Any]:
    """Store the current document on the server; returns its metadata."""
    return cursession().push()


def show(obj: Model | None = None, browser: bool | str = False, new: str = "tab") -> str:
    """Store ``obj``'s document on the server, print its URL and return it.

    Args:
        obj: a plot or layout; it joins the current document unless it already belongs to one.
        browser: open the page too: ``True`` for the default browser, or a browser's name
            as ``webbrowser.get`` knows it.
        new: "tab" or "window", when a browser opens.
    """
    session = cursession()
    doc = session.document
    if obj is not None:
        if obj.document is None:
            doc.add_root(obj)
        else:
            doc = obj.document
    info = session.push(doc)
    print(f"{info['title']}: {info['url']}")
    if in_notebook():  # the live plot, inline in the output cell
        display_inline(session)
    if browser:
        controller = webbrowser.get(None if browser is True else browser)
        controller.open(info["url"], new=2 if new == "tab" else 1)
    return info["url"]
