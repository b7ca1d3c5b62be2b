"""Appending rows to a dataset: files and summaries grow as a fresh build would have them."""

import numpy as np
import pytest
from bokeh.core.serialization import Buffer

from bokehsite import wire
from bokehsite.errors import Unavailable
from datasets import services, storage, summaries
from datasets.models import Dataset
from datasets.signals import rows_appended
from tests.helpers import column_bytes, dtype_name, upload_dataset

pytestmark = pytest.mark.django_db


def rows_body(columns: dict[str, np.ndarray]) -> bytes:
    spec = [{"name": name, "dtype": dtype_name(values)} for name, values in columns.items()]
    buffers = [Buffer(str(i), column_bytes(values)) for i, values in enumerate(columns.values())]
    return wire.pack({"columns": spec}, buffers)


def append(api, dataset_id, columns):
    return api.post(f"/api/datasets/{dataset_id}/rows/", rows_body(columns), content_type=wire.CONTENT_TYPE)


def assert_summaries_as_built_fresh(dataset: Dataset, full: dict[str, np.ndarray]) -> None:
    opened = storage.open_columns(dataset)
    for name, values in full.items():
        np.testing.assert_array_equal(opened[name], values)
        np.testing.assert_array_equal(np.load(storage.column_path(storage.directory(dataset),
                                                                   dataset.column_index(name))), values)
    for name in dataset.summarized_columns:
        levels = storage.summary_levels(dataset, name)
        fresh = summaries.summarize(full[name])
        assert len(levels) == len(summaries.level_lengths(len(full[name])))
        for level, want in zip(levels, fresh):
            np.testing.assert_array_equal(level, want)


@pytest.fixture
def signals():
    received = []

    def hear(sender, dataset, old_length, new_length, **kwargs):
        received.append((sender, dataset.pk, old_length, new_length))

    rows_appended.connect(hear)
    yield received
    rows_appended.disconnect(hear)


def test_appended_rows_extend_the_files_and_summaries_as_a_fresh_build(api, dataset_dir, signals,
                                                                       django_capture_on_commit_callbacks):
    rng = np.random.default_rng(1)
    full = {"x": np.arange(5000, dtype=np.float64), "y": rng.normal(size=5000), "n": rng.integers(0, 9, 5000)}
    full["y"][rng.integers(0, 5000, 50)] = np.nan
    first = 1000
    body = upload_dataset(api, "tail", {k: v[:first] for k, v in full.items()}).json()
    # Appends of many sizes, crossing blocks of every level and adding a level.
    cuts = [first, first + 1, first + 7, first + 8, first + 63, first + 600, 4096, 4097, 5000]
    for start, end in zip(cuts, cuts[1:]):
        with django_capture_on_commit_callbacks(execute=True):
            answer = append(api, body["id"], {k: v[start:end] for k, v in full.items()})
        assert answer.status_code == 200, answer.content
        assert answer.json()["length"] == end and answer.json()["x_max"] == end - 1
        dataset = Dataset.objects.get(pk=body["id"])
        assert_summaries_as_built_fresh(dataset, {k: v[:end] for k, v in full.items()})
    assert [s[2:] for s in signals] == list(zip(cuts, cuts[1:]))
    assert all(s[0] is Dataset and str(s[1]) == body["id"] for s in signals)
    assert dataset.x_sorted and dataset.bytes == storage.disk_bytes(storage.directory(dataset))


def test_an_append_to_a_small_dataset_and_datetimes(dataset_dir, api):
    when = np.array(["2026-01-01T00:00:00", "2026-01-01T00:00:01"], dtype="datetime64[s]")
    body = upload_dataset(api, "clock", {"when": when, "v": np.array([1.0, 2.0])}).json()
    more = np.arange("2026-01-01T00:00:02", "2026-01-01T00:01:00", dtype="datetime64[s]")
    answer = append(api, body["id"], {"when": more, "v": np.arange(len(more), dtype=np.float64)})
    assert answer.status_code == 200, answer.content
    dataset = Dataset.objects.get(pk=body["id"])
    full = {"when": np.concatenate([when, more]).view("<i8"), "v": np.concatenate([[1.0, 2.0], np.arange(len(more.astype(float)))])}
    assert_summaries_as_built_fresh(dataset, full)
    assert answer.json()["x_max"] == float(more[-1].astype(np.int64))


def test_an_append_that_would_unsort_x_is_refused_and_changes_nothing(api, dataset_dir):
    body = upload_dataset(api, "sorted", {"x": np.arange(100.0), "y": np.arange(100.0)}).json()
    for x in (np.array([98.0, 200.0]), np.array([300.0, 299.0])):
        answer = append(api, body["id"], {"x": x, "y": np.zeros(2)})
        assert answer.status_code == 400 and (answer.json()["error"], answer.json()["field"]) == (
            "x_not_sorted", "columns.x")
    dataset = Dataset.objects.get(pk=body["id"])
    assert dataset.length == 100
    assert_summaries_as_built_fresh(dataset, {"x": np.arange(100.0), "y": np.arange(100.0)})
    assert append(api, body["id"], {"x": np.array([99.0, 100.0]), "y": np.zeros(2)}).status_code == 200


def test_an_unsorted_dataset_takes_any_x(api, dataset_dir):
    body = upload_dataset(api, "cloud", {"x": np.array([3.0, 1.0, 2.0])}).json()
    answer = append(api, body["id"], {"x": np.array([-5.0])})
    assert answer.status_code == 200 and answer.json()["x_min"] == -5.0 and answer.json()["x_sorted"] is False


