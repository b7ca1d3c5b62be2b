"""Images: the pyramid of every level and each view checked against brute force over the image's
own pixels (edges of odd sizes, windows partly outside, a 1-pixel image, NaN pixels and all-NaN
blocks; mean and max); uploads, resumed uploads and appends through the API; views of an image
over the document websocket, refreshed when rows are appended on top; bad requests refused."""

import math

import numpy as np
import pytest
from asgiref.sync import sync_to_async
from bokeh.document import Document as BokehDocument
from bokeh.models import ColumnDataSource, Range1d
from bokeh.plotting import figure

from accounts.users import default_user
from bokehsite import protocol
from bokehsite.client.backed import decode_view
from datasets import images, rasters, storage
from datasets.models import Dataset
from documents import bokeh_json, services
from tests.helpers import column_bytes, receive, run, send_chunk
from tests.test_dataset_views import columns_of, connect, next_frame, view

# --- brute force ---------------------------------------------------------------------------------


def block_reference(image: np.ndarray, rows: tuple[int, int], cols: tuple[int, int], by: int, bx: int,
                    reduce: str) -> np.ndarray:
    """``by`` x ``bx`` blocks of image pixels ``rows`` x ``cols`` (end exclusive, clipped to the
    image): the mean of those not NaN (NaN if none), or their max."""
    r0, r1 = rows[0], min(rows[1], image.shape[0])
    c0, c1 = cols[0], min(cols[1], image.shape[1])
    out = np.full((math.ceil((r1 - r0) / by), math.ceil((c1 - c0) / bx)), np.nan)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            block = image[r0 + i * by:min(r0 + (i + 1) * by, r1), c0 + j * bx:min(c0 + (j + 1) * bx, c1)]
            block = block.astype(np.float64)
            finite = block[~np.isnan(block)]
            if len(finite):
                out[i, j] = finite.mean() if reduce == "mean" else finite.max()
    return out


def grouped_reference(image: np.ndarray, rows: tuple[int, int], cols: tuple[int, int], factor: int, by: float,
                      bx: float, reduce: str) -> np.ndarray:
    """A view's pixels by brute force: the window ``rows`` x ``cols`` of the image (its edges on
    level pixels of ``factor`` image pixels), view pixel (i, j) holding the level pixels that
    ``rasters.assign`` gives it, ``by`` x ``bx`` of them a view pixel."""
    (r0, r1), (c0, c1) = rows, cols
    row_groups = rasters.assign(math.ceil((r1 - r0) / factor), by)
    col_groups = rasters.assign(math.ceil((c1 - c0) / factor), bx)
    out = np.full((row_groups[-1] + 1, col_groups[-1] + 1), np.nan)
    for i in range(out.shape[0]):
        low, high = np.flatnonzero(row_groups == i)[[0, -1]]
        for j in range(out.shape[1]):
            left, right = np.flatnonzero(col_groups == j)[[0, -1]]
            block = image[r0 + low * factor:min(r0 + (high + 1) * factor, r1),
                          c0 + left * factor:min(c0 + (right + 1) * factor, c1)].astype(np.float64)
            finite = block[~np.isnan(block)]
            if len(finite):
                out[i, j] = finite.mean() if reduce == "mean" else finite.max()
    return out


def built(tmp_path, image: np.ndarray) -> tuple[np.ndarray, list[rasters.Level]]:
    np.save(tmp_path / "c0.npy", image)
    mapped = np.load(tmp_path / "c0.npy", mmap_mode="r")
    rasters.build(mapped, tmp_path, "c0")
    return mapped, rasters.open_levels(tmp_path, "c0", mapped)


def mean_tolerance(dtype: np.dtype, levels: int) -> float:
    """Stored means are float32, or 16-bit fixed point for 1-byte images (and each level is made
    from the one below)."""
    if np.dtype(dtype).itemsize == 1:
        _, span = rasters._fixed_range(np.dtype(dtype))
        return span / 65535 * (levels + 1)
    return 1e-4


def sample_image(shape: tuple[int, int], dtype: str, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) < 0.3
    if np.dtype(dtype).kind == "f":
        image = rng.normal(100, 30, shape).astype(dtype)
        image[rng.random(shape) < 0.2] = np.nan
        image[:9, :9] = np.nan  # whole blocks of NaN at levels 1 and 2
        return image
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -1000), min(info.max, 1000), shape, endpoint=True).astype(dtype)


