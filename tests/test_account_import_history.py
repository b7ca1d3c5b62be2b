"""Importing an account zip that carries history: the new server holds the same versions, and
every version rebuilds to the same document; a history that does not replay is refused whole."""

import io
import json
import re
import zipfile

import pytest
from django.test import Client

from bokehsite import wire
from documents import exports, services
from documents import log
from documents.models import Document, Event, Snapshot
from tests.conftest import PASSWORD, token_client
from tests.helpers import line_document, plain, store, stream_patch

pytestmark = pytest.mark.django_db


def documented(alice, bob, settings):
    """Alice's documents with a history of every kind: streams by her and by bob (a write
    collaborator), a title change, a replace, a restore, and several snapshots."""
    settings.BOKEHSITE_SNAPSHOT_EVERY = 7
    doc = line_document()
    document = store(alice, "streamed", doc)
    services.share(document, "bob", "write")
    source = doc.get_model_by_name("ex_line").data_source
    for i in range(12):
        author = bob if i % 4 == 3 else alice
        services.apply_patch(document, *plain(*stream_patch(doc, source.id, [10.0 + i], [i * 0.5])), author=author)
    title = doc.roots[0].title
    services.apply_patch(document, {"events": [{"kind": "ModelChanged", "model": {"id": title.id}, "attr": "text",
                                                "new": "renamed"}]}, [], author=alice)
    services.replace_document(document, *wire_json(line_document(40)), author=alice)
    services.restore_version(document, 5, author=bob)
    for i in range(4):
        services.apply_patch(document, *plain(*stream_patch(doc, source.id, [100.0 + i], [i])), author=alice)
    store(alice, "plain")
    document.refresh_from_db()
    return document


def wire_json(doc):
    from documents import bokeh_json

    return bokeh_json.dump(doc)


def exported(owner) -> bytes:
    out = io.BytesIO()
    services.export_account(owner, out, with_history=True)
    return out.getvalue()


def history(document) -> list[dict]:
    return services.version_history(document, limit=1000)["items"]


def as_json(document, version) -> dict:
    """The document at ``version`` as Bokeh's document JSON, arrays inline, parsed: comparable
    whatever order the database kept its keys in (PostgreSQL's jsonb keeps its own)."""
    _, bundle = services.document_bundle(document, version)
    header, buffers = wire.unpack(bundle)
    return json.loads(b"".join(exports.json_chunks(header["doc"], buffers)))


def test_the_imported_history_has_the_same_versions_and_rebuilds_each_the_same(alice, bob, charlie, multi_user,
                                                                                 settings):
    original = documented(alice, bob, settings)
    assert Snapshot.objects.filter(document=original).count() >= 4  # folds, the replace and the restore
    response = token_client(charlie).post("/api/account/import/", exported(alice), content_type="application/zip")
    assert response.status_code == 201, response.content
    imported = Document.objects.get(owner=charlie, title="streamed")
    assert imported.version == original.version == 20
    assert (imported.created, imported.updated) == (original.created, original.updated)

    before, after = history(original), history(imported)
    assert [(i["version"], i["kind"], i["created"], i["size"], i["restored_from"]) for i in after] == [
        (i["version"], i["kind"], i["created"], i["size"], i["restored_from"]) for i in before]
    # Alice's own changes are charlie's now; bob is nobody on the importing side.
    assert [i["author"] for i in after] == [
        {"alice": "charlie", "bob": None}[i["author"]] for i in before]
    assert {i["kind"] for i in after} == {"create", "change", "replace", "restore"}
    assert next(i for i in after if i["kind"] == "restore")["restored_from"] == 5

    for version in range(1, original.version + 1):
        assert as_json(imported, version) == as_json(original, version), version
    # The live document (what viewers and scripts get) is the same too.
    assert services.document_bundle(imported)[0] == 20 and as_json(imported, None) == as_json(original, None)

    # Through the API, as Session.history reads it.
    api_history = token_client(charlie).get(f"/api/documents/{imported.id}/history/").json()
    assert [i["version"] for i in api_history["items"]] == list(range(20, 0, -1))
    browser = Client()
    browser.login(username="charlie", password=PASSWORD)
    page = browser.get(f"/documents/{imported.id}/history/").content.decode()
    assert re.findall(r'<tr data-version="(\d+)">', page) == [str(v) for v in range(20, 0, -1)]
    assert "restore of version 5" in page and "(unknown)" in page and "charlie" in page
    plain_doc = Document.objects.get(owner=charlie, title="plain")
    assert plain_doc.version == 1 and [i["kind"] for i in history(plain_doc)] == ["create"]


