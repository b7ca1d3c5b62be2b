"""Uploading datasets through the REST API: chunks, resuming, limits, and what is refused."""

import numpy as np
import pytest

from datasets import storage, summaries
from datasets.models import Dataset, UploadChunk
from tests.conftest import token_client
from tests.helpers import column_bytes, send_chunk, start_upload, upload_dataset

pytestmark = pytest.mark.django_db


def columns(n: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"t": np.arange(n, dtype=np.float64), "y": rng.normal(size=n).astype(np.float32),
            "count": rng.integers(-5, 5, n).astype(np.int32), "flag": rng.random(n) > 0.5}


def nothing_left(tmp_dir) -> bool:
    return not Dataset.objects.exists() and not UploadChunk.objects.exists() and not any(
        p.is_file() for p in tmp_dir.rglob("*")) if tmp_dir.exists() else not Dataset.objects.exists()


def test_an_upload_in_chunks_becomes_a_dataset_that_numpy_and_storage_read(api, dataset_dir):
    data = columns()
    answer = upload_dataset(api, "sensor", data)
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["name"] == "sensor" and body["length"] == 1000 and body["x"] == "t" and body["owner"] == "defaultuser"
    assert [(c["name"], c["dtype"]) for c in body["columns"]] == [
        ("t", "float64"), ("y", "float32"), ("count", "int32"), ("flag", "bool")]
    assert body["x_sorted"] is True and (body["x_min"], body["x_max"]) == (0.0, 999.0)

    dataset = Dataset.objects.get(pk=body["id"])
    folder = storage.directory(dataset)
    assert folder == dataset_dir / body["id"]
    assert folder.stat().st_mode & 0o777 == 0o700  # the server's user's only
    assert body["bytes"] == storage.disk_bytes(folder) > sum(v.nbytes for v in data.values())
    for index, (name, values) in enumerate(data.items()):
        np.testing.assert_array_equal(np.load(folder / f"c{index}.npy", mmap_mode="r"), values)
    opened = storage.open_columns(dataset)
    assert list(opened) == list(data)
    for name, values in data.items():
        np.testing.assert_array_equal(opened[name], values)
        assert not opened[name].flags.writeable
    for name in ("y", "count", "flag"):  # every column but x is summarized, as a fresh build would
        levels = storage.summary_levels(dataset, name)
        expected = summaries.summarize(data[name])
        assert len(levels) == len(summaries.level_lengths(1000))
        for level, want in zip(levels, expected):
            np.testing.assert_array_equal(level, want)
    with pytest.raises(KeyError):
        storage.summary_levels(dataset, "t")
    assert storage.open_columns(dataset)["y"] is opened["y"]  # mapped once a process

    listed = api.get("/api/datasets/").json()
    assert [d["id"] for d in listed] == [body["id"]]
    assert api.get(f"/api/datasets/{body['id']}/").json() == body
    assert api.get("/api/datasets/?name=sensor").json() == listed and api.get("/api/datasets/?name=other").json() == []


def test_datetime_columns_are_stored_as_int64_with_their_unit(api, dataset_dir):
    when = np.arange("2026-01-01T00:00", "2026-01-01T10:00", dtype="datetime64[m]").astype("datetime64[ms]")
    answer = upload_dataset(api, "clock", {"when": when, "v": np.linspace(0, 1, len(when))})
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["columns"][0] == {"name": "when", "dtype": "datetime64[ms]", "stored_dtype": "int64", "unit": "ms"}
    assert body["x_min"] == float(when[0].astype(np.int64)) and body["x_sorted"] is True
    opened = storage.open_columns(Dataset.objects.get(pk=body["id"]))
    assert opened["when"].dtype == np.int64
    np.testing.assert_array_equal(opened["when"].view("datetime64[ms]"), when)


def test_an_upload_in_progress_is_no_dataset(api, dataset_dir):
    upload = start_upload(api, "half", columns()).json()
    assert api.get("/api/datasets/").json() == []
    assert api.get(f"/api/datasets/{upload['id']}/").status_code == 404
    assert api.get("/api/datasets/uploads/").json() == [upload]
    assert Dataset.objects.usable_by(Dataset.objects.get().owner).count() == 0


