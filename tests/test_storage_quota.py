"""The storage quota: what an account's documents take (snapshots, history, thumbnails) is counted
as they are written and freed, shown on the account page and in the API, and a write that would
pass the quota (create, replace, restore, change over REST or websocket, import) is refused with
413 ``quota_exceeded`` naming the quota. The admin sets an account's own quota."""

import io
import os
import subprocess
import sys
import zipfile

import pytest

from accounts.models import AccountLimits
from bokehsite import wire
from documents import log, quota, services, thumbnails
from documents.models import Document
from tests.conftest import PASSWORD, token_client
from tests.servers import ROOT
from tests.helpers import (
    BUNDLE, bundle_body, create, line_document, open_socket, plain, receive, run, store, stored_line, stream_patch,
)

pytestmark = pytest.mark.django_db


def used(user) -> int:
    return quota.usage(user.pk).used


def counted_right(user) -> bool:
    """The counter agrees with the rows it counts."""
    return used(user) == quota.recount(user.pk)


def set_quota(user, value) -> None:
    AccountLimits.objects.update_or_create(user=user, defaults={"storage_quota": value})


def assert_over_quota(response, quota_bytes: int) -> None:
    assert response.status_code == 413, response.content
    body = response.json()
    assert body["error"] == "quota_exceeded" and body["quota"] == quota_bytes
    assert f"storage quota of {quota_bytes} bytes" in body["detail"]


def test_the_account_api_and_page_show_what_documents_take_of_the_quota(alice, client, multi_user):
    api = token_client(alice)
    assert api.get("/api/account/").json() == {"username": "alice", "storage_used": 0, "storage_quota": 5 * 1024 ** 3}
    create(api)
    answer = api.get("/api/account/").json()
    assert answer["storage_used"] > 1000 and answer["storage_used"] == Document.objects.get().snapshots.get().stored_size
    client.login(username="alice", password=PASSWORD)
    page = client.get("/accounts/tokens/").content.decode()
    assert 'id="storage"' in page and "of your quota of 5.0\xa0GB" in page


def test_no_quota_is_shown_as_null(alice, multi_user, settings):
    settings.BOKEHSITE_STORAGE_QUOTA = 0
    assert token_client(alice).get("/api/account/").json()["storage_quota"] is None


def test_creating_past_the_quota_is_refused_and_stores_nothing(alice, multi_user, settings):
    api = token_client(alice)
    create(api, "first")
    settings.BOKEHSITE_STORAGE_QUOTA = used(alice) + 100
    response = api.post("/api/documents/", bundle_body(line_document(), title="second"), content_type=BUNDLE)
    assert_over_quota(response, used(alice) + 100)
    assert list(Document.objects.values_list("title", flat=True)) == ["first"] and counted_right(alice)


def test_replacing_restoring_and_changing_past_the_quota_are_refused(alice, multi_user, settings):
    api = token_client(alice)
    document, doc, source = stored_line(alice)
    services.apply_patch(document, *stream_patch(doc, source, [6], [1]))
    settings.BOKEHSITE_STORAGE_QUOTA = used(alice) + 10
    replaced = api.put(f"/api/documents/{document.id}/doc/", bundle_body(line_document(50)), content_type=BUNDLE)
    assert_over_quota(replaced, used(alice) + 10)
    restored = api.post(f"/api/documents/{document.id}/restore/", {"version": 1}, format="json")
    assert_over_quota(restored, used(alice) + 10)
    patch, buffers = plain(*stream_patch(doc, source, list(range(100)), list(range(100))))
    changed = api.post(f"/api/documents/{document.id}/events/", bundle_body_of_patch(patch, buffers), content_type=BUNDLE)
    assert_over_quota(changed, used(alice) + 10)
    assert Document.objects.get().version == 2 and counted_right(alice)
    # The live copy was left as stored: a change that fits still applies.
    settings.BOKEHSITE_STORAGE_QUOTA = 0
    assert services.apply_patch(document, *stream_patch(doc, source, [7], [2])).version == 3


