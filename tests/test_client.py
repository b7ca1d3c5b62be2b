"""The Python client against a real Daphne server."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import bokehsite.client as client
from bokehsite.client import ServerError, ServerUnreachable, Session, figure
from documents.models import Document
from tests.helpers import SEED_LINE, line_document, run_script
from tests.servers import ROOT, free_port

pytestmark = [pytest.mark.daphne, pytest.mark.django_db(transaction=True)]

def test_the_seed_example_runs_unchanged_but_for_the_import(live_server_url, tmp_path):
    result = run_script(SEED_LINE, live_server_url, tmp_path)
    assert result.returncode == 0, result.stderr
    document = Document.objects.get(title="line")
    assert result.stdout.strip() == f"line: {live_server_url}documents/{document.id}/"
    assert document.owner.username == "defaultuser"

    again = run_script(SEED_LINE, live_server_url, tmp_path)
    assert again.returncode == 0, again.stderr
    document.refresh_from_db()
    assert Document.objects.count() == 1 and document.version == 2


def test_load_document_brings_back_the_pushed_document(live_server_url):
    doc = line_document(10_000)
    with Session(live_server_url) as session:
        session.use_doc("sine")
        info = session.push(doc)
        by_title = session.load_document("sine")
        by_id = session.load_document(info["id"])
    for loaded in (by_title, by_id):
        assert {m.id for m in loaded.models} == {m.id for m in doc.models}
        np.testing.assert_array_equal(
            loaded.get_model_by_name("ex_line").data_source.data["y"], doc.get_model_by_name("ex_line").data_source.data["y"]
        )


def test_output_server_show_cursession_and_push(live_server_url, capsys):
    session = client.output_server("workflow", url=live_server_url)
    assert client.cursession() is session
    p = figure(plot_width=300)
    p.scatter([1, 2], [3, 4])
    url = client.show(p)
    assert url == session.url and capsys.readouterr().out.strip() == f"workflow: {url}"
    assert p.document is client.curdoc()

    p.title.text = "changed"
    assert client.push()["version"] == 2
    assert session.load_document("workflow").roots[0].title.text == "changed"


def test_an_unreachable_server_raises_an_error_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}/"
    with pytest.raises(ServerUnreachable, match=f"cannot reach the bokehsite server at {url}"):
        Session(url).documents()


def test_a_server_error_carries_its_code_and_message(live_server_url):
    with pytest.raises(ServerError) as raised:
        Session(live_server_url).load_document("never pushed")
    assert raised.value.code == "not_found" and "never pushed" in str(raised.value)

    with pytest.raises(ServerError) as raised:
        Session(live_server_url).document_info("00000000-0000-0000-0000-000000000000")
    assert raised.value.status == 404 and live_server_url in str(raised.value)
    assert "no such document" in str(raised.value)


def test_the_server_message_reaches_the_user_for_an_invalid_document(live_server_url):
    session = Session(live_server_url)
    with pytest.raises(ServerError) as raised:
        session._request("POST", "api/documents/", json={"title": "x", "doc": {"roots": 1}})
    assert raised.value.code == "invalid_document" and raised.value.field == "doc"
    assert "'roots' must be a list" in str(raised.value)
    assert not Document.objects.exists()


def test_the_client_imports_without_django():
    code = textwrap.dedent("""
        import sys
        import bokehsite.client
        from bokehsite.client import figure, output_server, show, cursession, push, Session
        assert not [m for m in sys.modules if m == "django" or m.startswith("django.")], "django was imported"
    """)
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_default_url_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("BOKEH_SERVER_URL", raising=False)
    assert Session().root_url == "http://localhost:5006/"
    monkeypatch.setenv("BOKEH_SERVER_URL", "http://plots.example:9000")
    assert Session().root_url == "http://plots.example:9000/"


def test_figure_accepts_the_old_size_names():
    p = figure(plot_width=321, plot_height=123)
    assert (p.width, p.height) == (321, 123)
    with pytest.raises(TypeError, match="both 'plot_width' and 'width'"):
        figure(plot_width=1, width=2)