SHAPES = [(1, 1), (3, 5), (37, 53), (64, 64), (130, 9)]
DTYPES = ["uint8", "int8", "bool", "uint16", "int32", "int64", "float32", "float64"]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_level_is_the_mean_and_max_of_its_blocks(tmp_path, shape, dtype):
    image = sample_image(shape, dtype)
    _, levels = built(tmp_path, image)
    assert [level.factor for level in levels] == rasters.factors(*shape)
    assert levels[-1].max.shape == (1, 1)
    for index, level in enumerate(levels, start=1):
        f = level.factor
        everything = ((0, shape[0]), (0, shape[1]))
        expected_max = block_reference(image, *everything, f, f, "max")
        got_max = np.asarray(level.max).astype(np.float64)
        np.testing.assert_array_equal(got_max, expected_max)
        assert level.max.dtype == image.dtype.newbyteorder("<")
        expected_mean = block_reference(image, *everything, f, f, "mean")
        got_mean = rasters.decode_mean(np.asarray(level.mean), image.dtype)
        np.testing.assert_allclose(got_mean, expected_mean, rtol=1e-5, atol=mean_tolerance(image.dtype, index))


def test_the_pyramid_takes_at_most_a_third_of_the_image(tmp_path):
    for dtype in DTYPES:
        image = sample_image((512, 384), dtype)
        built(tmp_path, image)
        pyramid = sum(p.stat().st_size for p in tmp_path.glob("c0.*[0-9].npy"))
        raw = (tmp_path / "c0.npy").stat().st_size
        assert pyramid == rasters.pyramid_bytes(image.dtype, *image.shape)
        assert pyramid <= raw / 3, dtype
        for path in tmp_path.iterdir():
            path.unlink()


def check_view(image: np.ndarray, levels, extent, window, width: int, height: int, reduce: str) -> rasters.ImageView:
    """A view of ``window`` and what brute force says it shows."""
    x0, x1, y0, y1 = window
    got = rasters.view(image, levels, extent, x0, x1, y0, y1, width, height, reduce)
    rows, cols = image.shape
    ex0, ex1, ey0, ey1 = extent
    dx, dy = (ex1 - ex0) / cols, (ey1 - ey0) / rows
    if got.image.size == 0:  # the window misses the image
        assert x1 <= ex0 or x0 >= ex1 or y1 <= ey0 or y0 >= ey1
        return got
    f = 1 if got.level == 0 else levels[got.level - 1].factor
    # The window the view covers, in image pixels: whole level pixels, clipped to the image.
    c0, c1 = round((got.x0 - ex0) / dx), round((got.x1 - ex0) / dx)
    r0, r1 = round((got.y0 - ey0) / dy), round((got.y1 - ey0) / dy)
    assert c0 % f == 0 and r0 % f == 0 and (c1 % f == 0 or c1 == cols) and (r1 % f == 0 or r1 == rows)
    # It covers what is visible of the image.
    assert got.x0 <= max(x0, ex0) + 1e-9 * (ex1 - ex0) and got.x1 >= min(x1, ex1) - 1e-9 * (ex1 - ex0)
    assert got.y0 <= max(y0, ey0) + 1e-9 * (ey1 - ey0) and got.y1 >= min(y1, ey1) - 1e-9 * (ey1 - ey0)
    # Its pixel is no larger than a screen pixel, and it has no more pixels than the screen shows
    # (but for the partial ones at each edge).
    by, bx = got.step
    assert by >= 1 and bx >= 1
    assert got.image.shape[1] <= width + 2 and got.image.shape[0] <= height + 2
    expected = grouped_reference(image, (r0, r1), (c0, c1), f, by, bx, reduce)
    assert got.image.shape == expected.shape
    assert got.pixels == (r1 - r0) * (c1 - c0)
    if got.level == 0 and got.step == (1, 1):  # the image's own pixels, unchanged
        np.testing.assert_array_equal(got.image, image[r0:r1, c0:c1])
        assert got.image.dtype == image.dtype
    elif reduce == "max":
        np.testing.assert_array_equal(got.image.astype(np.float64), expected)
    else:
        np.testing.assert_allclose(got.image, expected, rtol=1e-5, atol=mean_tolerance(image.dtype, got.level))
    return got