def bundle_body_of_patch(patch, buffers) -> bytes:
    return wire.pack({"patch": patch}, buffers)


@pytest.mark.django_db(transaction=True)
def test_a_change_over_the_socket_past_the_quota_gets_an_error_and_the_socket_stays(alice, multi_user, settings):
    document, doc, source = stored_line(alice)
    settings.BOKEHSITE_STORAGE_QUOTA = used(alice) + 10
    token = token_client(alice)._credentials["HTTP_AUTHORIZATION"].encode()

    async def scenario():
        socket, hello = await open_socket(f"/ws/documents/{document.id}/", headers=[(b"authorization", token)])
        assert hello["role"] == "write"
        from tests.helpers import append_frame

        await socket.send_to(bytes_data=append_frame(doc, source, x=range(100), y=range(100), request_id=7))
        error = await receive(socket)
        assert (error["type"], error["code"], error["id"], error["quota"]) == ("error", "quota_exceeded", 7, used_now)
        await socket.send_to(text_data='{"type": "ping", "id": 8}')
        assert (await receive(socket))["type"] == "pong"

    used_now = settings.BOKEHSITE_STORAGE_QUOTA
    run(scenario)
    assert Document.objects.get().version == 1


def test_an_import_past_the_quota_stores_nothing(alice, multi_user, settings):
    api = token_client(alice)
    create(api, "one")
    create(api, "two")
    archive = api.get("/api/account/export/", {"history": "true"})
    data = b"".join(archive.streaming_content) if archive.streaming else archive.content
    assert zipfile.is_zipfile(io.BytesIO(data))
    settings.BOKEHSITE_STORAGE_QUOTA = used(alice) + 100
    response = api.post("/api/account/import/?on_conflict=rename", data, content_type="application/zip")
    assert_over_quota(response, used(alice) + 100)
    assert Document.objects.count() == 2 and counted_right(alice)


def test_the_admins_quota_for_one_account_overrides_the_servers(alice, bob, multi_user, settings):
    settings.BOKEHSITE_STORAGE_QUOTA = 10
    set_quota(alice, 0)  # none for her
    create(token_client(alice))
    assert token_client(alice).get("/api/account/").json()["storage_quota"] is None
    response = token_client(bob).post("/api/documents/", bundle_body(line_document(), title="x"), content_type=BUNDLE)
    assert_over_quota(response, 10)
    set_quota(bob, 1_000_000)
    create(token_client(bob))
    set_quota(alice, 50)
    response = token_client(alice).post("/api/documents/", bundle_body(line_document(), title="y"), content_type=BUNDLE)
    assert_over_quota(response, 50)
    assert "set for your account" in response.json()["detail"]


