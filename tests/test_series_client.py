"""Many series from the Python client against a real Daphne process: 1,001 columns uploaded
through the client, drawn with ``server_source(dataset, "lines", ...)``, and viewed over the
server's websocket (the density image zoomed out, the lines zoomed in)."""

import asyncio

import numpy as np
import pytest
import websockets
from bokeh.document import Document as BokehDocument

from bokehsite import protocol
from bokehsite.client import ServerError, Session, figure, server_source
from datasets import storage
from datasets.models import Dataset
from tests.servers import DaphneServer, database_url

pytestmark = [pytest.mark.daphne, pytest.mark.django_db(transaction=True)]

ROWS, SERIES = 2000, 1000


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("series-datasets")


@pytest.fixture(scope="module")
def server(django_db_setup, shared_dir):
    from django.conf import settings

    env = {"DATABASE_URL": database_url(settings.DATABASES["default"]), "BOKEHSITE_DATASET_DIR": str(shared_dir),
           "BOKEHSITE_DATASET_CHUNK_BYTES": str(64 * 1024)}
    with DaphneServer(env=env) as daphne:
        yield daphne


@pytest.fixture(autouse=True)
def _same_directory(settings, shared_dir):
    settings.BOKEHSITE_DATASET_DIR = shared_dir


def many_series() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(4)
    columns = {"t": np.arange(ROWS, dtype=np.float64)}
    walks = np.cumsum(rng.normal(size=(SERIES, ROWS)), axis=1)
    for i in range(SERIES):
        columns[f"s{i}"] = walks[i].astype(np.float32) if i % 3 == 1 else walks[i]
    return columns


async def ask(url, document_id, source_id, request: protocol.View) -> protocol.ViewData:
    async with websockets.connect(protocol.url(url, document_id), max_size=None) as socket:
        protocol.decode(await socket.recv(), sender=protocol.SERVER)  # hello
        await socket.send(request.encode())
        while True:
            message, buffers = protocol.decode(await asyncio.wait_for(socket.recv(), 30), sender=protocol.SERVER)
            if isinstance(message, protocol.ViewData):
                return message, buffers


def test_a_thousand_series_upload_and_are_viewed_as_density_then_lines(server):
    from bokehsite.client.backed import decode_view

    columns = many_series()
    names = [f"s{i}" for i in range(SERIES)]
    with Session(server.url) as session:
        dataset = session.upload_dataset("many", columns, x="t", require_sorted_x=True)
        assert len(dataset.columns) == SERIES + 1 and dataset.length == ROWS
        stored = storage.open_columns(Dataset.objects.get(pk=dataset.id))
        for name in ("t", "s0", "s1", f"s{SERIES - 1}"):
            np.testing.assert_array_equal(stored[name], columns[name])

        source = server_source(dataset, "lines", x="t", y=names)
        mark = protocol.read_mark(source.tags)
        assert mark["y"] == names and mark["kind"] == "lines"
        assert source.data == {"xs": [], "ys": [], "series": []}  # 2M points: the page asks for its image
        p = figure(width=600, height=300)
        p.multi_line(xs="xs", ys="ys", source=source)
        doc = BokehDocument()
        doc.add_root(p)
        session.use_doc("many series")
        info = session.push(doc)
        x0, x1, y0, y1 = mark["extent"]

        whole, buffers = asyncio.run(ask(server.url, info["id"], source.id, protocol.View(1, source.id, x0, x1, 600, 300, y0, y1)))
        assert (whole.kind, whole.rows) == ("image", ROWS)
        image = decode_view(whole.to_json(), buffers)["image"]
        assert image.shape == (300, 600) and image.max() <= SERIES
        assert image.sum(axis=0).min() >= SERIES  # every series passes through every pixel column

        deep, buffers = asyncio.run(ask(server.url, info["id"], source.id, protocol.View(2, source.id, 1000, 1099, 600, 300, y0, y1)))
        assert (deep.kind, deep.rows) == ("lines", 100)
        lines = decode_view(deep.to_json(), buffers)
        assert lines["series"] == names and len(lines["xs"]) == len(lines["ys"]) == SERIES
        np.testing.assert_array_equal(lines["xs"][7], np.arange(999, 1101, dtype=float))
        np.testing.assert_array_equal(lines["ys"][7], columns["s7"][999:1101].astype(float))

        # A few series, few points: the source holds their lines from the start.
        few = server_source(dataset, "lines", x="t", y=["s2", "s1"])
        assert few.data["series"] == ["s2", "s1"] and len(few.data["xs"]) == 2
        np.testing.assert_array_equal(few.data["ys"][1], columns["s1"].astype(float))


def test_bad_lines_sources_are_refused_with_clear_errors(server):
    with Session(server.url) as session:
        dataset = session.upload_dataset("few", {"t": np.arange(10.0), "a": np.arange(10.0)}, x="t")
        with pytest.raises(ValueError, match="no columns 'nope'"):
            server_source(dataset, "lines", x="t", y=["a", "nope"])
        with pytest.raises(ValueError, match="at most 4096"):
            server_source(dataset, "lines", x="t", y=["a"] * (protocol.MAX_SERIES + 1))
        with pytest.raises(ValueError, match="a list"):
            server_source(dataset, "lines", x="t", y="a")
        backwards = session.upload_dataset("backwards", {"t": np.arange(10.0)[::-1].copy(), "a": np.arange(10.0)}, x="t")
        with pytest.raises(ServerError) as refused:
            server_source(backwards, "lines", x="t", y=["a"])
        assert (refused.value.status, refused.value.field) == (400, "y") and "sorted" in str(refused.value)
