"""Apps in other sites' pages with Bokeh's own ``server_document``: in headless Chromium a page of
another origin shows the app's session, live; each load is a session of its own; the script's
arguments reach the app; in multi-user mode an app that is not public says it needs a login; a
session's embed reaches app sessions only."""

from __future__ import annotations

import json
import re

import pytest
import requests
from bokeh.embed import server_document
from django.contrib.auth.models import AnonymousUser

from appserver.models import AppSession
from appserver.sessions import apps_account
from documents import access, bokeh_json, frames, services
from documents.exceptions import DocumentNotFound
from documents.models import Kind
from tests.helpers import line_document, store
from tests.servers import DaphneServer, StaticSite, database_url

pytestmark = [pytest.mark.django_db(transaction=True)]

KEY = "session-key-" + "k" * 30

SLIDERS = '''
import numpy as np
from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, Div, Slider
from bokeh.plotting import figure

args = curdoc().session_context.request.arguments
n = int(args.get("N", [b"200"])[0])
x = np.linspace(0, 4 * np.pi, n)
source = ColumnDataSource(data=dict(x=x, y=np.sin(x)), name="source")
plot = figure(height=300, width=500, title="sliders")
plot.line("x", "y", source=source)
freq = Slider(title="frequency", value=1.0, start=0.1, end=5.1, step=0.1)
seen = Div(text=",".join(sorted(args)), name="arguments")

def update(attr, old, new):
    source.data = dict(x=x, y=np.sin(freq.value * x))

freq.on_change("value", update)
curdoc().add_root(column(freq, plot, seen))
'''


def host_page(*snippets: str) -> str:
    body = "\n".join(f"<section><h2>App {i}</h2>{snippet}</section>" for i, snippet in enumerate(snippets))
    return f"<!DOCTYPE html><html><head><meta charset=utf-8><title>host</title></head><body>{body}</body></html>"


def app_server(tmp_path, **env: str) -> DaphneServer:
    from django.conf import settings

    app = tmp_path / "sliders.py"
    app.write_text(SLIDERS)
    return DaphneServer(env={"DATABASE_URL": database_url(settings.DATABASES["default"]), "BOKEHSITE_APPS": str(app),
                             "BOKEHSITE_APP_HOST_KEY": "test-host-key", **env})


def session_frame(page):
    page.wait_for_function(
        "[...document.querySelectorAll('iframe.bokehsite-embed-frame')].some((f) => f.dataset.state === 'rendered')",
        timeout=60_000)
    return next(frame for frame in page.frames if "/frame/" in frame.url)


def document_value(frame, expression: str):
    return frame.evaluate(f"(() => {{ const doc = Bokeh.documents[0]; return {expression}; }})()")


@pytest.mark.browser
@pytest.mark.daphne
@pytest.mark.timeout(180)
def test_bokehs_server_document_shows_a_live_session_of_its_own_in_another_sites_page(browser, tmp_path):
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    with app_server(tmp_path) as server, StaticSite(site_dir) as site:
        url = f"{server.url}apps/sliders"
        (site_dir / "index.html").write_text(host_page(server_document(url, arguments={"N": "50", "colour": "red"})))
        contexts, frames = [], []
        for _ in range(2):
            context = browser.new_context(viewport={"width": 1000, "height": 800})
            contexts.append(context)
            page = context.new_page()
            page.goto(f"{site.origin}/index.html")
            frames.append((page, session_frame(page)))
        try:
            page, frame = frames[0]
            # Where Bokeh's script tag is, not at the end of the page where its loader runs the script.
            assert page.evaluate("document.querySelector('section script').nextElementSibling.className") == "bokehsite-embed"
            assert document_value(frame, "doc.get_model_by_name('source').data.x.length") == 50
            assert document_value(frame, "doc.get_model_by_name('arguments').text") == "N,colour"
            assert frame.evaluate("window.origin") == "null"
            frame.wait_for_selector("#live-status[data-status=live]")
            assert frame.evaluate("document.getElementById('plot').dataset.role") == "write"

            # Live: the slider's change runs the app's callback, whose new data comes back.
            before = document_value(frame, "Array.from(doc.get_model_by_name('source').data.y).slice(0, 5)")
            page.frame_locator("iframe.bokehsite-embed-frame").locator(".noUi-handle").first.press("ArrowRight")
            frame.wait_for_function(
                "(before) => Array.from(Bokeh.documents[0].get_model_by_name('source').data.y).slice(0, 5)"
                ".some((y, i) => Math.abs(y - before[i]) > 1e-9)", arg=before, timeout=20_000)
            # The other page's session is another one, untouched.
            other = frames[1][1]
            assert document_value(other, "Array.from(doc.get_model_by_name('source').data.y).slice(0, 5)") == before
            ids = {f.url.split("/documents/")[1].split("/")[0] for _, f in frames}
            assert len(ids) == 2
            assert AppSession.objects.filter(document_id__in=ids).count() == 2
            for session in AppSession.objects.filter(document_id__in=ids):
                assert session.request["arguments"] == {"N": ["50"], "colour": ["red"]}
        finally:
            for context in contexts:
                context.close()