WINDOWS = [
    (0, 1, 0, 1),                  # the whole image
    (-0.5, 1.5, -0.25, 1.25),      # more than the whole
    (0.31, 0.77, 0.12, 0.5),       # inside
    (-0.2, 0.3, 0.8, 1.3),         # across a corner
    (0.9, 1.4, -1, 2),             # across an edge
    (0.5, 0.5 + 1e-4, 0.5, 0.5 + 1e-4),  # far closer than 1:1
    (2, 3, 0, 1),                  # beside it
]


@pytest.mark.parametrize("reduce", ["mean", "max"])
@pytest.mark.parametrize("dtype", ["uint8", "float32", "int64", "bool"])
@pytest.mark.parametrize("shape", [(1, 1), (301, 457), (1000, 77)])
def test_views_are_the_blocks_brute_force_finds(tmp_path, shape, dtype, reduce):
    image = sample_image(shape, dtype, seed=11)
    mapped, levels = built(tmp_path, image)
    extent = (10.0, 20.0, -5.0, 0.0)
    seen_levels = set()
    for wx0, wx1, wy0, wy1 in WINDOWS:
        window = (10 + 10 * wx0, 10 + 10 * wx1, -5 + 5 * wy0, -5 + 5 * wy1)
        for width, height in ((1, 1), (37, 23), (200, 100), (600, 300)):
            got = check_view(mapped, levels, extent, window, width, height, reduce)
            seen_levels.add(got.level)
    if shape != (1, 1):
        assert len(seen_levels) >= 3  # the image itself and reduced levels both served


def test_at_one_to_one_a_view_is_the_stored_pixels(tmp_path):
    image = sample_image((500, 800), "uint16")
    mapped, levels = built(tmp_path, image)
    got = rasters.view(mapped, levels, (0, 800, 0, 500), 100, 400, 50, 250, 300, 200, "mean")
    assert (got.level, got.step) == (0, (1, 1))
    np.testing.assert_array_equal(got.image, image[50:250, 100:400])
    # Off the pixel grid by half a pixel: the pixels it touches, whole, still unchanged.
    got = rasters.view(mapped, levels, (0, 800, 0, 500), 100.5, 400.5, 50.5, 250.5, 300, 200, "max")
    assert (got.level, got.step, got.x0, got.x1) == (0, (1, 1), 100, 401)
    np.testing.assert_array_equal(got.image, image[50:251, 100:401])


def test_a_single_bright_pixel_survives_max_and_not_mean(tmp_path):
    image = np.zeros((2000, 3000), dtype=np.uint8)
    image[1234, 2345] = 255
    mapped, levels = built(tmp_path, image)
    brightest = rasters.view(mapped, levels, (0, 3000, 0, 2000), 0, 3000, 0, 2000, 300, 200, "max")
    assert brightest.level > 0 and brightest.image.max() == 255
    average = rasters.view(mapped, levels, (0, 3000, 0, 2000), 0, 3000, 0, 2000, 300, 200, "mean")
    assert average.image.max() < 5  # 255 over a block of at least 64 pixels


def test_appended_rows_extend_the_pyramid_as_a_fresh_build_would(tmp_path):
    image = sample_image((45, 70), "float32")
    more = sample_image((300, 70), "float32", seed=5)
    grown = tmp_path / "grown"
    grown.mkdir()
    np.save(grown / "c0.npy", image)
    rasters.build(np.load(grown / "c0.npy", mmap_mode="r"), grown, "c0")
    done = 45
    for size in (1, 3, 5, 11, 27, 253):
        block = more[done - 45:done - 45 + size]
        path = grown / "c0.npy"
        storage.set_rows(path, np.dtype("<f4"), done + size, block, at=done, width=70)
        rasters.build(np.load(path, mmap_mode="r"), grown, "c0", done)
        done += size
        whole = np.concatenate([image, more[:done - 45]])
        grown_levels = rasters.open_levels(grown, "c0", np.load(path, mmap_mode="r"))
        fresh = tmp_path / f"fresh{done}"
        fresh.mkdir()
        _, fresh_levels = built(fresh, whole)
        assert len(grown_levels) == len(fresh_levels)
        for a, b in zip(grown_levels, fresh_levels):
            np.testing.assert_array_equal(np.asarray(a.max), np.asarray(b.max))
            np.testing.assert_allclose(np.asarray(a.mean), np.asarray(b.mean), rtol=1e-6)
            np.testing.assert_allclose(np.asarray(a.count), np.asarray(b.count))


# --- through the server --------------------------------------------------------------------------

pytestmark_db = pytest.mark.django_db(transaction=True)