def test_the_admin_sets_a_users_quota_on_the_users_page(alice, client, db):
    from tests.conftest import make_user

    make_user("admin", password=PASSWORD, is_staff=True, is_superuser=True)
    client.login(username="admin", password=PASSWORD)
    page = client.get(f"/admin/auth/user/{alice.pk}/change/")
    assert page.status_code == 200 and b"limits-0-storage_quota" in page.content
    form = page.context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "password"}
    data.update({"username": "alice", "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00",
                 "is_active": "on", "limits-TOTAL_FORMS": "1", "limits-INITIAL_FORMS": "0",
                 "limits-MIN_NUM_FORMS": "0", "limits-MAX_NUM_FORMS": "1", "limits-0-storage_quota": "12345",
                 "limits-0-user": str(alice.pk)})
    data.pop("groups", None), data.pop("user_permissions", None), data.pop("last_login", None), data.pop("date_joined", None)
    response = client.post(f"/admin/auth/user/{alice.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    assert AccountLimits.objects.get(user=alice).storage_quota == 12345
    assert quota.usage(alice.pk).quota == 12345


def test_folding_and_pruning_lower_the_usage_and_deleting_frees_it_all(alice, settings):
    settings.BOKEHSITE_SNAPSHOT_EVERY = 5
    settings.BOKEHSITE_HISTORY = 5
    document, doc, source = stored_line(alice)
    highest = 0
    for i in range(40):
        services.apply_patch(document, *stream_patch(doc, source, [float(i)] * 200, [1.0] * 200, rollover=10))
        highest = max(highest, used(alice))
        assert counted_right(alice)
    assert used(alice) < highest  # the history beyond five versions is gone, and its bytes with it
    thumbnail_bytes = b"\x89PNG" + bytes(5000)
    with quota.thumbnail_replaced(document.id, len(thumbnail_bytes)):
        thumbnails._store(document.id, document.version, thumbnail_bytes)
    assert counted_right(alice)
    services.delete_document(Document.objects.get())
    assert used(alice) == 0


def test_an_account_is_counted_from_its_rows_the_first_time(alice, settings):
    store(alice, "before")
    AccountLimits.objects.filter(user=alice).update(storage_used=None)  # as before the quota existed
    assert used(alice) == quota.recount(alice.pk) > 0
    AccountLimits.objects.filter(user=alice).delete()
    store(alice, "after")
    assert counted_right(alice)


def test_history_counts_what_is_stored_not_what_a_zip_says(alice, multi_user):
    api = token_client(alice)
    document, doc, source = stored_line(alice)
    services.apply_patch(document, *stream_patch(doc, source, [6], [1]))
    archive = api.get("/api/account/export/", {"history": "true"})
    data = b"".join(archive.streaming_content) if archive.streaming else archive.content
    lying = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as original, zipfile.ZipFile(lying, "w") as out:
        for item in original.infolist():
            content = original.read(item)
            if "/events/" in item.filename:
                header, buffers = wire.unpack(content)
                content = wire.pack({**header, "size": 0}, buffers)
            out.writestr(item, content)
    response = api.post("/api/account/import/?on_conflict=rename", lying.getvalue(), content_type="application/zip")
    assert response.status_code == 201, response.content
    assert counted_right(alice)
    imported = Document.objects.exclude(pk=document.pk).get()
    assert all(e.size > 0 for e in imported.events.filter(kind="patch"))


def test_the_live_copy_is_rebuilt_after_a_refused_batch(alice, settings):
    document, doc, source = stored_line(alice)
    settings.BOKEHSITE_STORAGE_QUOTA = used(alice) + 10
    with pytest.raises(Exception) as refused:
        log.store(document.id, [services.PatchRequest(*stream_patch(doc, source, list(range(50)), list(range(50))))])
    assert refused.value.code == "quota_exceeded"
    settings.BOKEHSITE_STORAGE_QUOTA = 0
    assert log.store(document.id, [services.PatchRequest(*stream_patch(doc, source, [1], [1]))])[0].version == 2


def quota_setting(tmp_path, value: str | None):
    code = "import django; from django.conf import settings; django.setup(); print(settings.BOKEHSITE_STORAGE_QUOTA)"
    env = {k: v for k, v in os.environ.items() if k != "BOKEHSITE_STORAGE_QUOTA"}
    env.update({"DJANGO_SETTINGS_MODULE": "bokehsite.settings", "BOKEHSITE_DATA_DIR": str(tmp_path)})
    if value is not None:
        env["BOKEHSITE_STORAGE_QUOTA"] = value
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)


def test_the_quota_setting_defaults_to_5_gib_and_a_bad_one_fails_loudly(tmp_path):
    assert quota_setting(tmp_path, None).stdout.strip() == str(5 * 1024 ** 3)
    result = quota_setting(tmp_path, "lots")
    assert result.returncode != 0 and "ImproperlyConfigured: BOKEHSITE_STORAGE_QUOTA must be" in result.stderr
