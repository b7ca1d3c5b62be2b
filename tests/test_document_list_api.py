"""GET /api/documents/: search by title, the page list's orders, and a page at a time."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.users import default_user
from bokehsite.client import Session
from documents.models import Document
from tests.helpers import store

pytestmark = pytest.mark.django_db

MANY = 3000


@pytest.fixture
def many_documents(db):
    """MANY documents of the default user, with distinct and shuffled titles, versions and times."""
    owner = default_user()
    documents = Document.objects.bulk_create(
        Document(owner=owner, title=f"plot {(i * 7919) % MANY:05d} {'Sine' if i % 3 == 0 else 'line'}",
                 version=1 + (i * 37) % 500)
        for i in range(MANY)
    )
    start = timezone.now() - timedelta(days=30)
    for i, document in enumerate(documents):
        # Creation follows insertion, last update is shuffled, and some updates tie (the id breaks ties).
        document.created = start + timedelta(seconds=i)
        document.updated = start + timedelta(minutes=(i * 104729) % (MANY // 2))
    Document.objects.bulk_update(documents, ["created", "updated"], batch_size=500)
    return list(Document.objects.filter(owner=owner))


def every_page(api, limit: int, **query) -> tuple[list[dict], list]:
    """Every page of the list, following the Link headers; the items and the responses."""
    items, responses = [], []
    url = "/api/documents/?" + "&".join(f"{k}={v}" for k, v in {**query, "limit": limit}.items())
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.content
        responses.append(response)
        items.extend(response.json())
        link = {rel: target for target, rel in _links(response.get("Link", ""))}
        url = link.get("next", "").replace("http://testserver", "")
    return items, responses


def _links(header: str):
    for part in filter(None, (p.strip() for p in header.split(","))):
        target, rel = part.split(";")
        yield target.strip()[1:-1], rel.strip().removeprefix('rel="').removesuffix('"')


EXPECTED = {
    "updated": lambda d: (-d.updated.timestamp(), _neg(d.pk)),
    "created": lambda d: (-d.created.timestamp(), _neg(d.pk)),
    "title": lambda d: (d.title, d.pk.hex),
    "version": lambda d: (-d.version, _neg(d.pk)),
}


def _neg(pk) -> int:
    return -pk.int


@pytest.mark.timeout(300)
@pytest.mark.parametrize("sort", ["updated", "created", "title", "version", "-title", "-version"])
def test_pages_hold_every_document_once_in_the_order_asked(api, many_documents, sort):
    items, responses = every_page(api, 1000, sort=sort)
    reverse = sort.startswith("-")
    expected = sorted(many_documents, key=EXPECTED[sort.lstrip("-")], reverse=reverse)
    assert [d["id"] for d in items] == [str(d.pk) for d in expected]
    assert len(responses) == 3
    assert {r["X-Total-Count"] for r in responses} == {str(MANY)}
    assert 'rel="prev"' not in responses[0].get("Link", "") and 'rel="next"' not in responses[-1].get("Link", "")


@pytest.mark.timeout(120)
def test_a_search_finds_titles_holding_it_in_any_case_and_pages_through_them(api, many_documents):
    items, responses = every_page(api, 250, q="sINE", sort="title")
    expected = sorted((d for d in many_documents if "sine" in d.title.lower()), key=EXPECTED["title"])
    assert len(expected) == MANY // 3
    assert [d["title"] for d in items] == [d.title for d in expected]
    assert responses[0]["X-Total-Count"] == str(MANY // 3) and len(responses) == 4


@pytest.mark.timeout(60)
def test_an_offset_starts_the_page_there_and_links_back(api, many_documents):
    response = api.get("/api/documents/?sort=title&offset=1500&limit=10")
    expected = sorted(many_documents, key=EXPECTED["title"])[1500:1510]
    assert [d["id"] for d in response.json()] == [str(d.pk) for d in expected]
    links = dict((rel, target) for target, rel in _links(response["Link"]))
    assert links["next"].endswith("sort=title&offset=1510&limit=10")
    assert links["prev"].endswith("sort=title&offset=1490&limit=10")
    past = api.get("/api/documents/?offset=5000")
    assert past.status_code == 200 and past.json() == [] and past["X-Total-Count"] == str(MANY)


def test_without_a_limit_a_page_holds_a_hundred(api, many_documents):
    response = api.get("/api/documents/")
    assert len(response.json()) == 100 and response["X-Total-Count"] == str(MANY)
    assert 'rel="next"' in response["Link"]


def test_the_title_filter_still_finds_one_title_exactly(api):
    owner = default_user()
    store(owner, "line")
    store(owner, "line two")
    assert [d["title"] for d in api.get("/api/documents/?title=line").json()] == ["line"]
    assert api.get("/api/documents/?title=LINE").json() == []
    assert sorted(d["title"] for d in api.get("/api/documents/?q=LINE").json()) == ["line", "line two"]


@pytest.mark.parametrize("query, field", [
    ("sort=size", "sort"), ("sort=--title", "sort"), ("limit=0", "limit"), ("limit=1001", "limit"), ("limit=ten", "limit"),
    ("offset=-1", "offset"), ("offset=99999999999999999999", "offset"), ("q=" + "x" * 201, "q"),
])
def test_a_bad_value_is_refused_naming_its_field(api, query, field):
    response = api.get(f"/api/documents/?{query}")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid" and response.json()["field"] == field


@pytest.mark.daphne
@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
def test_the_client_lists_every_page(live_server_url):
    owner = default_user()
    Document.objects.bulk_create(Document(owner=owner, title=f"doc {i:04d}") for i in range(1234))
    with Session(live_server_url) as session:
        listed = session.documents(sort="title")
        found = session.documents(search="DOC 12")
    assert [d["title"] for d in listed] == [f"doc {i:04d}" for i in range(1234)]
    assert sorted(d["title"] for d in found) == [f"doc 12{i:02d}" for i in range(34)]