@pytest.fixture
def small_chunks(dataset_dir, settings):
    settings.BOKEHSITE_DATASET_CHUNK_BYTES = 4096


def start_image(api, name: str, image: np.ndarray, extent=(0.0, 1.0, 0.0, 1.0)):
    return api.post("/api/datasets/uploads/", {
        "name": name, "columns": [{"name": "image", "dtype": image.dtype.name, "length": image.shape[0]}],
        "image": {"width": image.shape[1], "extent": list(extent)}}, format="json")


def upload_image(api, name: str, image: np.ndarray, extent=(0.0, 1.0, 0.0, 1.0)) -> Dataset:
    started = start_image(api, name, image, extent)
    assert started.status_code == 201, started.content
    upload = started.json()
    data = column_bytes(image)
    for offset in range(0, len(data), upload["chunk_bytes"]):
        assert send_chunk(api, upload, "image", data, offset).status_code == 200
    finished = api.post(f"/api/datasets/uploads/{upload['id']}/finish/")
    assert finished.status_code == 201, finished.content
    return Dataset.objects.get(pk=finished.json()["id"])


@pytest.mark.django_db(transaction=True)
def test_an_image_upload_resumes_and_finishes_with_its_pyramid(api, small_chunks):
    image = sample_image((101, 67), "int16")
    started = start_image(api, "terrain", image, (0, 67, 0, 101))
    upload = started.json()
    data = column_bytes(image)
    assert upload["columns"][0]["bytes"] == len(data)
    offsets = list(range(0, len(data), upload["chunk_bytes"]))
    for offset in offsets[::2]:  # half of it, then the connection drops
        assert send_chunk(api, upload, "image", data, offset).status_code == 200
    early = api.post(f"/api/datasets/uploads/{upload['id']}/finish/")
    assert (early.status_code, early.json()["error"]) == (409, "upload_incomplete")
    status = api.get(f"/api/datasets/uploads/{upload['id']}/").json()
    assert status["columns"][0]["missing"] == offsets[1::2]
    for offset in status["columns"][0]["missing"]:
        assert send_chunk(api, upload, "image", data, offset).status_code == 200
    finished = api.post(f"/api/datasets/uploads/{upload['id']}/finish/")
    assert finished.status_code == 201, finished.content
    info = finished.json()
    assert (info["kind"], info["length"], info["width"], info["extent"]) == ("image", 101, 67, [0, 67, 0, 101])
    dataset = Dataset.objects.get(pk=info["id"])
    np.testing.assert_array_equal(storage.open_columns(dataset)["image"], image)
    assert info["bytes"] == storage.disk_bytes(storage.directory(dataset))
    assert info["bytes"] == rasters.image_bytes(image.dtype.newbyteorder("<"), 101, 67)
    assert [level.factor for level in storage.image_levels(dataset)] == [4, 8, 16, 32, 64, 128]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("body, field", [
    ({"columns": [{"name": "image", "dtype": "uint8", "length": 10}, {"name": "b", "dtype": "uint8", "length": 10}],
      "image": {"width": 5, "extent": [0, 1, 0, 1]}}, "columns"),
    ({"columns": [{"name": "image", "dtype": "datetime64[ms]", "length": 10}],
      "image": {"width": 5, "extent": [0, 1, 0, 1]}}, "columns[0].dtype"),
    ({"columns": [{"name": "image", "dtype": "uint8", "length": 10}],
      "image": {"width": 5, "extent": [1, 0, 0, 1]}}, "image.extent"),
    ({"columns": [{"name": "image", "dtype": "uint8", "length": 10}],
      "image": {"width": 0, "extent": [0, 1, 0, 1]}}, "image"),
    ({"columns": [{"name": "image", "dtype": "uint8", "length": 1000}],
      "image": {"width": 1000, "extent": [0, 1, 0, 1]}}, "columns"),
])
def test_an_image_upload_that_cannot_be_is_refused_naming_the_field(api, dataset_dir, settings, body, field):
    settings.BOKEHSITE_DATASET_MAX_BYTES = 100_000
    answer = api.post("/api/datasets/uploads/", {"name": "bad", **body}, format="json")
    assert answer.status_code in (400, 413), answer.content
    assert answer.json()["field"].startswith(field), answer.json()
    assert not Dataset.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_rows_appended_to_an_image_go_on_top(api, dataset_dir):
    from bokeh.core.serialization import Buffer

    from bokehsite import wire

    image = sample_image((30, 20), "uint8")
    dataset = upload_image(api, "spectrogram", image, (0, 20, 0, 30))
    more = sample_image((7, 20), "uint8", seed=9)
    body = wire.pack({"columns": [{"name": "image", "dtype": "uint8"}]}, [Buffer("0", column_bytes(more))])
    answer = api.post(f"/api/datasets/{dataset.pk}/rows/", body, content_type=wire.CONTENT_TYPE)
    assert answer.status_code == 200, answer.content
    assert (answer.json()["length"], answer.json()["extent"]) == (37, [0, 20, 0, 37])
    dataset.refresh_from_db()
    whole = np.concatenate([image, more])
    np.testing.assert_array_equal(storage.open_columns(dataset)["image"], whole)
    for level in storage.image_levels(dataset):
        np.testing.assert_array_equal(np.asarray(level.max).astype(float),
                                      block_reference(whole, (0, 37), (0, 20), level.factor, level.factor, "max"))
    # Rows that are not whole rows of the image's dtype.
    for spec, data, field in ((["uint8"], column_bytes(more[:, :7]), "columns.image"),
                              (["int16"], column_bytes(more.astype(np.int16)), "columns.image")):
        body = wire.pack({"columns": [{"name": "image", "dtype": spec[0]}]}, [Buffer("0", data)])
        answer = api.post(f"/api/datasets/{dataset.pk}/rows/", body, content_type=wire.CONTENT_TYPE)
        assert (answer.status_code, answer.json()["field"]) == (400, field), answer.content