def test_an_interrupted_upload_resumes_from_what_the_server_says_it_has(api, dataset_dir):
    data = columns(3000)
    upload = start_upload(api, "resumed", data).json()
    y = column_bytes(data["y"])
    for offset in (0, 2048):  # some chunks of y arrive, then the connection drops
        assert send_chunk(api, upload, "y", y, offset).status_code == 200
    status = api.get(f"/api/datasets/uploads/{upload['id']}/").json()
    y_status = next(c for c in status["columns"] if c["name"] == "y")
    assert y_status["bytes"] == len(y) == 12000 and y_status["received_bytes"] == 2048
    assert y_status["missing"] == [1024] + list(range(3072, 12000, 1024))
    assert send_chunk(api, upload, "y", y, 0).status_code == 200  # sending one again is harmless

    unfinished = api.post(f"/api/datasets/uploads/{upload['id']}/finish/")
    assert unfinished.status_code == 409 and unfinished.json()["error"] == "upload_incomplete"
    assert unfinished.json()["field"] == "columns"

    for column in status["columns"]:  # a new client picks up what is missing
        values = column_bytes(data[column["name"]])
        for offset in column["missing"]:
            assert send_chunk(api, upload, column["name"], values, offset).status_code == 200
    finished = api.post(f"/api/datasets/uploads/{upload['id']}/finish/")
    assert finished.status_code == 201, finished.content
    np.testing.assert_array_equal(storage.open_columns(Dataset.objects.get())["y"], data["y"])
    assert not UploadChunk.objects.exists()


def test_a_corrupted_chunk_is_refused_and_can_be_sent_again(api, dataset_dir):
    data = {"x": np.arange(500, dtype=np.float64)}
    upload = start_upload(api, "c", data).json()
    raw = column_bytes(data["x"])
    import hashlib

    good = hashlib.sha256(raw[:1024]).hexdigest()
    corrupted = bytearray(raw[:1024])
    corrupted[10] ^= 0xFF
    answer = api.put(f"/api/datasets/uploads/{upload['id']}/chunks/?column=x&offset=0&sha256={good}",
                     bytes(corrupted), content_type="application/octet-stream")
    assert answer.status_code == 400 and answer.json()["error"] == "checksum_mismatch"
    assert answer.json()["field"] == "sha256"
    assert api.get(f"/api/datasets/uploads/{upload['id']}/").json()["columns"][0]["missing"] == [0, 1024, 2048, 3072]
    for offset in range(0, len(raw), 1024):
        assert send_chunk(api, upload, "x", raw, offset).status_code == 200
    assert api.post(f"/api/datasets/uploads/{upload['id']}/finish/").status_code == 201
    np.testing.assert_array_equal(storage.open_columns(Dataset.objects.get())["x"], data["x"])


@pytest.mark.parametrize("query, body, field", [
    ("column=nope&offset=0", b"\0" * 1024, "column"),
    ("column=x&offset=100", b"\0" * 1024, "offset"),
    ("column=x&offset=4096", b"\0" * 1024, "offset"),
    ("column=x&offset=0", b"\0" * 1000, "body"),
    ("column=x&offset=3072", b"\0" * 1024, "body"),  # the last chunk holds 928 bytes
])
def test_a_chunk_at_a_wrong_offset_or_of_a_wrong_length_is_refused_naming_the_field(api, dataset_dir, query, body,
                                                                                     field):
    import hashlib

    upload = start_upload(api, "c", {"x": np.arange(500, dtype=np.float64)}).json()
    answer = api.put(f"/api/datasets/uploads/{upload['id']}/chunks/?{query}&sha256={hashlib.sha256(body).hexdigest()}",
                     body, content_type="application/octet-stream")
    assert answer.status_code == 400 and (answer.json()["error"], answer.json()["field"]) == ("bad_chunk", field)


