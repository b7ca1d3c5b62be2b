"""Datasets from the Python client, against real Daphne processes sharing a data directory."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bokehsite.client import Dataset as ClientDataset
from bokehsite.client import ServerError, Session
from datasets import storage, summaries
from datasets.models import Dataset, UploadChunk
from tests.helpers import killed_midway
from tests.servers import ROOT, DaphneServer, database_url

pytestmark = [pytest.mark.daphne, pytest.mark.django_db(transaction=True)]

CHUNK = 64 * 1024
QUOTA = 32 * 1024 * 1024


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("shared-datasets")


def server_env(shared_dir) -> dict[str, str]:
    from django.conf import settings

    return {"DATABASE_URL": database_url(settings.DATABASES["default"]), "BOKEHSITE_DATASET_DIR": str(shared_dir),
            "BOKEHSITE_DATASET_CHUNK_BYTES": str(CHUNK), "BOKEHSITE_DATASET_QUOTA_BYTES": str(QUOTA)}


@pytest.fixture(scope="module")
def server(django_db_setup, shared_dir):
    with DaphneServer(env=server_env(shared_dir)) as daphne:
        yield daphne


@pytest.fixture(autouse=True)
def _same_directory(settings, shared_dir):
    """This process reads what the servers write."""
    settings.BOKEHSITE_DATASET_DIR = shared_dir


def signal_columns(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(n)
    return {"t": np.datetime64("2026-01-01", "ms") + np.arange(n).astype("timedelta64[ms]"),
            "y": np.cumsum(rng.normal(size=n)), "level": rng.integers(0, 100, n).astype(np.uint16)}


def assert_stored(dataset_id: str, columns: dict[str, np.ndarray]) -> None:
    dataset = Dataset.objects.get(pk=dataset_id)
    opened = storage.open_columns(dataset)
    for name, values in columns.items():
        np.testing.assert_array_equal(opened[name], values.view("<i8") if values.dtype.kind == "M" else values)
    for name in dataset.summarized_columns:
        for level, fresh in zip(storage.summary_levels(dataset, name), summaries.summarize(opened[name])):
            np.testing.assert_array_equal(level, fresh)


def test_upload_dataset_sends_columns_in_chunks_and_returns_a_handle(server):
    columns = signal_columns(300_000)  # about 60 chunks
    with Session(server.url) as session:
        dataset = session.upload_dataset("walk", columns, x="t", require_sorted_x=True)
        assert isinstance(dataset, ClientDataset) and dataset.session is session
        assert (dataset.name, dataset.length, dataset.x, dataset.x_sorted) == ("walk", 300_000, "t", True)
        assert dataset.columns == {"t": "datetime64[ms]", "y": "float64", "level": "uint16"}
        assert dataset.x_range == (float(columns["t"][0].astype(np.int64)), float(columns["t"][-1].astype(np.int64)))
        assert session.datasets() == [dataset] and session.dataset("walk") == dataset
        assert session.dataset(dataset.id).length == 300_000
    assert_stored(dataset.id, columns)
    assert not UploadChunk.objects.exists()


def test_a_dataframe_uploads_as_its_columns(server):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"when": pd.date_range("2026-01-01", periods=5000, freq="s", tz="Europe/Paris"),
                          "value": np.linspace(0, 1, 5000), "ok": np.arange(5000) % 3 == 0})
    with Session(server.url) as session:
        dataset = session.upload_dataset("frame", frame)
    assert list(dataset.columns) == ["when", "value", "ok"] and dataset.columns["when"].startswith("datetime64[")
    assert (dataset.columns["value"], dataset.columns["ok"]) == ("float64", "bool")
    stored = storage.open_columns(Dataset.objects.get(pk=dataset.id))
    unit = dataset.columns["when"][len("datetime64["):-1]
    expected = frame["when"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype(f"datetime64[{unit}]")
    np.testing.assert_array_equal(stored["when"].view(f"datetime64[{unit}]"), expected)
    np.testing.assert_array_equal(stored["ok"], frame["ok"].to_numpy())


def test_append_dataset_adds_rows_and_delete_dataset_removes_the_files(server, shared_dir):
    columns = signal_columns(10_000)
    with Session(server.url) as session:
        dataset = session.upload_dataset("tail", {k: v[:6000] for k, v in columns.items()})
        appended = session.append_dataset("tail", {k: v[6000:] for k, v in columns.items()})
        assert appended.length == 10_000 and appended.x_range[1] == float(columns["t"][-1].astype(np.int64))
        assert_stored(dataset.id, columns)
        assert dataset.refresh().length == 10_000

        with pytest.raises(ServerError) as unsorted:
            dataset.append({k: v[:10] for k, v in columns.items()})
        assert (unsorted.value.status, unsorted.value.code) == (400, "x_not_sorted")

        session.delete_dataset("tail")
        assert not (shared_dir / dataset.id).exists()
        with pytest.raises(ServerError) as gone:
            session.dataset("tail")
        assert (gone.value.status, gone.value.code) == (404, "not_found")


def test_refused_uploads_raise_typed_errors_and_leave_nothing(server, shared_dir):
    with Session(server.url) as session:
        cases = [
            ({"x": np.arange(10.0), "label": np.array(["a"] * 10, dtype=object)}, {}, "invalid_dtype"),
            ({"x": np.arange(10.0), "y": np.arange(9.0)}, {}, "unequal_lengths"),
            ({"x": np.arange(QUOTA // 8 + 1, dtype=np.float64)}, {}, "quota_exceeded"),
            ({"x": np.array([0.0, 2.0, 1.0]), "y": np.zeros(3)}, {"require_sorted_x": True}, "x_not_sorted"),
        ]
        for columns, options, code in cases:
            with pytest.raises(ServerError) as refused:
                session.upload_dataset("refused", columns, **options)
            assert refused.value.code == code and refused.value.status in (400, 413)
            assert refused.value.field
        assert session.datasets() == []
    assert not Dataset.objects.exists()
    assert not list((shared_dir / ".uploads").glob("*")) if (shared_dir / ".uploads").exists() else True


def test_an_upload_resumes_after_the_server_is_killed_in_the_middle(django_db_setup, shared_dir):
    columns = {"x": np.arange(1_000_000, dtype=np.float64), "y": np.random.default_rng(5).normal(size=1_000_000)}
    daphne = DaphneServer(env=server_env(shared_dir)).start()
    try:
        with killed_midway(daphne, lambda: UploadChunk.objects.count() >= 20) as happened, Session(daphne.url) as session:
            dataset = session.upload_dataset("survivor", columns, require_sorted_x=True)
            assert happened()  # the upload went on through a server killed mid-way
        assert dataset.length == 1_000_000
        assert_stored(dataset.id, columns)
    finally:
        daphne.stop()


def test_a_dataset_uploaded_through_one_process_is_listed_appended_and_read_through_others(server, shared_dir):
    columns = signal_columns(50_000)
    with DaphneServer(env=server_env(shared_dir)) as other:
        with Session(server.url) as one, Session(other.url) as two:
            uploaded = one.upload_dataset("shared", {k: v[:40_000] for k, v in columns.items()})
            assert [d.id for d in two.datasets()] == [uploaded.id]
            two.append_dataset("shared", {k: v[40_000:] for k, v in columns.items()})
            assert one.dataset("shared").length == 50_000
    # A third process (not a server) maps the files the servers wrote.
    script = textwrap.dedent(f"""
        import django, os
        os.environ["DJANGO_SETTINGS_MODULE"] = "bokehsite.settings"
        django.setup()
        from datasets import storage
        from datasets.models import Dataset
        dataset = Dataset.objects.get(pk="{uploaded.id}")
        columns = storage.open_columns(dataset)
        levels = storage.summary_levels(dataset, "y")
        print(len(columns["y"]), repr(float(columns["y"].sum())), len(levels))
    """)
    env = {**server_env(shared_dir), "PYTHONPATH": str(ROOT)}
    import os

    result = subprocess.run([sys.executable, "-c", script], env={**os.environ, **env}, capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    rows, total, levels = result.stdout.split()
    assert int(rows) == 50_000 and float(total) == float(columns["y"].sum())
    assert int(levels) == len(summaries.level_lengths(50_000))
    assert_stored(uploaded.id, columns)


def test_the_upload_shows_a_progress_bar_on_a_terminal(server, tmp_path):
    import fcntl
    import os
    import pty
    import struct
    import termios

    script = tmp_path / "upload.py"
    script.write_text(textwrap.dedent(f"""
        import numpy as np
        from bokehsite.client import Session
        with Session({server.url!r}) as session:
            session.upload_dataset("bar", {{"x": np.arange(200_000, dtype=np.float64)}})
        print("done")
    """))
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal has a size
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=terminal, cwd=ROOT)
    os.close(terminal)
    shown = b""
    while True:  # read as it comes: a terminal holds little
        try:
            piece = os.read(controller, 65536)
        except OSError:  # the script closed its end
            break
        if not piece:
            break
        shown += piece
    os.close(controller)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0 and out.strip() == b"done"
    assert b"bar:" in shown and b"1.53M/1.53M" in shown and b"B/s" in shown, shown[-400:]


def test_a_dataset_shows_what_it_holds_in_a_notebook(server):
    with Session(server.url) as session:
        dataset = session.upload_dataset("<tail>", {"t": np.arange(1000, dtype=np.float64), "y & z": np.ones(1000)},
                                         require_sorted_x=True)
        html = dataset._repr_html_()
    assert "<strong>&lt;tail&gt;</strong>: 1,000 rows" in html
    assert "<code>t</code> (x)</td><td>float64</td>" in html and "<code>y &amp; z</code>" in html
    assert "x from 0 to 999" in html