def image_document(owner, dataset: Dataset, reduce: str = "mean", title: str = "picture"):
    source = ColumnDataSource(data={"image": [], "x": [], "y": [], "dw": [], "dh": []},
                              tags=[protocol.dataset_mark(dataset.pk, "image", "x", "y", dataset.extent, reduce=reduce)])
    p = figure(width=600, height=300, x_range=Range1d(0, 1), y_range=Range1d(0, 1))
    p.image(image="image", x="x", y="y", dw="dw", dh="dh", source=source, palette="Greys256")
    doc = BokehDocument()
    doc.add_root(p)
    return services.create_document(owner, title, *bokeh_json.dump(doc)), source.id


@pytest.mark.django_db(transaction=True)
def test_image_views_over_the_websocket_are_the_askers_and_follow_appends(api, dataset_dir):
    image = sample_image((400, 300), "float32")
    dataset = upload_image(api, "scan", image, (0, 300, 0, 400))
    document, source_id = image_document(default_user(), dataset, "max")
    levels = storage.image_levels(dataset)

    async def scenario():
        asker, other, below = await connect(document.id), await connect(document.id), await connect(document.id)
        await asker.send_json_to(view(1, source_id, 0, 300, width=60, height=80, y0=0, y1=400))
        message, buffers = await next_frame(asker)
        assert (message["type"], message["id"], message["kind"]) == ("view_data", 1, "raster")
        got = columns_of(message, buffers)["image"]
        expected = rasters.view(storage.open_columns(dataset)["image"], levels, (0, 300, 0, 400), 0, 300, 0, 400,
                                60, 80, "max")
        np.testing.assert_array_equal(got, expected.image)
        assert (message["x0"], message["x1"], message["y0"], message["y1"]) == (0, 300, 0, 400)
        assert message["rows"] == 400 * 300
        # 1:1 near the top: the stored pixels.
        await asker.send_json_to(view(2, source_id, 10, 110, width=100, height=50, y0=350, y1=400))
        message, buffers = await next_frame(asker)
        np.testing.assert_array_equal(columns_of(message, buffers)["image"], image[350:400, 10:110])
        await below.send_json_to(view(3, source_id, 0, 300, width=100, height=50, y0=0, y1=100))
        assert (await next_frame(below))[0]["id"] == 3
        assert await other.receive_nothing(0.3)  # a view is the asker's alone
        more = sample_image((20, 300), "float32", seed=4)
        await sync_to_async(images.append)(dataset, more)
        again, buffers = await next_frame(asker)  # its range reaches the top, where the rows went
        assert again["id"] == 2 and again["y1"] == 400
        await asker.send_json_to(view(4, source_id, 10, 110, width=100, height=70, y0=350, y1=420))
        message, buffers = await next_frame(asker)
        np.testing.assert_array_equal(columns_of(message, buffers)["image"],
                                      np.concatenate([image, more])[350:420, 10:110])
        assert await below.receive_nothing(0.5)  # its range does not reach them
        for socket in (asker, other, below):
            await socket.disconnect()

    run(scenario)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("dtype", ["uint8", "int8", "bool"])
