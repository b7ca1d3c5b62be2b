"""Notebooks: ``show(p)`` in a real Jupyter kernel displays the live plot inline, through the
embed, and still prints the URL; the output's HTML, in a page of the notebook's origin, draws
the plot in Chromium and follows a stream."""

from __future__ import annotations

import html
import re

import nbformat
import pytest
from nbclient import NotebookClient

from bokehsite.client import Session
from tests.conftest import make_user
from tests.helpers import COUNT_PIXELS, LINE_BLUE
from tests.servers import StaticSite

pytestmark = [pytest.mark.browser, pytest.mark.daphne, pytest.mark.django_db(transaction=True)]

CELLS = [
    "from bokehsite.client import cursession, figure, output_server, show",
    'output_server("notebook line")\n'
    "p = figure(plot_width=400, plot_height=400)\n"
    'p.line([1, 2, 3, 4, 5], [6, 7, 2, 4, 5], line_width=2, name="ex_line")\n'
    "show(p)",
    "cursession()",  # the session's document, as its rich repr
]


def run_notebook(cells: list[str]) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    NotebookClient(notebook, timeout=90, kernel_name="python3").execute()
    return notebook


def html_outputs(cell) -> list[str]:
    return [output["data"]["text/html"] for output in cell["outputs"]
            if output["output_type"] in ("display_data", "execute_result") and "text/html" in output.get("data", {})]


def test_show_in_a_notebook_displays_the_live_plot_inline(multi_user_server_url, page, tmp_path, monkeypatch):
    make_user("nora", password="correct horse battery")
    token = Session(multi_user_server_url).login("nora", "correct horse battery")
    notebook_page = tmp_path / "notebook"
    notebook_page.mkdir()
    with StaticSite(notebook_page) as notebook_site:
        # The kernel inherits these: the server, the login, and where the notebook is served.
        monkeypatch.setenv("BOKEH_SERVER_URL", multi_user_server_url)
        monkeypatch.setenv("BOKEH_API_TOKEN", token)
        monkeypatch.setenv("BOKEH_CONFIG_DIR", str(tmp_path / "config"))
        monkeypatch.setenv("BOKEHSITE_NOTEBOOK_ORIGINS", notebook_site.origin)
        notebook = run_notebook(CELLS)

        shown = notebook.cells[1]
        printed = "".join(o.get("text", "") for o in shown["outputs"] if o["output_type"] == "stream")
        assert re.search(rf"notebook line: {re.escape(multi_user_server_url)}documents/[0-9a-f-]+/", printed)
        (snippet,) = html_outputs(shown)
        document_id = re.search(r"/documents/([0-9a-f-]+)/", printed).group(1)
        src = html.unescape(re.fullmatch(r'<script src="([^"]+)" id="bokehsite-[0-9a-f]+"></script>', snippet).group(1))
        assert src.startswith(f"{multi_user_server_url}documents/{document_id}/autoload.js?embed_token=bke_")
        (repr_html,) = html_outputs(notebook.cells[2])
        assert f"/documents/{document_id}/autoload.js" in repr_html

        # The output cell's HTML, in a page of the notebook's origin, as Jupyter shows it.
        (notebook_page / "index.html").write_text(
            f"<!DOCTYPE html><html><head><meta charset=utf-8></head><body><div class=output>{snippet}</div></body></html>")
        page.goto(f"{notebook_site.origin}/index.html")
        page.wait_for_selector("iframe.bokehsite-embed-frame[data-state=rendered]", timeout=30_000)
        page.wait_for_timeout(300)
        frame = next(f for f in page.frames if f"/documents/{document_id}/frame/" in f.url)
        assert frame.evaluate(COUNT_PIXELS, list(LINE_BLUE)) > 200
        frame.wait_for_selector("#live-status[data-status=live]")

        # A stream from another script reaches the inline plot.
        with Session(multi_user_server_url, token=token) as session:
            doc = session.open_document(document_id)
            doc.get_model_by_name("ex_line").data_source.stream({"x": [6, 7], "y": [1, 8]})
            version = session.push()["version"]
        frame.wait_for_function(f"Number(document.getElementById('plot').dataset.version) >= {version}", timeout=15_000)
        assert frame.evaluate("Bokeh.documents[0].get_model_by_name('ex_line').data_source.data.x.length") == 7


def test_autoload_server_writes_the_snippet_and_refuses_what_cannot_be_shown(live_server_url, monkeypatch):
    from bokehsite.client import BokehsiteError, autoload_server
    from tests.helpers import line_document

    monkeypatch.delenv("BOKEH_SERVER_BROWSER_URL", raising=False)
    with Session(live_server_url) as session:
        with pytest.raises(BokehsiteError, match="not pushed"):
            autoload_server(session=session)
        session.use_doc("snippet")
        doc = line_document()
        session.push(doc)
        plot = doc.roots[0]
        snippet = autoload_server(plot, session=session)
        assert snippet.startswith(f'<script src="{live_server_url}documents/{session.info["id"]}/autoload.js?id=bokehsite-')
        assert snippet._repr_html_() == snippet  # a notebook shows it as the plot
        with pytest.raises(BokehsiteError, match="not public"):
            autoload_server(plot, session=session, public=True)
        session.publish()
        assert "autoload.js?public=true&amp;id=" in autoload_server(plot, session=session, public=True)
        with pytest.raises(BokehsiteError, match="not both"):
            autoload_server(plot, session=session, public=True, token="bke_x")
        with pytest.raises(BokehsiteError, match="not pushed"):
            autoload_server(line_document().roots[0], session=session)
        # Behind a proxy (JupyterHub), the address browsers use.
        monkeypatch.setenv("BOKEH_SERVER_BROWSER_URL", "https://hub.example.org/services/plots")
        assert 'src="https://hub.example.org/services/plots/documents/' in autoload_server(session=session)