def test_a_body_over_the_chunk_size_and_bad_query_parameters_are_refused(api, dataset_dir):
    upload = start_upload(api, "c", {"x": np.arange(500, dtype=np.float64)}).json()
    url = f"/api/datasets/uploads/{upload['id']}/chunks/"
    big = api.put(f"{url}?column=x&offset=0&sha256={'0' * 64}", b"\0" * 1025, content_type="application/octet-stream")
    assert big.status_code == 413 and big.json()["error"] == "too_large"
    for query, field in (("column=x&offset=0&sha256=xyz", "sha256"), ("column=x&offset=-1&sha256=" + "0" * 64, "offset"),
                         ("offset=0&sha256=" + "0" * 64, "column")):
        answer = api.put(f"{url}?{query}", b"\0", content_type="application/octet-stream")
        assert answer.status_code == 400 and answer.json()["field"] == field, answer.content
    assert api.put(f"{url}?column=x&offset=0&sha256={'0' * 64}", b"{}", content_type="application/json").status_code == 415


def test_columns_of_unequal_length_are_refused_before_anything_is_stored(api, dataset_dir):
    answer = start_upload(api, "u", {"x": np.arange(10.0), "y": np.arange(9.0)})
    assert answer.status_code == 400
    assert (answer.json()["error"], answer.json()["field"]) == ("unequal_lengths", "columns[1].length")
    assert nothing_left(dataset_dir)


@pytest.mark.parametrize("dtype", ["object", "float128", "<U10", "complex128", "datetime64[ps]", "datetime64", "V8",
                                   "float16"])
def test_a_dtype_that_is_not_numeric_is_refused(api, dataset_dir, dtype):
    spec = [{"name": "x", "dtype": "float64", "length": 4}, {"name": "y", "dtype": dtype, "length": 4}]
    answer = api.post("/api/datasets/uploads/", {"name": "d", "columns": spec}, format="json")
    assert answer.status_code == 400
    assert (answer.json()["error"], answer.json()["field"]) == ("invalid_dtype", "columns[1].dtype")
    assert dtype in answer.json()["detail"]
    assert nothing_left(dataset_dir)


def test_column_names_and_the_x_column_are_checked(api, dataset_dir):
    twice = api.post("/api/datasets/uploads/", {"name": "d", "columns": [
        {"name": "x", "dtype": "float64", "length": 4}, {"name": "x", "dtype": "float64", "length": 4}]}, format="json")
    assert twice.status_code == 400 and twice.json()["field"] == "columns[1].name"
    unknown_x = start_upload(api, "d", {"a": np.arange(3.0)}, x="b")
    assert unknown_x.status_code == 400 and unknown_x.json()["field"] == "x"
    assert start_upload(api, "d", {"a": np.arange(3.0), "b": np.arange(3.0)}, x="b").status_code == 201


def test_an_unsorted_x_is_refused_when_the_upload_requires_a_sorted_one_and_nothing_is_left(api, dataset_dir):
    x = np.arange(1000, dtype=np.float64)
    x[500], x[501] = x[501], x[500]
    refused = upload_dataset(api, "line", {"x": x, "y": np.ones(1000)}, require_sorted_x=True)
    assert refused.status_code == 400 and (refused.json()["error"], refused.json()["field"]) == ("x_not_sorted", "x")
    assert nothing_left(dataset_dir)
    assert api.get("/api/datasets/").json() == [] and api.get("/api/datasets/uploads/").json() == []

    kept = upload_dataset(api, "points", {"x": x, "y": np.ones(1000)})
    assert kept.status_code == 201 and kept.json()["x_sorted"] is False


def test_a_nan_in_x_makes_it_unsorted_but_not_its_range(api, dataset_dir):
    x = np.arange(100, dtype=np.float64)
    x[7] = np.nan
    body = upload_dataset(api, "nan", {"x": x}).json()
    assert body["x_sorted"] is False and (body["x_min"], body["x_max"]) == (0.0, 99.0)