def test_a_one_byte_images_means_travel_as_16_bit_steps_that_read_back_as_the_view(api, dataset_dir, dtype):
    image = sample_image((400, 300), dtype)
    dataset = upload_image(api, "scan", image, (0, 300, 0, 400))
    document, source_id = image_document(default_user(), dataset, "mean")
    stored, levels = storage.open_columns(dataset)["image"], storage.image_levels(dataset)
    low, span = rasters._fixed_range(np.dtype(dtype))

    async def scenario():
        socket = await connect(document.id)
        # 2.5 image pixels a screen pixel (means of the image itself), then level 1 as stored
        for request_id, (width, height) in enumerate([(120, 160), (75, 100)], start=1):
            await socket.send_json_to(view(request_id, source_id, 0, 300, width=width, height=height, y0=0, y1=400))
            message, buffers = await next_frame(socket)
            expected = rasters.view(stored, levels, (0, 300, 0, 400), 0, 300, 0, 400, width, height, "mean")
            assert message["fixed"] == {"low": low, "step": span / 65535}
            assert columns_of(message, buffers)["image"].dtype == np.uint16  # half the bytes of float32
            got = decode_view(message, buffers)["image"]
            assert got.dtype == np.float32 and got.shape == expected.image.shape
            if request_id == 1:
                assert expected.level == 0 and expected.step == (2.5, 2.5)
                # within half a step, and float32's rounding of the view and of what is read back
                np.testing.assert_allclose(got, expected.image, rtol=0, atol=span / 65535 / 2 + 1e-4)
            else:
                assert expected.level == 1 and expected.step == (1, 1)
                np.testing.assert_array_equal(got, expected.image)
        # at 1:1, the stored pixels themselves, with nothing to read back
        await socket.send_json_to(view(3, source_id, 0, 100, width=100, height=50, y0=0, y1=50))
        message, buffers = await next_frame(socket)
        assert "fixed" not in message
        np.testing.assert_array_equal(decode_view(message, buffers)["image"], image[:50, :100].view(
            np.uint8) if dtype == "bool" else image[:50, :100])
        await socket.disconnect()

    run(scenario)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("request_fields, code, field", [
    ({"x0": 10, "x1": 5}, "invalid_view", "x1"),
    ({"y0": 5, "y1": 1}, "invalid_view", "y1"),
    ({"width": 1_000_000}, "invalid_view", "width"),
    ({"height": 10_000}, "invalid_view", "height"),
    ({"source": "p99999"}, "unknown_source", "source"),
    ({"y0": None, "y1": None}, "invalid_view", "y0"),
])
def test_a_bad_image_view_request_gets_an_error(api, dataset_dir, request_fields, code, field):
    dataset = upload_image(api, "bad-views", sample_image((10, 10), "uint8"))
    document, source_id = image_document(default_user(), dataset)

    async def scenario():
        socket = await connect(document.id)
        fields = view(9, source_id, 0, 1, y0=0, y1=1) | request_fields
        await socket.send_json_to({k: v for k, v in fields.items() if v is not None})
        error = await receive(socket)
        assert (error["type"], error["code"], error["field"], error["id"]) == ("error", code, field, 9)
        await socket.send_json_to({"type": "ping", "id": "still"})
        assert await receive(socket) == {"type": "pong", "id": "still"}
        await socket.disconnect()

    run(scenario)


@pytest.mark.django_db(transaction=True)
def test_a_mark_whose_reduction_is_unknown_backs_nothing(api, dataset_dir):
    dataset = upload_image(api, "odd-mark", sample_image((10, 10), "uint8"))
    tag = protocol.dataset_mark(dataset.pk, "image", "x", "y", dataset.extent, reduce="mean") | {"reduce": "median"}
    assert protocol.read_mark([tag]) is None
    assert protocol.read_mark([tag | {"reduce": "max"}])["reduce"] == "max"
    answer = api.get(f"/api/datasets/{dataset.pk}/view/?kind=image&reduce=median&width=10&height=10")
    assert (answer.status_code, answer.json()["field"]) == (400, "reduce")
    answer = api.get(f"/api/datasets/{dataset.pk}/view/?kind=line&width=10&height=10",
                     HTTP_ACCEPT="application/vnd.bokehsite.bundle")
    assert (answer.status_code, answer.json()["field"]) == (400, "kind")
