"""The HTML pages, static BokehJS and the admin."""

import html
import re

import pytest
from bokeh import __version__ as bokeh_version
from django.contrib.auth import get_user_model

from accounts.users import default_user

from documents import services
from documents.models import Document
from tests.helpers import line_document

pytestmark = pytest.mark.django_db


def store(title="line", owner=None):
    return services.create_document(owner or default_user(), title, *services.bokeh_json.dump(line_document()))


def test_the_list_shows_the_callers_documents_with_links(client):
    document = store("my plot")
    other = get_user_model().objects.create(username="someone")
    store("not mine", owner=other)
    html = client.get("/").content.decode()
    assert f'href="/documents/{document.id}/"' in html
    assert "my plot" in html and "not mine" not in html


def test_the_empty_list_shows_how_to_push_a_plot(client):
    html = client.get("/").content.decode()
    assert "No documents yet" in html and 'output_server("line")' in html


def test_the_plot_page_loads_bokehjs_from_this_server(client):
    document = store()
    page = client.get(f"/documents/{document.id}/").content.decode()
    frame_url = html.unescape(re.search(r'<iframe id="plot-frame"[^>]* src="([^"]+)"', page).group(1))
    frame = client.get(frame_url).content.decode()
    scripts = re.findall(r'<script src="([^"]+)"', frame)
    assert scripts[:4] == [f"/static/bokeh/js/{name}.min.js" for name in ("bokeh", "bokeh-gl", "bokeh-widgets", "bokeh-tables")]
    assert all(src.startswith("/static/") for src in scripts) and "/static/bokehsite/viewer.js" in scripts
    assert f'data-doc-url="/api/documents/{document.id}/doc/"' in frame


@pytest.mark.parametrize("name", ["bokeh", "bokeh-gl", "bokeh-widgets", "bokeh-tables"])
def test_bokehjs_bundles_are_served(client, name):
    response = client.get(f"/static/bokeh/js/{name}.min.js")
    assert response.status_code == 200
    assert bokeh_version.encode() in b"".join(response.streaming_content)


def test_an_unknown_or_foreign_document_page_is_404(client):
    other = get_user_model().objects.create(username="someone")
    foreign = store("theirs", owner=other)
    assert client.get(f"/documents/{foreign.id}/").status_code == 404
    assert client.get("/documents/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_a_public_document_page_renders_for_anyone(client):
    other = get_user_model().objects.create(username="someone")
    document = store("published", owner=other)
    Document.objects.filter(pk=document.pk).update(visibility="public")
    assert client.get(f"/documents/{document.id}/").status_code == 200


def test_the_admin_lists_and_edits_documents(client):
    admin = get_user_model().objects.create_superuser("admin", "admin@example.com", "a-long-passphrase")
    document = store("in the admin")
    client.force_login(admin)
    changelist = client.get("/admin/documents/document/").content.decode()
    assert "in the admin" in changelist
    change = client.get(f"/admin/documents/document/{document.id}/change/")
    assert change.status_code == 200 and "ColumnDataSource" in change.content.decode()
    response = client.post(
        f"/admin/documents/document/{document.id}/change/",
        {"title": "renamed in the admin", "owner": document.owner_id, "visibility": "public",
         "collaborators-TOTAL_FORMS": "0", "collaborators-INITIAL_FORMS": "0",
         "group_shares-TOTAL_FORMS": "0", "group_shares-INITIAL_FORMS": "0"},
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    document.refresh_from_db()
    assert (document.title, document.visibility) == ("renamed in the admin", "public")
    assert services.load_bokeh_document(document).get_model_by_name("ex_line") is not None


def test_the_list_finds_sorts_and_pages_through_five_thousand_documents(client):
    from django.utils import timezone

    owner = default_user()
    now = timezone.now()
    Document.objects.bulk_create([Document(owner=owner, title=f"run {i:04d}" + (" needle" if i % 500 == 7 else ""))
                                  for i in range(5000)], batch_size=1000)
    Document.objects.filter(owner=owner).update(updated=now)
    first = client.get("/").content.decode()
    assert first.count('<tr>') == 51 and "page 1 of 100 · 5000 documents" in first  # 50 rows and the head
    by_title = client.get("/", {"sort": "title", "page": 3}).content.decode()
    titles = re.findall(r'<td><a href="/documents/[^"]+/">([^<]+)</a></td>', by_title)
    assert titles[0] == "run 0100" and titles[-1] == "run 0149" and titles == sorted(titles)
    last = client.get("/", {"sort": "-title", "page": 100}).content.decode()
    assert re.findall(r'<td><a href="/documents/[^"]+/">([^<]+)</a></td>', last)[-1] == "run 0000"
    found = client.get("/", {"q": "NEEDLE"}).content.decode()
    assert "page 1 of 1 · 10 documents" in found and found.count("needle") >= 10
    nothing = client.get("/", {"q": "no such"}).content.decode()
    assert "No document has “no such” in its title." in nothing and "No documents yet" not in nothing
    assert client.get("/", {"page": "999", "sort": "nonsense", "q": "\x00"}).status_code == 200