def test_infinities_in_x_keep_it_sorted_and_out_of_its_range(api, dataset_dir):
    x = np.array([-np.inf, 1.0, 2.0, np.inf])
    body = upload_dataset(api, "inf", {"x": x, "y": np.array([np.inf, -np.inf, np.nan, 0.0])}).json()
    assert body["x_sorted"] is True and (body["x_min"], body["x_max"]) == (1.0, 2.0)
    only = upload_dataset(api, "only-nan", {"x": np.full(3, np.nan)}).json()
    assert (only["x_min"], only["x_max"]) == (None, None)


def test_the_name_is_unique_among_datasets_but_not_among_uploads(api, dataset_dir):
    first = start_upload(api, "same", {"x": np.arange(3.0)}).json()
    second = upload_dataset(api, "same", {"x": np.arange(3.0)})
    assert second.status_code == 201
    taken = start_upload(api, "same", {"x": np.arange(3.0)})
    assert taken.status_code == 409 and (taken.json()["error"], taken.json()["field"]) == ("name_taken", "name")
    send_chunk(api, first, "x", column_bytes(np.arange(3.0)), 0)
    late = api.post(f"/api/datasets/uploads/{first['id']}/finish/")
    assert late.status_code == 409 and late.json()["error"] == "name_taken"
    assert Dataset.objects.count() == 1 and not (dataset_dir / ".uploads" / first["id"]).exists()


def test_the_quota_counts_datasets_and_uploads_in_progress(api, dataset_dir, settings):
    settings.BOKEHSITE_DATASET_QUOTA_BYTES = 20_000
    data = {"x": np.arange(1000, dtype=np.float64)}  # 8 KB and its header
    assert upload_dataset(api, "one", data).status_code == 201
    assert start_upload(api, "two", data).status_code == 201
    over = start_upload(api, "three", data)
    assert over.status_code == 413 and (over.json()["error"], over.json()["field"]) == ("quota_exceeded", "columns")
    assert "20000" in over.json()["detail"]
    api.delete(f"/api/datasets/uploads/{api.get('/api/datasets/uploads/').json()[0]['id']}/")
    assert start_upload(api, "three", data).status_code == 201


def test_an_upload_over_the_maximum_size_is_refused(api, dataset_dir, settings):
    settings.BOKEHSITE_DATASET_MAX_BYTES = 8000
    assert start_upload(api, "fits", {"x": np.arange(1000, dtype=np.float64)}).status_code == 201
    over = start_upload(api, "over", {"x": np.arange(1001, dtype=np.float64)})
    assert over.status_code == 413 and (over.json()["error"], over.json()["field"]) == ("too_large", "columns")
    huge = api.post("/api/datasets/uploads/", {"name": "h", "columns": [
        {"name": "x", "dtype": "float64", "length": 2 ** 53}]}, format="json")
    assert huge.status_code == 413
    beyond = api.post("/api/datasets/uploads/", {"name": "h", "columns": [
        {"name": "x", "dtype": "float64", "length": 2 ** 60}]}, format="json")
    assert beyond.status_code == 400 and beyond.json()["field"] == "columns"


def test_cancelling_an_upload_leaves_nothing(api, dataset_dir):
    upload = start_upload(api, "gone", columns()).json()
    send_chunk(api, upload, "t", column_bytes(columns()["t"]), 0)
    assert api.delete(f"/api/datasets/uploads/{upload['id']}/").status_code == 204
    assert nothing_left(dataset_dir)
    assert api.get(f"/api/datasets/uploads/{upload['id']}/").status_code == 404
    again = send_chunk(api, upload, "t", column_bytes(columns()["t"]), 1024)
    assert again.status_code == 404 and api.post(f"/api/datasets/uploads/{upload['id']}/finish/").status_code == 404


def test_deleting_a_dataset_removes_its_files(api, dataset_dir, django_capture_on_commit_callbacks):
    body = upload_dataset(api, "d", columns()).json()
    assert any((dataset_dir / body["id"]).iterdir())
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/datasets/{body['id']}/").status_code == 204
    assert not (dataset_dir / body["id"]).exists() and not Dataset.objects.exists()
    assert api.get(f"/api/datasets/{body['id']}/").status_code == 404


