"""The document list shows each plot's thumbnail: drawn in the background by Chromium, shown to
whoever may view the plot, and a placeholder until it is drawn or where it cannot be."""

import io
import re
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.users import default_user
from documents import services, thumbnails
from documents.models import Document, Thumbnail
from tests.conftest import PASSWORD
from tests.helpers import create, line_document, plain, store, stream_patch

pytestmark = pytest.mark.django_db


def png_of(width: int, height: int, colour=(200, 30, 30)) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (width, height), "white")
    image.paste(colour, (0, 0, width // 2, height // 2))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def drawn(document, version=None) -> Thumbnail:
    return Thumbnail.objects.create(document=document, version=version or document.version,
                                    png=thumbnails.shrink(png_of(800, 500)), drawn=timezone.now())


def test_without_chromium_the_list_and_the_thumbnail_are_the_placeholder(client, settings, tmp_path):
    settings.BOKEHSITE_THUMBNAILS = True
    settings.BOKEHSITE_CHROMIUM = str(tmp_path / "no-chromium")
    document = store(default_user(), "line")
    html = client.get("/").content.decode()
    assert f'<img src="/documents/{document.id}/thumbnail.png?v=0"' in html
    response = client.get(f"/documents/{document.id}/thumbnail.png?v=0")
    assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
    assert response.content.decode() == thumbnails.PLACEHOLDER and response["Cache-Control"] == "no-cache"
    assert thumbnails.schedule(document.id) is False and thumbnails._worker.waiting() == 0
    assert not Thumbnail.objects.exists()


def test_a_document_that_did_not_draw_shows_the_placeholder(client):
    document = store(default_user(), "line")
    Thumbnail.objects.create(document=document, version=document.version, png=b"", drawn=timezone.now())
    assert "thumbnail.png?v=0" in client.get("/").content.decode()
    assert client.get(f"/documents/{document.id}/thumbnail.png")["Content-Type"] == "image/svg+xml"


def test_a_drawn_thumbnail_is_served_and_cached_under_its_version(client):
    document = store(default_user(), "line")
    drawn(document)
    html = client.get("/").content.decode()
    assert f'src="/documents/{document.id}/thumbnail.png?v=1"' in html
    response = client.get(f"/documents/{document.id}/thumbnail.png?v=1")
    assert response["Content-Type"] == "image/png" and response.content.startswith(b"\x89PNG")
    assert response["Cache-Control"] == "private, max-age=86400"
    assert client.get(f"/documents/{document.id}/thumbnail.png?v=0")["Cache-Control"] == "private, no-cache"


def test_a_thumbnail_is_320_pixels_wide_and_keeps_its_shape():
    from PIL import Image

    small = Image.open(io.BytesIO(thumbnails.shrink(png_of(1000, 600))))
    assert small.size == (320, 192)
    tall = Image.open(io.BytesIO(thumbnails.shrink(png_of(400, 4000))))
    assert tall.size == (320, thumbnails.MAX_HEIGHT)
    tiny = Image.open(io.BytesIO(thumbnails.shrink(png_of(100, 80))))
    assert tiny.size == (100, 80)  # never scaled up


def test_the_list_shows_a_thumbnail_for_each_document(client):
    owner = default_user()
    documents = [store(owner, f"plot {i}") for i in range(3)]
    drawn(documents[0])
    stale = drawn(documents[1], version=1)
    Document.objects.filter(pk=documents[1].pk).update(version=2)
    html = client.get("/").content.decode()
    images = re.findall(r'<img src="/documents/([0-9a-f-]+)/thumbnail.png\?v=(\d+)"', html)
    assert sorted(images) == sorted([(str(documents[0].id), "1"), (str(documents[1].id), "1"), (str(documents[2].id), "0")])
    assert thumbnails.is_stale(Document.objects.get(pk=documents[1].pk)) and stale.version == 1
    assert not thumbnails.is_stale(Document.objects.get(pk=documents[0].pk))


def test_the_list_shows_thumbnails_of_documents_shared_with_one_too(alice, bob, multi_user):
    document = store(alice, "shared plot")
    services.share(document, "bob", "read")
    browser = Client()
    browser.login(username="bob", password=PASSWORD)
    html = browser.get("/").content.decode()
    assert f'<img src="/documents/{document.id}/thumbnail.png?v=0"' in html
    assert browser.get(f"/documents/{document.id}/thumbnail.png").status_code == 200


def logged_in(user) -> Client:
    browser = Client()
    if user is not None:
        browser.login(username=user.username, password=PASSWORD)
    return browser


@pytest.mark.parametrize("visibility, query", [("private", ""), ("public", "?public=true"), ("secret", "?key=KEY"),
                                               ("secret", "?key=wrong"), ("private", "?public=true")])
def test_whoever_may_view_the_plot_page_may_see_its_thumbnail_and_nobody_else(alice, bob, charlie, multi_user,
                                                                            visibility, query):
    document = store(alice, "plot")
    services.set_visibility(document, visibility)
    services.share(document, "bob", "read")
    drawn(document)
    query = query.replace("KEY", document.secret_key)
    for user in (alice, bob, charlie, None):
        browser = logged_in(user)
        page = browser.get(f"/documents/{document.id}/{query}")
        picture = browser.get(f"/documents/{document.id}/thumbnail.png{query}")
        if page.status_code == 200:
            assert picture.status_code == 200 and picture["Content-Type"] == "image/png", (user, query)
        else:
            # Refused as the plot page refuses (an image has no login page to go to: 404 then).
            assert picture.status_code == (404 if page.status_code == 302 else page.status_code), (user, query)
            assert picture["Content-Type"] != "image/png"
    if visibility != "public":  # someone else's private plot does not exist for charlie
        assert logged_in(charlie).get(f"/documents/{document.id}/thumbnail.png").status_code == 404


def test_a_thumbnail_goes_with_its_document():
    document = store(default_user(), "line")
    drawn(document)
    services.delete_document(document)
    assert not Thumbnail.objects.exists()


def test_a_document_drawn_a_moment_ago_waits_for_the_interval(settings):
    settings.BOKEHSITE_THUMBNAIL_INTERVAL = 60
    document = store(default_user(), "line")
    drawn(document)
    assert thumbnails._drawn_elsewhere_until(document.id) == pytest.approx(60, abs=2)
    Thumbnail.objects.filter(pk=document.pk).update(drawn=timezone.now() - timedelta(seconds=61))
    assert thumbnails._drawn_elsewhere_until(document.id) is None


def test_the_worker_holds_each_document_once_and_only_so_many_without_waiting(settings, monkeypatch):
    import uuid

    settings.BOKEHSITE_THUMBNAIL_INTERVAL = 3600  # each was just drawn: it waits, so the set stays as it is
    monkeypatch.setattr(thumbnails, "MAX_WAITING", 5)
    worker = thumbnails._Worker()
    ids = [uuid.uuid4() for _ in range(7)]
    for document_id in ids:
        worker._remember(document_id)
    start = time.monotonic()
    assert worker.schedule(ids[0]) and worker.schedule(ids[0]) and worker.waiting() == 1
    assert [worker.schedule(i) for i in ids[1:]] == [True, True, True, True, False, False]
    assert worker.waiting() == 5 and time.monotonic() - start < 0.5


# --- drawn by Chromium ---------------------------------------------------------------------------


def wait_for_png(document_id, timeout: float) -> bytes:
    browser = Client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = browser.get(f"/documents/{document_id}/thumbnail.png")
        assert response.status_code == 200
        if response["Content-Type"] == "image/png":
            return response.content
        time.sleep(0.5)
    raise AssertionError(f"no thumbnail drawn within {timeout} s")


@pytest.mark.browser
@pytest.mark.timeout(180)
@pytest.mark.django_db(transaction=True)  # the worker thread reads what the test committed
def test_a_pushed_plot_gets_a_real_thumbnail_and_a_stream_is_redrawn_once_shown_stale(api, settings):
    from pathlib import Path

    from PIL import Image

    if not Path(settings.BOKEHSITE_CHROMIUM).exists():
        pytest.skip(f"{settings.BOKEHSITE_CHROMIUM} is missing")
    settings.BOKEHSITE_THUMBNAILS = True
    settings.BOKEHSITE_THUMBNAIL_INTERVAL = 3
    doc = line_document(200)
    document_id = create(api, "sine", doc)["id"]  # drawn once a page shows it (wait_for_png does)
    image = Image.open(io.BytesIO(wait_for_png(document_id, 120))).convert("RGB")
    assert image.width == thumbnails.WIDTH and 100 < image.height < thumbnails.MAX_HEIGHT
    colours = image.getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 10  # a drawn plot, not one colour
    first = Thumbnail.objects.get(pk=document_id)
    assert first.version == 1

    document = Document.objects.get(pk=document_id)
    source = doc.get_model_by_name("ex_line").data_source
    for i in range(3):  # a stream: nothing is drawn until a page shows the thumbnail stale
        services.apply_patch(document, *plain(*stream_patch(doc, source.id, [300.0 + i], [2.0])))
    time.sleep(settings.BOKEHSITE_THUMBNAIL_INTERVAL + 1)
    assert Thumbnail.objects.get(pk=document_id).version == 1
    assert api.get(f"/documents/{document_id}/thumbnail.png").status_code == 200  # the old one, and a redraw asked
    deadline = time.monotonic() + 120
    while Thumbnail.objects.get(pk=document_id).version != 4:
        assert time.monotonic() < deadline, "the stream's thumbnail was not redrawn"
        time.sleep(0.5)
    again = Thumbnail.objects.get(pk=document_id)
    assert (again.drawn - first.drawn).total_seconds() >= settings.BOKEHSITE_THUMBNAIL_INTERVAL - 0.5
    assert bytes(again.png) != bytes(first.png)


@pytest.mark.django_db(transaction=True)  # the signal is sent once committed
def test_a_new_content_is_announced_once_committed_and_a_stream_is_not(alice):
    from documents import bokeh_json, signals

    heard = []
    signals.content_stored.connect(lambda sender, document_id, **kw: heard.append(document_id), weak=False,
                                   dispatch_uid="test")
    try:
        doc = line_document(20)
        document = store(alice, "announced", doc)
        assert heard == [document.id]
        source = doc.get_model_by_name("ex_line").data_source
        services.apply_patch(document, *plain(*stream_patch(doc, source.id, [30.0], [2.0])))
        assert heard == [document.id]  # a change within the content is drawn when a page shows it stale
        services.replace_document(document, *bokeh_json.dump(line_document(40)), author=alice)
        services.restore_version(document, 1, author=alice)
        assert heard == [document.id] * 3
        data = io.BytesIO()
        services.export_account(alice, data, with_history=True)
        (imported,) = services.import_account(alice, data.getvalue(), on_conflict="rename")
        assert heard[3:] == [services.Document.objects.get(pk=imported["id"]).id]
    finally:
        signals.content_stored.disconnect(dispatch_uid="test")


@pytest.mark.django_db(transaction=True)  # content_stored is sent once committed
def test_a_new_document_is_drawn_when_shown_and_a_seen_one_again_when_replaced(alice, settings, monkeypatch):
    from pathlib import Path

    from documents import bokeh_json

    if not Path(settings.BOKEHSITE_CHROMIUM).exists():
        pytest.skip(f"{settings.BOKEHSITE_CHROMIUM} is missing")
    settings.BOKEHSITE_THUMBNAILS = True
    settings.BOKEHSITE_THUMBNAIL_INTERVAL = 3600
    worker = thumbnails._Worker()
    monkeypatch.setattr(thumbnails, "_worker", worker)
    seen, new = store(alice, "seen"), store(alice, "new")
    for document in (seen, new):
        worker._remember(document.id)  # drawn a moment ago: what is queued stays waiting
    assert worker.waiting() == 0  # stored, not drawn: nobody looked yet
    drawn(seen)
    for document in (seen, new):
        services.replace_document(document, *bokeh_json.dump(line_document(30)), author=alice)
    assert set(worker._waiting) == {seen.id}
    thumbnails.refresh([Document.objects.get(pk=new.pk)])  # a page shows it
    assert set(worker._waiting) == {seen.id, new.id}


@pytest.mark.browser
@pytest.mark.timeout(60)
def test_a_drawings_browser_context_starts_no_browser_ui_pages():
    """Chromium with the renderer's flags opens, for a new browser context, only the page asked for:
    no WebUI page of its own window (the omnibox popups cost a renderer process per drawing)."""
    from pathlib import Path

    from playwright.sync_api import sync_playwright

    from documents import images
    from tests.conftest import CHROMIUM

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=images.CHROMIUM_ARGS)
        try:
            session = browser.new_browser_cdp_session()
            context = browser.new_context()
            context.new_page().set_content('<p id="plot">drawn</p>')
            targets = session.send("Target.getTargets")["targetInfos"]
            context.close()
        finally:
            browser.close()
    assert [(t["type"], t["url"]) for t in targets] == [("page", "about:blank")]
