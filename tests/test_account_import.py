"""Importing an account zip: the round trip gives the same documents, title clashes are the
caller's choice, and a zip with wrong or hostile contents is refused whole, with nothing stored."""

import io
import json
import zipfile

import pytest

from documents import services
from documents.models import Document
from tests.conftest import token_client
from tests.helpers import line_document, plain, state, store, stream_patch

pytestmark = pytest.mark.django_db


def exported(owner, **titles_sizes) -> bytes:
    for title, n in titles_sizes.items():
        doc = line_document(n)
        document = store(owner, title, doc)
        source = doc.get_model_by_name("ex_line").data_source
        services.apply_patch(document, *plain(*stream_patch(doc, source.id, [1e6], [1])))
    out = io.BytesIO()
    services.export_account(owner, out)
    return out.getvalue()


def post(api, data: bytes, **query):
    suffix = "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""
    return api.post("/api/account/import/" + suffix, data, content_type="application/zip")


def contents(owner) -> dict:
    return {d.title: state(services.load_bokeh_document(d)) for d in Document.objects.filter(owner=owner)}


def test_the_round_trip_gives_the_same_documents_under_another_user(alice, bob, multi_user):
    data = exported(alice, one=5, two=300)
    response = post(token_client(bob), data)
    assert response.status_code == 201, response.content
    assert sorted((r["title"], r["outcome"]) for r in response.json()) == [("one", "created"), ("two", "created")]
    assert contents(bob) == contents(alice)


def test_a_title_clash_needs_a_choice_and_each_choice_does_what_it_says(alice, multi_user):
    data = exported(alice, one=5)
    api = token_client(alice)
    refused = post(api, data)
    assert refused.status_code == 409 and refused.json()["field"] == "on_conflict"
    assert "choose on_conflict rename, skip or replace" in refused.json()["detail"]
    assert Document.objects.filter(owner=alice).count() == 1
    assert post(api, data, on_conflict="skip").json()[0]["outcome"] == "skipped"
    renamed = post(api, data, on_conflict="rename").json()[0]
    assert renamed == {**renamed, "title": "one (imported)", "outcome": "renamed"}
    assert post(api, data, on_conflict="rename").json()[0]["title"] == "one (imported 2)"
    original = Document.objects.get(owner=alice, title="one")
    assert post(api, data, on_conflict="replace").json()[0]["outcome"] == "replaced"
    assert Document.objects.get(pk=original.pk).version == original.version + 1  # a new version; history kept
    assert post(api, data, on_conflict="never").json()["field"] == "on_conflict"


def zipped(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return out.getvalue()


def manifest(*entries) -> bytes:
    return json.dumps({"format": "bokehsite-account", "format_version": 1, "documents": list(entries)}).encode()


def good_member(alice) -> tuple[dict, bytes]:
    data = zipfile.ZipFile(io.BytesIO(exported(alice, good=5)))
    entry = json.loads(data.read("manifest.json"))["documents"][0]
    Document.objects.filter(owner=alice).delete()
    return {"title": "good", "document": "good.json"}, data.read(entry["document"])


@pytest.mark.parametrize("case", ["traversal", "absolute", "bad json", "nan", "not bokeh", "missing member",
                                  "not a zip", "wrong format", "no documents", "bomb", "duplicate titles"])
def test_a_hostile_or_wrong_zip_is_refused_and_nothing_is_stored(alice, multi_user, settings, case):
    good, good_json = good_member(alice)
    members = {"manifest.json": manifest(good, {"title": "bad", "document": "bad.json"}), "good.json": good_json}
    status, error = 400, "invalid_archive"
    if case == "traversal":
        members["../../etc/evil.json"] = b"{}"
    elif case == "absolute":
        members["/etc/evil.json"] = b"{}"
    elif case == "bad json":
        members["bad.json"] = b'{"roots": ['
    elif case == "nan":
        members["bad.json"] = b'{"roots": [], "x": NaN}'
    elif case == "not bokeh":
        members["bad.json"] = json.dumps({"roots": [{"type": "object", "name": "NoSuchModel", "id": "x"}]}).encode()
        error = "unknown_model_type"
    elif case == "missing member":
        pass
    elif case == "wrong format":
        members["manifest.json"] = json.dumps({"format": "something else"}).encode()
    elif case == "no documents":
        members["manifest.json"] = json.dumps({"format": "bokehsite-account", "format_version": 1}).encode()
    elif case == "duplicate titles":
        members["manifest.json"] = manifest(good, good)
    elif case == "bomb":
        settings.BOKEHSITE_MAX_BODY_BYTES = 1024 * 1024
        members["bad.json"] = b" " * (20 * 1024 * 1024)  # 20 MiB of spaces: a few kilobytes zipped
        status, error = 413, "too_large"
    body = b"PK\x03\x04 this is not a zip" if case == "not a zip" else zipped(members)
    response = post(token_client(alice), body)
    assert (response.status_code, response.json()["error"]) == (status, error), response.content
    assert response.json()["field"] in ("archive", "documents[1]")
    assert not Document.objects.filter(owner=alice).exists()  # not even the good one


def test_a_bomb_that_hides_its_size_is_stopped_while_it_unpacks(alice, multi_user, settings):
    settings.BOKEHSITE_MAX_BODY_BYTES = 1024 * 1024
    good, good_json = good_member(alice)
    body = bytearray(zipped({"manifest.json": manifest(good), "good.json": good_json + b" " * (5 * 1024 * 1024)}))
    # Declare the big member small, in its local header and in the central directory.
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = body.find(signature, body.find(b"good.json") - 60 if signature == b"PK\x03\x04" else 0)
        while at >= 0:
            name_length = int.from_bytes(body[at + (26 if signature == b"PK\x03\x04" else 28):][:2], "little")
            name_at = at + (30 if signature == b"PK\x03\x04" else 46)
            if bytes(body[name_at:name_at + name_length]) == b"good.json":
                body[at + offset:at + offset + 4] = (100).to_bytes(4, "little")
            at = body.find(signature, at + 4)
    response = post(token_client(alice), bytes(body))
    assert response.status_code in (400, 413) and response.json()["field"] == "archive"
    assert not Document.objects.filter(owner=alice).exists()


def test_the_commands_round_trip(alice, bob, tmp_path, capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    exported(alice, one=5)
    call_command("export_documents", "alice", str(tmp_path / "a.zip"))
    call_command("import_documents", "bob", str(tmp_path / "a.zip"))
    assert "created: one" in capsys.readouterr().out
    assert contents(bob) == contents(alice)
    with pytest.raises(CommandError, match="nothing imported: .*choose on_conflict"):
        call_command("import_documents", "bob", str(tmp_path / "a.zip"))
    call_command("import_documents", "bob", str(tmp_path / "a.zip"), "--on-conflict", "rename")
    assert Document.objects.filter(owner=bob).count() == 2


def test_an_empty_body_is_refused_naming_the_archive(alice, multi_user):
    response = token_client(alice).post("/api/account/import/", b"", content_type="application/zip")
    assert response.status_code == 400 and response.json()["field"] == "archive"