def test_deleting_a_user_removes_their_datasets_files(multi_user, dataset_dir, alice,
                                                     django_capture_on_commit_callbacks):
    body = upload_dataset(token_client(alice), "hers", columns()).json()
    pending = start_upload(token_client(alice), "pending", columns()).json()
    with django_capture_on_commit_callbacks(execute=True):
        alice.delete()
    assert not (dataset_dir / body["id"]).exists() and not (dataset_dir / ".uploads" / pending["id"]).exists()
    assert not Dataset.objects.exists()


def test_other_users_get_404_for_everything_of_someone_elses(multi_user, dataset_dir, alice, charlie):
    owner, other = token_client(alice), token_client(charlie)
    dataset = upload_dataset(owner, "private", columns()).json()
    upload = start_upload(owner, "pending", columns()).json()
    assert other.get("/api/datasets/").json() == [] and other.get("/api/datasets/uploads/").json() == []
    assert other.get(f"/api/datasets/{dataset['id']}/").status_code == 404
    assert other.delete(f"/api/datasets/{dataset['id']}/").status_code == 404
    assert other.get(f"/api/datasets/uploads/{upload['id']}/").status_code == 404
    assert other.delete(f"/api/datasets/uploads/{upload['id']}/").status_code == 404
    assert other.post(f"/api/datasets/uploads/{upload['id']}/finish/").status_code == 404
    assert send_chunk(other, upload, "t", column_bytes(columns()["t"]), 0).status_code == 404
    assert Dataset.objects.count() == 2
    assert api_anonymous_is_refused(dataset["id"])


def api_anonymous_is_refused(dataset_id) -> bool:
    from rest_framework.test import APIClient

    answer = APIClient().get(f"/api/datasets/{dataset_id}/")
    return answer.status_code == 401 and answer.json()["error"] == "not_authenticated"


def test_the_admin_lists_and_deletes_datasets_with_their_files(client, dataset_dir, api,
                                                               django_capture_on_commit_callbacks):
    from tests.conftest import make_user

    body = upload_dataset(api, "in-admin", columns()).json()
    staff = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(staff)
    listing = client.get("/admin/datasets/dataset/")
    assert listing.status_code == 200 and b"in-admin" in listing.content
    with django_capture_on_commit_callbacks(execute=True):
        deleted = client.post(f"/admin/datasets/dataset/{body['id']}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert not Dataset.objects.exists() and not (dataset_dir / body["id"]).exists()


def test_a_disk_that_fails_answers_503_and_the_chunk_can_be_sent_again(api, dataset_dir, monkeypatch):
    import errno

    data = {"x": np.arange(100, dtype=np.float64)}
    upload = start_upload(api, "full", data).json()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage, "write_at", full)
    answer = send_chunk(api, upload, "x", column_bytes(data["x"]), 0)
    assert answer.status_code == 503 and answer.json()["error"] == "unavailable"
    assert "No space left on device" in answer.json()["detail"]
    monkeypatch.undo()
    assert api.get(f"/api/datasets/uploads/{upload['id']}/").json()["columns"][0]["missing"] == [0]
    assert send_chunk(api, upload, "x", column_bytes(data["x"]), 0).status_code == 200
    assert api.post(f"/api/datasets/uploads/{upload['id']}/finish/").status_code == 201


def test_an_idle_upload_is_cancelled_and_frees_the_quota(api, dataset_dir, settings):
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    settings.BOKEHSITE_DATASET_QUOTA_BYTES = 10_000
    data = {"x": np.arange(1000, dtype=np.float64)}
    idle = start_upload(api, "idle", data).json()
    assert start_upload(api, "next", data).json()["error"] == "quota_exceeded"
    Dataset.objects.filter(pk=idle["id"]).update(updated=timezone.now() - timedelta(seconds=24 * 3600 + 1))
    fresh = start_upload(api, "next", data)  # starting another cancels the idle one first
    assert fresh.status_code == 201 and not (dataset_dir / ".uploads" / idle["id"]).exists()
    Dataset.objects.filter(pk=fresh.json()["id"]).update(updated=timezone.now() - timedelta(days=2))
    call_command("prune_uploads", stdout=open("/dev/null", "w"))
    assert not Dataset.objects.exists() and not any((dataset_dir / ".uploads").iterdir())


