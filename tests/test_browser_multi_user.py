"""In a browser, on a multi-user server: logging in, and documents that cannot act as their viewer."""

import json

import pytest
import requests
from bokeh.models import CustomJS

from accounts.tokens import create_token
from documents import services
from tests.helpers import line_document, log_in, store
from tests.helpers import COUNT_PIXELS, LINE_BLUE, plot_frame

pytestmark = [pytest.mark.browser, pytest.mark.daphne, pytest.mark.django_db(transaction=True)]

# What a malicious document tries when someone else opens it: read the viewer's cookies, and
# read the API with the viewer's credentials.
STEAL = """
if (window.tried) return;
window.tried = true;
const out = {};
try { out.cookie = document.cookie; } catch (e) { out.cookie_error = String(e); }
fetch('/api/documents/', {credentials: 'include'})
  .then((r) => r.text().then((t) => { out.status = r.status; out.body = t; }))
  .catch((e) => { out.fetch_error = String(e); })
  .finally(() => { document.body.dataset.stolen = JSON.stringify(out); });
"""


def test_logging_in_through_the_form_shows_only_the_users_documents(multi_user_server_url, page, alice, charlie):
    mine = store(alice, "alices plot")
    store(charlie, "charlies plot")
    log_in(page, multi_user_server_url, "alice")
    assert page.url == multi_user_server_url
    titles = page.locator("table.documents td:nth-child(2) a").all_inner_texts()
    assert titles == ["alices plot"]

    page.click("text=alices plot")
    page.frame_locator("#plot-frame").locator("#plot[data-state=rendered]").wait_for(timeout=30_000)
    page.wait_for_timeout(300)
    assert plot_frame(page).evaluate(COUNT_PIXELS, list(LINE_BLUE)) > 200
    assert page.url == f"{multi_user_server_url}documents/{mine.id}/"
    assert page.problems == []


def test_a_published_documents_code_gets_neither_the_viewers_cookie_nor_their_data(
    multi_user_server_url, page, alice, bob
):
    store(bob, "bobs private plot")
    doc = line_document()
    # Runs as soon as BokehJS computes the automatic x range. (A document-level js_on_event would
    # not do: Bokeh's Document.from_json drops document callbacks, so they are never stored.)
    doc.roots[0].x_range.js_on_change("start", CustomJS(code=STEAL))
    trap = store(alice, "trap", doc)
    services.publish(trap)

    log_in(page, multi_user_server_url, "bob")
    # Without the sandbox, code on this site's origin could do exactly this:
    own = page.evaluate("fetch('/api/documents/', {credentials: 'include'}).then((r) => r.text())")
    assert "bobs private plot" in own
    assert "csrftoken=" in page.evaluate("document.cookie")

    page.goto(f"{multi_user_server_url}documents/{trap.id}/")
    frame = page.frame_locator("#plot-frame")
    frame.locator("#plot[data-state=rendered]").wait_for(timeout=30_000)
    frame.locator("body[data-stolen]").wait_for(timeout=30_000, state="attached")
    stolen = json.loads(frame.locator("body").get_attribute("data-stolen"))

    assert not stolen.get("cookie")  # reading document.cookie throws in an opaque origin
    assert "sandboxed" in stolen.get("cookie_error", "")
    assert "body" not in stolen and "status" not in stolen  # the fetch failed: no CORS for it, no cookies
    assert "fetch_error" in stolen
    assert "bobs private plot" not in json.dumps(stolen)
    frame_url = plot_frame(page).url
    assert "/frame/?frame_token=" in frame_url


def test_an_open_plot_page_follows_its_viewers_access_as_it_changes(multi_user_server_url, page, alice, bob):
    shared = store(alice, "shared with bob")
    services.share(shared, "bob", "write")
    _, secret = create_token(alice, "laptop")
    as_alice = {"Authorization": f"Token {secret}"}
    log_in(page, f"{multi_user_server_url}documents/{shared.id}/", "bob")
    frame = page.frame_locator("#plot-frame")
    frame.locator("#plot[data-state=rendered]").wait_for(timeout=30_000)
    status = frame.locator("#live-status")
    status.and_(frame.locator("[data-status=live]")).wait_for(timeout=10_000)
    assert status.inner_text() == "live"

    # Alice changes bob's rights through the server; his open page follows at once.
    collaborators = f"{multi_user_server_url}api/documents/{shared.id}/collaborators/"
    assert requests.post(collaborators, json={"username": "bob", "role": "read"}, headers=as_alice).status_code == 201
    frame.locator("#live-status", has_text="read-only").wait_for(timeout=5_000)
    assert requests.delete(f"{collaborators}bob/", headers=as_alice).status_code == 204
    frame.locator("#live-status[data-status=closed]").wait_for(timeout=5_000)
    assert status.inner_text() == "no access"
    assert frame.locator("#plot").get_attribute("data-state") == "rendered"  # what he saw stays, frozen
    page.wait_for_timeout(1500)  # and it does not try again
    assert frame.locator("#live-status").get_attribute("data-status") == "closed"
