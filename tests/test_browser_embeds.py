"""Embeds in headless Chromium: a static page of another origin shows a public plot and a private
one with an embed token; both draw and follow a stream; revoking the token stops the private one,
which says why; the same snippet in a page of an origin the token does not list is refused."""

from __future__ import annotations

import html
import json
import re

import pytest
import requests

from bokehsite.client import Session, autoload_server
from tests.conftest import make_user
from tests.helpers import COUNT_PIXELS, LINE_BLUE, line_document
from tests.servers import StaticSite

pytestmark = [pytest.mark.browser, pytest.mark.daphne, pytest.mark.django_db(transaction=True)]


def host_page(*snippets: str) -> str:
    body = "\n".join(f'<section class="host"><h2>Plot {i}</h2>{snippet}</section>' for i, snippet in enumerate(snippets))
    return f"<!DOCTYPE html><html><head><meta charset=utf-8><title>host</title></head><body>{body}</body></html>"


def embed_frame(page, document_id: str):
    return next(frame for frame in page.frames if f"/documents/{document_id}/frame/" in frame.url)


def wait_rendered(page, document_id: str):
    page.wait_for_function(
        "(id) => [...document.querySelectorAll('iframe.bokehsite-embed-frame')]"
        ".some((f) => f.src.includes(`/documents/${id}/frame/`) && f.dataset.state === 'rendered')",
        arg=document_id, timeout=30_000)
    page.wait_for_timeout(300)  # let the canvas paint
    return embed_frame(page, document_id)


def wait_version(frame, version: int) -> None:
    frame.wait_for_function(f"Number(document.getElementById('plot').dataset.version) >= {version}", timeout=15_000)


def test_public_and_token_embeds_draw_follow_a_stream_and_stop_when_revoked(multi_user_server_url, page, tmp_path):
    make_user("alice", password="correct horse battery")
    with Session(multi_user_server_url) as public, Session(multi_user_server_url) as private:
        public.login("alice", "correct horse battery")
        private.token = public.token
        public.use_doc("public line")
        public_doc = line_document()
        public.push(public_doc)
        public.publish()
        private.use_doc("private line")
        private_doc = line_document()
        private.push(private_doc)

        allowed, other = tmp_path / "allowed", tmp_path / "other"
        allowed.mkdir(), other.mkdir()
        with StaticSite(allowed) as site, StaticSite(other) as elsewhere:
            token = private.embed_token(origins=[site.origin])
            public_snippet = autoload_server(session=public, public=True)
            private_snippet = autoload_server(session=private, token=token)
            (allowed / "index.html").write_text(host_page(public_snippet, private_snippet))
            (other / "index.html").write_text(host_page(private_snippet))

            page.goto(f"{site.origin}/index.html")
            public_frame = wait_rendered(page, public.info["id"])
            private_frame = wait_rendered(page, private.info["id"])
            for frame in (public_frame, private_frame):
                assert frame.evaluate(COUNT_PIXELS, list(LINE_BLUE)) > 200
                frame.wait_for_selector("#live-status[data-status=live]")
                assert frame.evaluate("document.getElementById('plot').dataset.role") == "read"
            # The frame is sized to the plot (400 × 400), not left at the browser's default box.
            width, height = page.evaluate("[...document.querySelectorAll('iframe')].map((f) => [f.offsetWidth, f.offsetHeight])")[0]
            assert 395 <= width <= 420 and 395 <= height <= 440
            # The plot's code runs in an opaque origin: it cannot reach the host page.
            assert public_frame.evaluate("(() => { try { return window.parent.document.title; } catch (e) { return 'blocked'; } })()") == "blocked"
            assert public_frame.evaluate("window.origin") == "null"

            # A streamed change reaches both.
            for session, doc in ((public, public_doc), (private, private_doc)):
                doc.get_model_by_name("ex_line").data_source.stream({"x": [6, 7], "y": [3, 9]})
            versions = public.push()["version"], private.push()["version"]
            wait_version(public_frame, versions[0])
            wait_version(private_frame, versions[1])
            assert private_frame.evaluate("Bokeh.documents[0].get_model_by_name('ex_line').data_source.data.x.length") == 7

            # Revoked: the private plot stops and says why in the host page; the public one goes on.
            (listed,) = private.embed_tokens()
            private.revoke_embed_token(listed["id"])
            page.wait_for_selector(".bokehsite-embed[data-state=closed]", timeout=15_000)
            message = page.locator(".bokehsite-embed[data-state=closed] .bokehsite-embed-message").text_content()
            assert "revoked" in message
            public_doc.get_model_by_name("ex_line").data_source.stream({"x": [8], "y": [1]})
            wait_version(public_frame, public.push()["version"])

            # The same snippet on a page of an origin the token does not list is refused, and says so.
            fresh = private.embed_token(origins=[site.origin])
            (other / "index.html").write_text(host_page(autoload_server(session=private, token=fresh)))
            page.goto(f"{elsewhere.origin}/index.html")
            page.wait_for_selector(".bokehsite-embed[data-state=refused]", timeout=15_000)
            refusal = page.locator(".bokehsite-embed-message").text_content()
            assert elsewhere.origin in refusal and site.origin in refusal and "may not show this plot" in refusal
            assert not [f for f in page.frames if "/frame/" in f.url]

            # And were its frame put there by hand, the browser would not draw it (frame-ancestors).
            loader = requests.get(autoload_src(autoload_server(session=private, token=fresh)),
                                  headers={"Referer": f"{site.origin}/"}, timeout=10).text
            frame_url = json.loads(re.search(r"const config = (\{.*\});", loader).group(1))["frame_url"]
            page.goto(f"{elsewhere.origin}/index.html")
            page.wait_for_selector(".bokehsite-embed[data-state=refused]")
            page.evaluate("(url) => { const f = document.createElement('iframe'); f.id = 'by-hand'; f.src = url; document.body.appendChild(f); }",
                          frame_url)
            page.wait_for_timeout(2000)
            drawn = [f for f in page.frames if "/frame/" in f.url and f.query_selector("#plot[data-state=rendered]")]
            assert drawn == []


def autoload_src(snippet: str) -> str:
    return html.unescape(re.search(r'src="([^"]+)"', snippet).group(1))
