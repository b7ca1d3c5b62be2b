"""A whole account as one zip: every document the user owns, its metadata and Bokeh JSON, and if
asked its history; through the API, the client and ``manage.py export_documents``."""

import io
import json
import zipfile

import pytest
from bokeh.document import Document as BokehDocument
from django.core.management import call_command

from bokehsite import wire
from documents import services
from tests.conftest import token_client
from tests.helpers import line_document, plain, state, store, stream_patch

pytestmark = pytest.mark.django_db


def account(alice, bob):
    docs = {title: line_document(n) for title, n in (("one", 5), ("two", 200))}
    stored = {title: store(alice, title, doc) for title, doc in docs.items()}
    source = docs["one"].get_model_by_name("ex_line").data_source
    services.apply_patch(stored["one"], *plain(*stream_patch(docs["one"], source.id, [6], [1])), author=alice)
    store(bob, "not alice's")
    return docs, stored


def test_the_api_exports_every_document_with_its_metadata(alice, bob, multi_user):
    docs, stored = account(alice, bob)
    response = token_client(alice).get("/api/account/export/")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["format"] == "bokehsite-account" and manifest["username"] == "alice" and manifest["history"] is False
    assert sorted(d["title"] for d in manifest["documents"]) == ["one", "two"]
    for entry in manifest["documents"]:
        doc = BokehDocument.from_json(json.loads(archive.read(entry["document"])))
        assert state(doc) == state(services.load_bokeh_document(stored[entry["title"]]))
        assert entry["version"] == {"one": 2, "two": 1}[entry["title"]]
    assert not [n for n in archive.namelist() if "/events/" in n or "/snapshots/" in n]


def test_with_its_history_the_zip_holds_the_snapshots_and_the_log(alice, bob, multi_user):
    _, stored = account(alice, bob)
    response = token_client(alice).get("/api/account/export/", {"history": "true"})
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    one = next(d for d in json.loads(archive.read("manifest.json"))["documents"] if d["title"] == "one")
    assert one["history"] == {"snapshots": [1], "events": 1}
    header, buffers = wire.unpack(archive.read(f"documents/{one['id']}/events/2.bundle"))
    assert header["kind"] == "patch" and header["author"] == "alice" and header["patch"]["events"] and buffers
    header, _ = wire.unpack(archive.read(f"documents/{one['id']}/snapshots/1.bundle"))
    assert header["doc"]["roots"]


def test_a_bad_history_flag_is_refused(alice, multi_user):
    response = token_client(alice).get("/api/account/export/", {"history": "perhaps"})
    assert response.status_code == 400 and response.json()["field"] == "history"


def test_the_command_writes_the_zip(alice, bob, tmp_path, capsys):
    account(alice, bob)
    call_command("export_documents", "alice", str(tmp_path / "alice.zip"), "--history")
    assert "2 documents of alice written" in capsys.readouterr().err
    manifest = json.loads(zipfile.ZipFile(tmp_path / "alice.zip").read("manifest.json"))
    assert len(manifest["documents"]) == 2 and manifest["history"] is True
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no user called 'nobody'"):
        call_command("export_documents", "nobody", str(tmp_path / "x.zip"))
