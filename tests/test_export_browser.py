"""Exports drawn and opened in headless Chromium: the HTML export from file:// with no server,
PNG with the plot's pixels, SVG with its line; through the client, against a real server."""

import io

import numpy as np
import pytest
from PIL import Image

from bokehsite.client import Session
from tests.helpers import COUNT_PIXELS, LINE_BLUE, line_document

pytestmark = [pytest.mark.browser, pytest.mark.daphne, pytest.mark.django_db(transaction=True)]


def pushed(url, title, doc=None):
    session = Session(url)
    session.use_doc(title)
    session.push(doc or line_document())
    return session


def blue_pixels(png: bytes) -> int:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return int((np.abs(pixels - np.array(LINE_BLUE)) < 8).all(axis=-1).sum())


def test_the_html_export_opens_from_disk_and_draws_the_plot(live_server_url, page, tmp_path):
    with pushed(live_server_url, "offline") as session:
        path = session.export(format="html", path=tmp_path / "offline.html")
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"file://{path}")
    page.wait_for_selector("#plot[data-state=rendered]", timeout=30_000)
    page.wait_for_timeout(300)
    assert page.evaluate(COUNT_PIXELS, list(LINE_BLUE)) > 200
    assert [u for u in requests if not u.startswith("file://")] == []  # no server, no network
    assert page.problems == []


def test_a_document_with_widgets_a_table_and_webgl_draws_from_its_html_export(live_server_url, page, tmp_path):
    from tests.test_export import widgets_table_webgl

    with pushed(live_server_url, "controls", widgets_table_webgl()) as session:
        path = session.export(format="html", path=tmp_path / "controls.html")
    page.goto(f"file://{path}")
    page.wait_for_selector("#plot[data-state=rendered]", timeout=30_000)
    assert page.problems == []


def test_an_old_version_exports_as_it_was(live_server_url, page, tmp_path):
    with pushed(live_server_url, "recoloured") as session:
        session.document.get_model_by_name("ex_line").glyph.line_color = "red"
        session.push()
        path = session.export(format="html", version=1, path=tmp_path / "v1.html")
        now = session.export(format="html", path=tmp_path / "v2.html")
    page.goto(f"file://{path}")
    page.wait_for_selector("#plot[data-state=rendered]", timeout=30_000)
    page.wait_for_timeout(300)
    assert page.evaluate(COUNT_PIXELS, list(LINE_BLUE)) > 200
    page.goto(f"file://{now}")
    page.wait_for_selector("#plot[data-state=rendered]", timeout=30_000)
    page.wait_for_timeout(300)
    assert page.evaluate(COUNT_PIXELS, list(LINE_BLUE)) == 0 and page.evaluate(COUNT_PIXELS, [255, 0, 0]) > 200


def test_a_png_has_the_plots_pixels(live_server_url):
    with pushed(live_server_url, "picture") as session:
        png = session.export(format="png")
        red = line_document()
        red.get_model_by_name("ex_line").glyph.line_color = "red"
        session.push_document(red, "red picture")
        other = session.export("red picture", format="png")
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (400, 400)  # the figure's own size
    assert blue_pixels(png) > 200
    assert blue_pixels(other) == 0


def test_an_svg_draws_the_line(live_server_url):
    with pushed(live_server_url, "vector") as session:
        svg = session.export(format="svg").decode()
    assert svg.startswith("<svg") and 'width="400"' in svg
    assert "<path" in svg and ("#1f77b4" in svg.lower() or "rgb(31,119,180)" in svg.replace(" ", ""))


def test_the_plot_page_links_to_its_exports(live_server_url, page):
    with pushed(live_server_url, "linked") as session:
        page.goto(session.url)
        links = {a.inner_text(): a.get_attribute("href") for a in page.locator("#exports a").all()}
    assert set(links) == {"HTML", "JSON", "PNG", "SVG"}
    assert links["PNG"].endswith("/export/?format=png")
    response = page.request.get(live_server_url.rstrip("/") + links["JSON"])
    assert response.status == 200 and response.json()["roots"]


def test_the_client_exports_the_whole_account(live_server_url, tmp_path):
    import json
    import zipfile

    with pushed(live_server_url, "first") as session:
        session.push_document(line_document(), "second")
        path = session.export_account(tmp_path / "account.zip", history=True)
    manifest = json.loads(zipfile.ZipFile(path).read("manifest.json"))
    assert {"first", "second"} <= {d["title"] for d in manifest["documents"]} and manifest["history"] is True


def test_an_account_moves_from_one_server_to_another(live_server_url, tmp_path):
    import os
    import subprocess
    import sys

    from tests.helpers import state
    from tests.servers import ROOT, DaphneServer

    with pushed(live_server_url, "travels") as session:
        session.document.get_model_by_name("ex_line").data_source.stream({"x": [6], "y": [3]})
        session.push()
        session.push_document(line_document(2000), "travels too")
        path = session.export_account(tmp_path / "account.zip")
        here = {t: state(session.load_document(t)) for t in ("travels", "travels too")}
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/other.sqlite3", "BOKEHSITE_DATA_DIR": str(tmp_path / "var")}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, check=True,
                   env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    with DaphneServer(env=env) as other, Session(other.url) as there:
        outcomes = there.import_account(path)
        assert {o["title"] for o in outcomes} >= {"travels", "travels too"}
        assert {t: state(there.load_document(t)) for t in here} == here
        with pytest.raises(Exception) as clash:
            there.import_account(path)
        assert clash.value.status == 409 and clash.value.field == "on_conflict"