@pytest.mark.daphne
@pytest.mark.timeout(120)
def test_the_embedded_session_frame_may_be_drawn_anywhere_and_refreshes_its_token_without_cookies(tmp_path):
    with app_server(tmp_path) as server:
        src = re.search(r"'GET', \"([^\"]+)\"", server_document(f"{server.url}apps/sliders")).group(1)
        answer = requests.get(src, headers={"Origin": "http://elsewhere.example"}, timeout=60)
        assert answer.status_code == 200 and answer.headers["Access-Control-Allow-Origin"] == "*"
        config = json.loads(re.search(r"const config = (\{.*\});", answer.text).group(1))
        assert config["element"] == src.split("bokeh-autoload-element=")[1].split("&")[0]

        frame = requests.get(config["frame_url"], timeout=10)
        assert frame.status_code == 200
        assert "frame-ancestors *" in frame.headers["Content-Security-Policy"]
        assert "X-Frame-Options" not in frame.headers

        fresh = requests.get(config["token_url"], timeout=10)
        assert fresh.status_code == 200 and fresh.json()["role"] == "write"
        assert fresh.headers["Access-Control-Allow-Origin"] == "*"

        # The app's own page goes the same way to its session, whose frame stays on this site.
        page = requests.get(f"{server.url}apps/sliders/", timeout=60)
        assert page.status_code == 200 and 'id="app-frame"' in page.text
        own_frame = re.search(r'id="app-frame"[^>]*src="([^"]+)"', page.text).group(1).replace("&amp;", "&")
        framed = requests.get(server.url.rstrip("/") + own_frame, timeout=10)
        assert framed.status_code == 200 and framed.headers["X-Frame-Options"] == "SAMEORIGIN"
        assert "frame-ancestors" not in framed.headers["Content-Security-Policy"]
        assert AppSession.objects.count() == 2


@pytest.mark.daphne
@pytest.mark.timeout(120)
def test_in_multi_user_mode_an_app_that_is_not_public_says_it_needs_a_login(tmp_path):
    with app_server(tmp_path, BOKEHSITE_MULTI_USER="1") as server:
        src = re.search(r"'GET', \"([^\"]+)\"", server_document(f"{server.url}apps/sliders")).group(1)
        answer = requests.get(src, timeout=30)
        assert answer.status_code == 200  # a browser runs no script answered with an error status
        assert answer.headers["X-Bokehsite-Error"] == "login_required"
        config = json.loads(re.search(r"const config = (\{.*\});", answer.text).group(1))
        assert "frame_url" not in config and "log in" in config["error"]["detail"]
        # Its own page sends the visitor to log in, and back.
        own = requests.get(f"{server.url}apps/sliders/?N=5", allow_redirects=False, timeout=30)
        assert own.status_code == 302 and "/login/?next=/apps/sliders/%3FN%3D5" in own.headers["Location"]
        assert not AppSession.objects.exists()

    with app_server(tmp_path, BOKEHSITE_MULTI_USER="1", BOKEHSITE_PUBLIC_APPS="sliders") as server:
        src = re.search(r"'GET', \"([^\"]+)\"", server_document(f"{server.url}apps/sliders")).group(1)
        config = json.loads(re.search(r"const config = (\{.*\});", requests.get(src, timeout=60).text).group(1))
        assert "error" not in config and "/frame/" in config["frame_url"]
        assert AppSession.objects.get().user is None
        # The frame's fresh tokens come by the session's key alone (no cookies are sent).
        fresh = requests.get(config["token_url"], timeout=10)
        assert fresh.status_code == 200 and fresh.json()["role"] == "write"
        wrong = requests.get(re.sub(r"key=[^&]+", "key=wrong", config["token_url"]), timeout=10)
        assert wrong.status_code == 404 and wrong.json()["error"] == "not_found"


def test_a_session_embed_reaches_only_app_sessions_and_its_frame_token_writes_only_them(alice, multi_user):
    session = services.create_document(apps_account(), "sliders session", *bokeh_json.dump(line_document()),
                                       kind=Kind.SESSION, secret_key=KEY)
    plot = store(alice, "secret plot")
    services.set_visibility(plot, "secret")
    plot.refresh_from_db()
    embedded = access.Caller(AnonymousUser(), key=KEY, embed=frames.SESSION_EMBED)
    assert access.resolve(embedded, session.id, "write").role == "write"
    with pytest.raises(DocumentNotFound):  # a secret link's key is no session's
        access.resolve(access.Caller(AnonymousUser(), key=plot.secret_key, embed=frames.SESSION_EMBED), plot.id)
    token = access.mint_frame_token(embedded, access.resolve(embedded, session.id, "write"))
    grant = frames.verify_frame_token(token)
    assert (grant.embed, grant.role) == ("session", "write")
    assert access.resolve(access.Caller(AnonymousUser(), grant=grant), session.id, "write").role == "write"
    forged = frames.sign_frame_token(plot, "write", key=plot.secret_key, embed=frames.SESSION_EMBED)
    with pytest.raises(DocumentNotFound):
        access.resolve(access.Caller(AnonymousUser(), grant=frames.verify_frame_token(forged)), plot.id)