@pytest.mark.parametrize("columns, error, field", [
    ({"x": np.arange(3.0)}, "invalid_columns", "columns"),
    ({"x": np.arange(3.0), "y": np.arange(3.0), "z": np.arange(3.0)}, "invalid_columns", "columns"),
    ({"x": np.arange(3.0), "y": np.arange(3, dtype=np.int64)}, "invalid_dtype", "columns.y"),
    ({"x": np.arange(3.0), "y": np.arange(2.0)}, "unequal_lengths", "columns.y"),
    ({"x": np.arange(3.0), "y": np.arange(3).astype("datetime64[ns]")}, "invalid_dtype", "columns.y"),
])
def test_rows_that_do_not_fit_the_dataset_are_refused(api, dataset_dir, columns, error, field):
    body = upload_dataset(api, "d", {"x": np.arange(-10.0, 0.0), "y": np.zeros(10)}).json()
    answer = append(api, body["id"], columns)
    assert answer.status_code == 400 and (answer.json()["error"], answer.json()["field"]) == (error, field)
    assert Dataset.objects.get().length == 10


def test_a_malformed_append_body_is_refused(api, dataset_dir):
    body = upload_dataset(api, "d", {"x": np.arange(10.0)}).json()
    url = f"/api/datasets/{body['id']}/rows/"
    odd = wire.pack({"columns": [{"name": "x", "dtype": "float64"}]}, [Buffer("0", b"\0" * 7)])
    answer = api.post(url, odd, content_type=wire.CONTENT_TYPE)
    assert answer.status_code == 400 and answer.json()["field"] == "columns[0]"
    missing = wire.pack({"columns": [{"name": "x", "dtype": "float64"}]}, [])
    assert api.post(url, missing, content_type=wire.CONTENT_TYPE).json()["field"] == "columns"
    assert api.post(url, b"garbage", content_type=wire.CONTENT_TYPE).json()["error"] == "malformed_bundle"
    assert api.post(url, {"columns": []}, format="json").status_code == 415
    empty = wire.pack({"columns": [{"name": "x", "dtype": "float64"}]}, [Buffer("0", b"")])
    assert api.post(url, empty, content_type=wire.CONTENT_TYPE).json()["field"] == "columns"


def test_appends_count_against_the_quota_and_the_size_limit(api, dataset_dir, settings):
    body = upload_dataset(api, "d", {"x": np.arange(100.0)}).json()
    settings.BOKEHSITE_DATASET_QUOTA_BYTES = Dataset.objects.get().bytes + 1000
    over = append(api, body["id"], {"x": np.arange(100.0, 300.0)})
    assert over.status_code == 413 and over.json()["error"] == "quota_exceeded"
    assert append(api, body["id"], {"x": np.arange(100.0, 110.0)}).status_code == 200
    settings.BOKEHSITE_DATASET_QUOTA_BYTES = 10 ** 9
    settings.BOKEHSITE_DATASET_MAX_BYTES = 80
    assert append(api, body["id"], {"x": np.arange(110.0, 121.0)}).json()["error"] == "too_large"


def test_a_failed_append_puts_the_files_back(api, dataset_dir, monkeypatch):
    full = {"x": np.arange(300.0), "y": np.random.default_rng(2).normal(size=300)}
    body = upload_dataset(api, "d", {k: v[:200] for k, v in full.items()}).json()
    dataset = Dataset.objects.get(pk=body["id"])

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(summaries, "extend", fail)
    with pytest.raises(Unavailable):  # answered 503: nothing was stored
        services.append(dataset, {k: v[200:] for k, v in full.items()})
    monkeypatch.undo()
    dataset.refresh_from_db()
    assert dataset.length == 200
    assert_summaries_as_built_fresh(dataset, {k: v[:200] for k, v in full.items()})
    services.append(dataset, {k: v[200:] for k, v in full.items()})
    dataset.refresh_from_db()
    assert_summaries_as_built_fresh(dataset, full)


def test_readers_of_the_old_length_read_the_same_values_after_an_append(api, dataset_dir):
    rng = np.random.default_rng(3)
    full = {"x": np.arange(3000.0), "y": rng.normal(size=3000)}
    old = 2000 + 5  # the last block of every level is partial, and an append rewrites it
    body = upload_dataset(api, "read-while-appending", {k: v[:old] for k, v in full.items()}).json()
    before = Dataset.objects.get(pk=body["id"])
    columns, levels = storage.open_columns(before), storage.summary_levels(before, "y")
    assert append(api, body["id"], {k: v[old:] for k, v in full.items()}).status_code == 200

    # What a view of the old length asks: the extremes of ranges within it, from the old maps.
    starts = rng.integers(0, old - 1, 500)
    ends = np.minimum(starts + rng.integers(1, old, 500), old)
    low, at_low, high, at_high = summaries.extremes(columns["y"], levels, starts, ends)
    for i, (start, end) in enumerate(zip(starts, ends)):
        assert low[i] == full["y"][start:end].min() and high[i] == full["y"][start:end].max()
        assert full["y"][at_low[i]] == low[i] and start <= at_low[i] < end and start <= at_high[i] < end
    np.testing.assert_array_equal(columns["y"], full["y"][:old])
    after = storage.open_columns(Dataset.objects.get(pk=body["id"]))
    assert len(after["y"]) == 3000  # a new length is mapped anew
