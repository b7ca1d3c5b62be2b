"""Datasets uploaded from Parquet files and Arrow tables, against real Daphne processes.

Chunks (64 KiB here) do not line up with row groups, so most chunks are cut from two pieces.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from bokehsite.client import Session  # noqa: E402
from bokehsite.client.arrow import ArrowColumns  # noqa: E402
from bokehsite.client.datasets import raw  # noqa: E402
from datasets.models import Dataset, UploadChunk  # noqa: E402
from tests.helpers import killed_midway  # noqa: E402
from tests.servers import ROOT, DaphneServer  # noqa: E402
from tests.test_dataset_client import CHUNK, _same_directory, assert_stored, server, server_env  # noqa: E402, F401 (fixtures)

pytestmark = [pytest.mark.daphne, pytest.mark.django_db(transaction=True)]

ROW_GROUP = 3001  # rows: 24,008 bytes of an int64 column, not a divisor of a chunk


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("parquet-datasets")


def expected_columns(n: int) -> dict[str, np.ndarray]:
    """What the server should store, as NumPy arrays (timestamps in UTC)."""
    rng = np.random.default_rng(n)
    start = np.datetime64("2026-03-29T00:30", "ns")  # across a daylight-saving change in Paris
    return {"t_ms": (start + np.arange(n).astype("timedelta64[s]")).astype("datetime64[ms]"),
            "t_ns": start + rng.integers(0, 10**9, n).cumsum().astype("timedelta64[ns]"),
            "y": np.cumsum(rng.normal(size=n)),
            "level": rng.integers(0, 60_000, n).astype(np.uint16),
            "count": rng.integers(-2**31, 2**31 - 1, n).astype(np.int32),
            "ok": rng.random(n) < 0.3}


def arrow_table(columns: dict[str, np.ndarray]) -> "pa.Table":
    """``columns`` as Arrow, with the timestamps labelled with a zone (their values stay UTC)."""
    return pa.table({name: pa.array(values).cast(pa.timestamp(str(values.dtype)[11:-1], tz="Europe/Paris"))
                     if values.dtype.kind == "M" else pa.array(values) for name, values in columns.items()})


def test_a_parquet_file_with_many_row_groups_uploads_as_its_columns(server, tmp_path):
    columns = expected_columns(40_000)  # 14 row groups; the timestamp columns are about 5 chunks each
    path = tmp_path / "signal.parquet"
    pq.write_table(arrow_table(columns), path, row_group_size=ROW_GROUP)
    assert pq.ParquetFile(path).metadata.num_row_groups == 14 and CHUNK % (ROW_GROUP * 8)  # chunks straddle
    with Session(server.url) as session:
        dataset = session.upload_dataset("from parquet", path, x="t_ns", require_sorted_x=True)
        also = session.upload_dataset("from a str path", str(path))
    assert dataset.length == also.length == 40_000 and dataset.x_sorted
    assert dataset.columns == also.columns == {"t_ms": "datetime64[ms]", "t_ns": "datetime64[ns]", "y": "float64",
                                               "level": "uint16", "count": "int32", "ok": "bool"}
    assert dataset.x_range == (float(columns["t_ns"][0].astype(np.int64)), float(columns["t_ns"][-1].astype(np.int64)))
    assert_stored(dataset.id, columns)
    assert_stored(also.id, columns)
    assert not UploadChunk.objects.exists()


def test_an_arrow_table_in_several_chunks_and_a_record_batch_upload(server):
    columns = expected_columns(25_000)
    table = arrow_table(columns)
    chunked = pa.concat_tables([table.slice(0, 7), table.slice(7, 0), table.slice(7, 12_000), table.slice(12_007)])
    assert chunked.column("y").num_chunks > 1
    batch = table.slice(0, 5000).to_batches()[0]
    with Session(server.url) as session:
        dataset = session.upload_dataset("from arrow", chunked)
        small = session.upload_dataset("from a batch", batch)
    assert dataset.length == 25_000 and list(dataset.columns) == list(columns)
    assert_stored(dataset.id, columns)
    assert_stored(small.id, {name: values[:5000] for name, values in columns.items()})


def test_nulls_in_float_columns_are_stored_as_nan(server, tmp_path):
    y = pa.array([0.5, None, 2.0, None] * 5000, pa.float32())
    path = tmp_path / "holes.parquet"
    pq.write_table(pa.table({"x": np.arange(20_000, dtype=np.int64), "y": y}), path, row_group_size=ROW_GROUP)
    with Session(server.url) as session:
        dataset = session.upload_dataset("holes", path)
    assert dataset.columns == {"x": "int64", "y": "float32"}
    assert_stored(dataset.id, {"x": np.arange(20_000, dtype=np.int64),
                               "y": np.array([0.5, np.nan, 2.0, np.nan] * 5000, np.float32)})


def test_columns_datasets_cannot_store_are_refused_by_name_before_anything_is_sent(server, tmp_path):
    n = 10_000
    x = np.arange(n, dtype=np.float64)
    cases = [
        (pa.table({"x": x, "label": pa.array(["a"] * n)}), TypeError, "'label' is of Arrow type string"),
        (pa.table({"x": x, "tags": pa.array([[1, 2]] * n)}), TypeError, "'tags' is of Arrow type list<item: int64>"),
        (pa.table({"x": x, "kind": pa.array(["a", "b"] * (n // 2)).dictionary_encode()}), TypeError,
         "'kind' is of Arrow type dictionary"),
        (pa.table({"x": x, "half": pa.array(np.ones(n, np.float16))}), TypeError, "'half' is of Arrow type halffloat"),
        (pa.table({"x": x, "n": pa.array([1, None] * (n // 2), pa.int64())}), ValueError,
         "'n' has 5000 null value(s) in the table"),
        (pa.table({"x": x, "when": pa.array([None, 0] * (n // 2), pa.timestamp("ms"))}), ValueError,
         "'when' has 5000 null value(s)"),
    ]
    with Session(server.url) as session:
        for table, error, message in cases:
            with pytest.raises(error) as refused:
                session.upload_dataset("refused", table)
            assert message in str(refused.value)
            path = tmp_path / "refused.parquet"
            pq.write_table(table, path, row_group_size=ROW_GROUP)
            with pytest.raises(error) as refused:
                session.upload_dataset("refused", path)
            assert message.split(" has ")[0].split(" is ")[0] in str(refused.value)  # the column, by name
        with pytest.raises(TypeError, match="pyarrow Table, RecordBatch or ParquetFile, not ChunkedArray"):
            session.upload_dataset("refused", pa.chunked_array([x]))
        assert session.datasets() == []
    assert not Dataset.objects.exists() and not UploadChunk.objects.exists()


def test_nulls_found_only_while_reading_cancel_the_upload(server, tmp_path):
    """Without statistics in the file, nulls show when their row group is read: the upload stops there."""
    n = 30_000
    counts = pa.array([None if i == 25_000 else i for i in range(n)], pa.int64())
    path = tmp_path / "late-null.parquet"
    pq.write_table(pa.table({"x": np.arange(n, dtype=np.float64), "count": counts}), path,
                   row_group_size=ROW_GROUP, write_statistics=False)
    with Session(server.url) as session:
        with pytest.raises(ValueError, match=r"column 'count' has 1 null value\(s\) in rows 24008 to 27008"):
            session.upload_dataset("late null", path)
        assert session.datasets() == []
    assert not Dataset.objects.exists() and not UploadChunk.objects.exists()


def test_chunks_are_cut_from_the_right_pieces_in_any_order(tmp_path):
    """What a resumed upload does: read whatever chunks the server misses, in any order."""
    columns = expected_columns(10_007)
    path = tmp_path / "any-order.parquet"
    table = arrow_table(columns)
    pq.write_table(table, path, row_group_size=777)
    rng = np.random.default_rng(0)
    for source in (path, pa.concat_tables([table.slice(0, 100), table.slice(100, 0), table.slice(100)])):
        reader = ArrowColumns(source)
        for name, values in columns.items():
            whole = bytes(raw(values))
            for chunk in (3, 1000, 64 * 1024):
                for offset in rng.permutation(np.arange(0, len(whole), chunk)):
                    assert reader.read(name, int(offset), int(offset) + chunk) == whole[offset:offset + chunk]
        reader.close()


def test_a_parquet_upload_resumes_after_the_server_is_killed_in_the_middle(django_db_setup, shared_dir, tmp_path):
    columns = {"x": np.arange(1_000_000, dtype=np.float64), "y": np.random.default_rng(5).normal(size=1_000_000)}
    path = tmp_path / "survivor.parquet"
    pq.write_table(pa.table(columns), path, row_group_size=70_001)
    daphne = DaphneServer(env=server_env(shared_dir)).start()
    try:
        with killed_midway(daphne, lambda: UploadChunk.objects.count() >= 20) as happened, Session(daphne.url) as session:
            dataset = session.upload_dataset("survivor", path, require_sorted_x=True)
            assert happened()
        assert dataset.length == 1_000_000
        assert_stored(dataset.id, columns)
    finally:
        daphne.stop()


def test_the_client_holds_about_two_row_groups_of_a_large_file(server, tmp_path):
    """Peak client memory during the upload of an 18-row-group file, measured in a fresh process:
    what Python and NumPy allocate (tracemalloc) plus what Arrow's pool does."""
    rows, groups = 30_000, 18  # 14 MiB of columns: within the test quota
    columns = expected_columns(rows * groups)
    path = tmp_path / "large.parquet"
    pq.write_table(arrow_table(columns), path, row_group_size=rows)
    warm_up = tmp_path / "small.parquet"  # what the first upload imports (pandas, by pyarrow) is no data
    pq.write_table(arrow_table({name: values[:10] for name, values in columns.items()}), warm_up)
    row_group_bytes = rows * sum(values.dtype.itemsize for values in columns.values())
    script = textwrap.dedent(f"""
        import json, tracemalloc
        import pyarrow as pa
        from bokehsite.client import Session
        with Session({server.url!r}) as session:
            session.delete_dataset(session.upload_dataset("small", {str(warm_up)!r}).id)
            tracemalloc.start()
            before = pa.default_memory_pool().max_memory()
            dataset = session.upload_dataset("large", {str(path)!r})
            _, python_peak = tracemalloc.get_traced_memory()
        print(json.dumps({{"length": dataset.length, "python_peak": python_peak,
                           "arrow_peak": pa.default_memory_pool().max_memory(), "arrow_before": before}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=110, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    assert measured["length"] == rows * groups
    peak = measured["python_peak"] + measured["arrow_peak"]
    file_bytes = row_group_bytes * groups
    assert peak < 3 * row_group_bytes, (
        f"peak {peak / 2**20:.2f} MiB (Python {measured['python_peak'] / 2**20:.2f}, Arrow "
        f"{measured['arrow_peak'] / 2**20:.2f}) for row groups of {row_group_bytes / 2**20:.2f} MiB "
        f"and {file_bytes / 2**20:.1f} MiB of columns")
    assert_stored(Dataset.objects.get(name="large").id, columns)
