"""Images from the Python client, against real Daphne processes sharing a data directory: NumPy
arrays and xarray DataArrays uploaded in chunks (resumed through a server killed mid-way), rows
appended on top, ``server_source(image, "image")``, and a view of it served by another process
(on the Redis channel layer, refreshed there by rows appended through the first)."""

import asyncio
import os

import numpy as np
import pytest
from bokeh.document import Document as BokehDocument

from bokehsite import protocol
from bokehsite.client import ServerError, Session, figure, server_source
from bokehsite.client.images import Image
from datasets import storage
from datasets.models import Dataset, UploadChunk
from tests.helpers import killed_midway
from tests.servers import DaphneServer
from tests.test_dataset_client import _same_directory, server, server_env  # noqa: F401 (fixtures)
from tests.test_dataset_views_processes import ask

pytestmark = [pytest.mark.daphne, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("shared-images")


def stored(image_id: str) -> np.ndarray:
    return np.asarray(storage.open_columns(Dataset.objects.get(pk=image_id))["image"])


def test_upload_image_sends_a_2d_array_in_chunks_and_append_puts_rows_on_top(server):
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 4000, (300, 250)).astype(np.uint16)  # about 2 chunks
    with Session(server.url) as session:
        image = session.upload_image("terrain", pixels, x=(-10, 15), y=(0, 30))
        assert isinstance(image, Image)
        assert (image.shape, image.dtype, image.extent) == ((300, 250), "uint16", (-10, 15, 0, 30))
        assert session.dataset("terrain") == image and isinstance(session.dataset("terrain"), Image)
        more = rng.integers(0, 4000, (20, 250)).astype(np.uint16)
        image.append(more)
        assert (image.shape, image.extent) == ((320, 250), (-10, 15, 0, 32))
        session.append_image("terrain", more[:5])
        assert image.refresh().shape == (325, 250)
        np.testing.assert_array_equal(stored(image.id), np.concatenate([pixels, more, more[:5]]))
        with pytest.raises(ValueError, match="250 pixels wide"):
            image.append(more[:, :10])
        with pytest.raises(ServerError) as wrong:
            image.append(more.astype(np.int32))
        assert (wrong.value.status, wrong.value.code, wrong.value.field) == (400, "invalid_dtype", "columns.image")
        with pytest.raises(ValueError, match="2-D"):
            session.upload_image("flat", np.zeros(10))
        with pytest.raises(ServerError) as big:
            session.upload_image("huge", np.zeros((3000, 3000)))  # over the quota
        assert big.value.code == "quota_exceeded"
        session.delete_dataset("terrain")
    assert not Dataset.objects.exists()


def test_an_xarray_dataarray_gives_its_extent_and_a_decreasing_y_is_flipped(server):
    xr = pytest.importorskip("xarray")
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    array = xr.DataArray(values, dims=("lat", "lon"), coords={"lat": [30.0, 20.0, 10.0], "lon": [0.5, 1.5, 2.5, 3.5]})
    with Session(server.url) as session:
        image = session.upload_image("map", array)
        assert (image.shape, image.extent) == ((3, 4), (0, 4, 5, 35))
        np.testing.assert_array_equal(stored(image.id), values[::-1])  # row 0 (lat 10) at the bottom
        session.delete_dataset("map")


def test_an_image_upload_resumes_after_the_server_is_killed_in_the_middle(django_db_setup, shared_dir):
    pixels = np.random.default_rng(5).normal(size=(1000, 1000))  # 8 MB: 122 chunks
    daphne = DaphneServer(env=server_env(shared_dir)).start()
    try:
        with killed_midway(daphne, lambda: UploadChunk.objects.count() >= 20) as happened, Session(daphne.url) as session:
            image = session.upload_image("survivor", pixels)
            assert happened()
            np.testing.assert_array_equal(stored(image.id), pixels)
            session.delete_dataset("survivor")
    finally:
        daphne.stop()


def test_an_image_view_is_served_by_another_process(server, shared_dir):
    rng = np.random.default_rng(8)
    pixels = rng.integers(0, 255, (1200, 900)).astype(np.uint8)
    env = server_env(shared_dir) | ({"REDIS_URL": os.environ["REDIS_URL"]} if "REDIS_URL" in os.environ else {})
    with DaphneServer(env=env) as first, DaphneServer(env=env) as second, Session(first.url) as session:
        image = session.upload_image("photo", pixels, x=(0, 900), y=(0, 1200))
        source = server_source(image, "image", reduce="max")
        first_view = source.data["image"][0]
        assert first_view.shape[0] <= 600 + 2 and first_view.dtype == np.uint8
        assert (source.data["x"], source.data["dw"], source.data["y"], source.data["dh"]) == ([0], [900], [0], [1200])
        with pytest.raises(ValueError, match="reduce"):
            server_source(image, "image", reduce="median")
        p = figure(width=500, height=400)
        p.image(image="image", x="x", y="y", dw="dw", dh="dh", source=source, palette="Greys256")
        doc = BokehDocument()
        doc.add_root(p)
        session.use_doc("photo")
        document_id = session.push(doc)["id"]
        assert (p.x_range.start, p.x_range.end, p.y_range.start, p.y_range.end) == (0, 900, 0, 1200)

        request = protocol.View(1, source.id, 100, 400, 300, 300, 1000, 1300)  # 1:1, over the top edge
        if "REDIS_URL" not in os.environ:
            [view] = asyncio.run(ask(second.url, document_id, request))
        else:  # rows appended through the first process reach the view held on the second
            more = rng.integers(0, 255, (50, 900)).astype(np.uint8)
            view, refreshed = asyncio.run(ask(second.url, document_id, request,
                                              lambda: asyncio.to_thread(image.append, more)))
            assert (refreshed.id, refreshed.kind, refreshed.y1) == (1, "raster", 1250)
    assert (view.kind, view.x0, view.x1, view.y0, view.y1) == ("raster", 100, 400, 1000, 1200)
    assert view.rows == 300 * 200