def test_a_pruned_history_imports_from_its_oldest_snapshot(alice, bob, charlie, multi_user, settings):
    original = documented(alice, bob, settings)
    settings.BOKEHSITE_HISTORY = 6
    log.prune(original.id, original.version)
    oldest = Snapshot.objects.filter(document=original).order_by("version").first().version
    assert oldest == 8
    settings.BOKEHSITE_HISTORY = 10_000
    token_client(charlie).post("/api/account/import/", exported(alice), content_type="application/zip")
    imported = Document.objects.get(owner=charlie, title="streamed")
    assert services.version_history(imported)["oldest"] == oldest
    assert [i["version"] for i in history(imported)] == [i["version"] for i in history(original)]
    for version in range(oldest, original.version + 1):
        assert as_json(imported, version) == as_json(original, version), version


def test_the_importing_servers_retention_prunes_what_is_older(alice, bob, charlie, multi_user, settings):
    documented(alice, bob, settings)
    settings.BOKEHSITE_HISTORY = 3
    token_client(charlie).post("/api/account/import/", exported(alice), content_type="application/zip")
    imported = Document.objects.get(owner=charlie, title="streamed")
    assert services.version_history(imported)["pruned"] and services.version_history(imported)["oldest"] == 16
    assert not Event.objects.filter(document=imported, version__lt=16).exists()


def rewritten(data: bytes, change) -> bytes:
    """The zip with its members changed by ``change(members)``."""
    source = zipfile.ZipFile(io.BytesIO(data))
    members = {name: source.read(name) for name in source.namelist()}
    change(members)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return out.getvalue()


def _event(members, version: int) -> str:
    return next(n for n in members if n.endswith(f"/events/{version}.bundle") and _is_streamed(members, n))


def _is_streamed(members, name) -> bool:
    manifest = json.loads(members["manifest.json"])
    entry = next(d for d in manifest["documents"] if d["title"] == "streamed")
    return name.startswith(f"documents/{entry['id']}/")


def _change_event(version: int, **header_changes):
    def change(members):
        name = _event(members, version)
        header, buffers = wire.unpack(members[name])
        members[name] = wire.pack({**header, **header_changes}, buffers)
    return change


def _drop_event(version: int):
    def change(members):
        del members[_event(members, version)]
        manifest = json.loads(members["manifest.json"])
        for entry in manifest["documents"]:
            if entry["title"] == "streamed":
                entry["history"]["events"] -= 1
        members["manifest.json"] = json.dumps(manifest).encode()
    return change


BAD_CHANGE = {"events": [{"kind": "ModelChanged", "model": {"id": "no-such-model"}, "attr": "text", "new": "x"}]}


@pytest.mark.parametrize("case, status, code, field", [
    ("a change that does not apply", 400, "invalid_document", "documents[0].events[3]"),
    ("a change of a kind Bokeh has not", 400, "invalid_archive", "archive"),
    ("a change that is no PATCH-DOC", 400, "invalid_document", "documents[0].events[6]"),
    ("a missing change", 400, "invalid_archive", "archive"),
    ("a bad time", 400, "invalid_archive", "archive"),
    ("a restore of a later version", 400, "invalid_archive", "archive"),
])
def test_a_history_that_does_not_replay_is_refused_and_nothing_is_stored(alice, bob, charlie, multi_user, settings,
                                                                          case, status, code, field):
    documented(alice, bob, settings)
    change = {
        "a change that does not apply": _change_event(3, patch=BAD_CHANGE),
        "a change of a kind Bokeh has not": _change_event(3, kind="delete"),
        "a change that is no PATCH-DOC": _change_event(6, patch={"events": [{"kind": "Explode"}]}),
        "a missing change": _drop_event(9),
        "a bad time": _change_event(4, created="yesterday"),
        "a restore of a later version": _change_event(15, restored_from=19),
    }[case]
    response = token_client(charlie).post("/api/account/import/", rewritten(exported(alice), change),
                                          content_type="application/zip")
    assert response.status_code == status, response.content
    assert response.json()["error"] == code and response.json()["field"] == field
    assert not Document.objects.filter(owner=charlie).exists()


def test_without_history_the_import_stores_the_current_version_as_version_one(alice, bob, charlie, multi_user,
                                                                             settings):
    original = documented(alice, bob, settings)
    out = io.BytesIO()
    services.export_account(alice, out)
    token_client(charlie).post("/api/account/import/", out.getvalue(), content_type="application/zip")
    imported = Document.objects.get(owner=charlie, title="streamed")
    assert imported.version == 1 and as_json(imported, None) == as_json(original, None)


def test_the_commands_round_trip_the_history(alice, bob, charlie, settings, tmp_path):
    from django.core.management import call_command

    original = documented(alice, bob, settings)
    call_command("export_documents", "alice", str(tmp_path / "a.zip"), "--history")
    call_command("import_documents", "charlie", str(tmp_path / "a.zip"))
    imported = Document.objects.get(owner=charlie, title="streamed")
    assert [i["version"] for i in history(imported)] == [i["version"] for i in history(original)]
    assert as_json(imported, 7) == as_json(original, 7)