def test_the_status_of_an_upload_of_many_chunks_stays_bounded(api, dataset_dir):
    upload = start_upload(api, "many", {"x": np.zeros(1500 * 128)}).json()  # 1500 chunks of 1 KiB
    column = upload["columns"][0]
    assert column["missing_chunks"] == 1500 and column["missing"] == list(range(0, 1000 * 1024, 1024))


def summaries_as_built_whole(dataset, data) -> None:
    """Every summarized column's levels are those of ``summaries.summarize`` over the whole column."""
    for name, values in data.items():
        if name == dataset.x_column:
            continue
        stored = values.view("<i8") if values.dtype.kind == "M" else values
        expected = summaries.summarize(np.ascontiguousarray(stored))
        levels = storage.summary_levels(dataset, name)
        assert len(levels) == len(expected) == max(1, len(summaries.level_lengths(len(values))))
        for level, want in zip(levels, expected):
            assert level.dtype == want.dtype
            np.testing.assert_array_equal(np.asarray(level), want)


@pytest.mark.parametrize("chunk_bytes", [1024, 1088, 4096])
def test_chunks_in_any_order_and_twice_give_the_summaries_of_a_whole_build(api, dataset_dir, settings, chunk_bytes):
    settings.BOKEHSITE_DATASET_CHUNK_BYTES = chunk_bytes  # 1088: chunks of 136 float64 rows, whole level-1 blocks only
    rng = np.random.default_rng(chunk_bytes)
    n = 20_003
    y = np.cumsum(rng.normal(size=n))
    y[rng.integers(0, n, 300)] = np.nan
    y[1000:1200] = np.nan  # blocks of NaN only
    y[5000:5100] = 3.0  # ties: the first is kept
    data = {"t": np.arange(n, dtype=np.float64), "y": y, "small": y.astype(np.float32),
            "count": rng.integers(-3, 3, n).astype(np.int16), "flag": rng.random(n) > 0.5,
            "when": np.arange(n).astype("datetime64[ms]")[::-1].copy()}
    upload = start_upload(api, "shuffled", data).json()
    sends = [(name, offset) for name, values in data.items()
             for offset in range(0, len(column_bytes(values)), chunk_bytes)]
    sends += [sends[i] for i in rng.integers(0, len(sends), len(sends) // 3)]  # some again, as a retry sends them
    rng.shuffle(sends)
    raw = {name: column_bytes(values) for name, values in data.items()}
    for name, offset in sends:
        assert send_chunk(api, upload, name, raw[name], offset).status_code == 200
    written = np.fromfile(storage.upload_directory(upload["id"]) / "c1.summary1.bin", summaries.record_dtype(1, y.dtype))
    np.testing.assert_array_equal(written, summaries.summarize(y)[0])  # as the chunks came, before finishing
    finished = api.post(f"/api/datasets/uploads/{upload['id']}/finish/")
    assert finished.status_code == 201, finished.content
    body = finished.json()
    assert body["x_sorted"] is True and (body["x_min"], body["x_max"]) == (0.0, n - 1.0)
    dataset = Dataset.objects.get(pk=body["id"])
    summaries_as_built_whole(dataset, data)
    assert not list(storage.directory(dataset).glob("*.chunks.bin"))
    assert body["bytes"] == storage.disk_bytes(storage.directory(dataset))


@pytest.mark.parametrize("x, expected", [
    (np.r_[np.arange(200.0), np.arange(150.0, 400.0)], (False, 0.0, 399.0)),  # each chunk sorted, not across one
    (np.r_[np.arange(128.0), [np.nan], np.arange(129.0, 400.0)], (False, 0.0, 399.0)),  # NaN starts a chunk
    (np.r_[[-np.inf], np.arange(1.0, 399.0), [np.inf]], (True, 1.0, 398.0)),
    (np.full(300, np.nan), (False, None, None)),
    (np.arange(300, dtype=np.int64)[::-1].copy(), (False, 0.0, 299.0)),
])
def test_x_order_and_range_from_the_chunks_are_those_of_the_whole_column(api, dataset_dir, x, expected):
    data = {"x": x, "y": np.arange(len(x), dtype=np.float64)}
    answer = upload_dataset(api, "ordered", data)
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert (body["x_sorted"], body["x_min"], body["x_max"]) == expected
    from datasets.services import _x_summary

    assert _x_summary(x) == expected


def test_an_upload_without_chunk_records_is_finished_by_reading_its_columns(api, dataset_dir):
    """As an upload started before chunks wrote their summaries would be."""
    rng = np.random.default_rng(5)
    data = {"x": np.arange(3000, dtype=np.float64), "y": rng.normal(size=3000)}
    upload = upload_dataset(api, "older", data, finish=False).json()
    for path in storage.upload_directory(upload["id"]).glob("*.chunks.bin"):
        path.unlink()
    for path in storage.upload_directory(upload["id"]).glob("*.summary*"):
        path.unlink()
    finished = api.post(f"/api/datasets/uploads/{upload['id']}/finish/")
    assert finished.status_code == 201, finished.content
    assert finished.json()["x_sorted"] is True and finished.json()["x_max"] == 2999.0
    summaries_as_built_whole(Dataset.objects.get(), data)


def mapped_bytes(path) -> int:
    """How much of ``path`` this process has mapped in (smaps' Rss), in bytes."""
    total, inside = 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:  # a mapping's first line
                inside = len(fields) >= 6 and fields[5] == str(path)
            elif inside and fields[0] == "Rss:":
                total += int(fields[1]) * 1024
    return total


def test_populating_a_map_maps_every_page_of_it(tmp_path):
    path = tmp_path / "column.npy"
    np.save(path, np.arange(4 * 1024 * 1024, dtype=np.float64))  # 32 MiB
    values = np.load(path, mmap_mode="r")
    assert mapped_bytes(path) < 1024 * 1024
    storage.populate(values)
    assert mapped_bytes(path) >= values.nbytes


def test_opening_a_dataset_prefetches_its_summaries_and_columns_in_the_background(api, dataset_dir, settings):
    settings.BOKEHSITE_DATASET_CHUNK_BYTES = 4 * 1024 * 1024
    rng = np.random.default_rng(2)
    data = {"x": np.arange(2_000_000, dtype=np.float64), "y": rng.normal(size=2_000_000)}
    assert upload_dataset(api, "prefetched", data).status_code == 201
    dataset = Dataset.objects.get()
    storage.open_columns(dataset)
    storage.summary_levels(dataset, "y")
    folder = storage.directory(dataset)
    files = [folder / "c0.npy", folder / "c1.npy", *sorted(folder.glob("c1.summary*"))]
    assert storage.prefetch_done(timeout=60)
    assert all(mapped_bytes(path) >= path.stat().st_size - 4096 for path in files), [
        (path.name, mapped_bytes(path), path.stat().st_size) for path in files]


def test_populating_only_what_is_cached_leaves_the_rest_unread(tmp_path):
    import os

    path = tmp_path / "column.npy"
    np.save(path, np.arange(4 * 1024 * 1024, dtype=np.float64))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # out of the page cache
    finally:
        os.close(fd)
    values = np.load(path, mmap_mode="r")
    storage.populate(values, cached_only=True)
    assert mapped_bytes(path) < 1024 * 1024


def test_populating_what_is_cached_maps_the_cached_pages_only(tmp_path):
    import os

    path = tmp_path / "column.npy"
    np.save(path, np.arange(4 * 1024 * 1024, dtype=np.float64))  # 32 MiB
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.pread(fd, 8 * 1024 * 1024, 16 * 1024 * 1024)  # 8 MiB of it back in the page cache
    finally:
        os.close(fd)
    values = np.load(path, mmap_mode="r")
    storage.populate(values, cached_only=True)
    assert 7 * 1024 * 1024 <= mapped_bytes(path) <= 10 * 1024 * 1024
