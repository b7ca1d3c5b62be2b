"""Exports: standalone HTML (opens from disk), Bokeh's document JSON, PNG and SVG drawn by
headless Chromium, at any version, from the API, the client and the pages."""

import json

import pytest
from bokeh.document import Document as BokehDocument

from documents import services
from tests.conftest import token_client
from tests.helpers import line_document, plain, state, store, stream_patch

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(alice, multi_user):
    return token_client(alice)


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_the_json_export_is_bokehs_document_json(alice, api):
    doc = line_document(1000)
    document = store(alice, "wave", doc)
    response = api.get(f"/api/documents/{document.id}/export/", {"format": "json"})
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == 'attachment; filename="wave-v1.json"'
    assert state(BokehDocument.from_json(json.loads(body(response)))) == state(doc)


def test_any_version_can_be_exported(alice, api):
    doc = line_document()
    document = store(alice, "line", doc)
    source_id = doc.get_model_by_name("ex_line").data_source.id
    services.apply_patch(document, *plain(*stream_patch(doc, source_id, [6], [1])))
    old = BokehDocument.from_json(json.loads(body(api.get(f"/api/documents/{document.id}/export/",
                                                         {"format": "json", "version": 1}))))
    new = BokehDocument.from_json(json.loads(body(api.get(f"/api/documents/{document.id}/export/", {"format": "json"}))))
    assert len(old.get_model_by_name("ex_line").data_source.data["x"]) == 5
    assert len(new.get_model_by_name("ex_line").data_source.data["x"]) == 6


def test_the_html_export_holds_bokehjs_and_the_document(alice, api):
    document = store(alice, "a <b> title")
    response = api.get(f"/api/documents/{document.id}/export/", {"format": "html"}, HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    page = body(response).decode()
    assert "<title>a &lt;b&gt; title</title>" in page and 'filename="a-b-title-v1.html"' in response["Content-Disposition"]
    head, rest = page.split("<script>", 1)
    own = head + rest.split('</head>\n<body>\n<div id="plot"', 1)[1]  # the page's own markup, around BokehJS
    assert page.count("<script>") == 2 and "src=" not in own and "<link" not in own  # nothing to fetch
    assert "Bokeh" in page and "bokeh-widgets" not in page  # BokehJS core, and no bundle a line does not need
    doc_json = json.loads(page.split('id="bokehsite-doc">')[1].split("</script>")[0])
    assert doc_json["roots"]


def widgets_table_webgl() -> BokehDocument:
    from bokeh.models import ColumnDataSource, Column, DataTable, Slider
    from bokeh.plotting import figure

    source = ColumnDataSource(data={"x": [1, 2, 3]})
    plot = figure(width=200, height=200, output_backend="webgl")
    plot.line("x", "x", source=source)
    doc = BokehDocument()
    doc.add_root(Column(plot, Slider(start=0, end=1, value=0), DataTable(source=source)))
    return doc


@pytest.mark.parametrize(("make", "wanted"), [
    (line_document, ["bokeh.min.js"]),
    (widgets_table_webgl, ["bokeh.min.js", "bokeh-gl.min.js", "bokeh-widgets.min.js", "bokeh-tables.min.js"]),
])
def test_the_html_export_carries_the_bokehjs_bundles_its_models_need(make, wanted):
    from bokeh.embed.bundle import _use_gl, _use_tables, _use_widgets

    from documents import bokeh_json, exports

    doc = make()
    assert exports.bundles(bokeh_json.dump(doc)[0]) == wanted
    models = set(doc.models)  # the same choice as Bokeh's own, for a file it writes
    assert ("bokeh-gl.min.js" in wanted, "bokeh-widgets.min.js" in wanted, "bokeh-tables.min.js" in wanted) == (
        _use_gl(models), _use_widgets(models), _use_tables(models))


def test_a_model_type_bokeh_does_not_know_gets_every_bundle():
    from documents import exports

    assert exports.bundles({"roots": [{"type": "object", "name": "NotAModel", "id": "p1"}]}) == exports.BOKEHJS


@pytest.mark.parametrize("fmt", ["json", "html"])
def test_a_large_export_is_written_a_piece_at_a_time(alice, api, fmt):
    document = store(alice, "big", line_document(300_000))
    assert api.get(f"/api/documents/{document.id}/export/", {"format": fmt}).streaming
    _, chunks = services.export_document(document, fmt)
    pieces = list(chunks)
    # Each array is encoded a megabyte at a time, never as one string of the whole document.
    assert len(pieces) > 5 and max(map(len, pieces)) <= 2 * 1024 * 1024


@pytest.mark.parametrize("query, status, error, field", [
    ({"format": "pdf"}, 400, "invalid", "format"), ({"version": 0}, 400, "invalid", "version"),
    ({"version": 9}, 404, "not_found", None)])
def test_bad_export_queries_are_refused_naming_the_field(alice, api, query, status, error, field):
    document = store(alice)
    response = api.get(f"/api/documents/{document.id}/export/", query)
    assert response.status_code == status and response.json()["error"] == error and response.json()["field"] == field


def test_a_pruned_version_is_gone(alice, api, settings):
    settings.BOKEHSITE_HISTORY, settings.BOKEHSITE_SNAPSHOT_EVERY = 2, 2
    doc = line_document()
    document = store(alice, "line", doc)
    source_id = doc.get_model_by_name("ex_line").data_source.id
    for i in range(6):
        services.apply_patch(document, *plain(*stream_patch(doc, source_id, [6 + i], [1])))
    response = api.get(f"/api/documents/{document.id}/export/", {"format": "json", "version": 1})
    assert response.status_code == 410 and response.json()["error"] == "history_truncated"


def test_without_chromium_images_answer_501_and_html_still_works(alice, api, settings):
    settings.BOKEHSITE_CHROMIUM = "/nonexistent/chromium"
    document = store(alice)
    for fmt in ("png", "svg"):
        response = api.get(f"/api/documents/{document.id}/export/", {"format": fmt})
        assert response.status_code == 501 and response.json()["error"] == "export_unavailable"
        assert "no Chromium at /nonexistent/chromium" in response.json()["detail"]
    assert api.get(f"/api/documents/{document.id}/export/", {"format": "html"}).status_code == 200


def test_someone_who_may_not_view_it_cannot_export_it(alice, charlie, api):
    document = store(alice)
    response = token_client(charlie).get(f"/api/documents/{document.id}/export/", {"format": "json"})
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_a_drawing_that_waits_too_long_for_its_turn_answers_503(alice, api, settings, tmp_path):
    import time

    from documents import images

    chromium = tmp_path / "chromium"  # never started: every turn is taken
    chromium.touch()
    settings.BOKEHSITE_CHROMIUM = str(chromium)
    settings.BOKEHSITE_EXPORT_WORKERS = 1
    settings.BOKEHSITE_EXPORT_TIMEOUT = 1
    document = store(alice)
    slots = images._slots()
    assert slots.acquire(timeout=1)
    try:
        started = time.monotonic()
        response = api.get(f"/api/documents/{document.id}/export/", {"format": "png"})
    finally:
        slots.release()
    assert response.status_code == 503 and response.json()["error"] == "unavailable"
    assert "as many pictures as it may" in response.json()["detail"] and time.monotonic() - started < 10
