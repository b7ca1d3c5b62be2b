"""Views of dataset-backed sources over the document websocket, through the real ASGI application:
each connection gets its own view of what it asks for, read-only viewers too, checked against
the aggregation computed directly; refused requests get an error and the connection stays open;
rows appended reach the views that cover them; nothing of a view is stored or broadcast."""

import json

import numpy as np
import pytest
from asgiref.sync import sync_to_async
from bokeh.core.serialization import Deserializer, Serialized
from bokeh.document import Document as BokehDocument
from bokeh.models import ColumnDataSource, Range1d
from bokeh.plotting import figure

from accounts.users import default_user
from bokehsite import protocol, wire
from datasets import aggregation, services as dataset_services, storage
from datasets.models import Dataset
from documents import bokeh_json, services
from documents.frames import sign_frame_token
from documents.models import Event, Visibility
from tests.conftest import token_client
from tests.helpers import line_document, open_socket, receive, run, upload_dataset

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = 50_000


def line_columns(n: int = ROWS) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    y = np.cumsum(rng.normal(size=n))
    y[100:130] = np.nan
    return {"x": np.arange(n, dtype=np.float64), "y": y}


def points_columns(n: int = ROWS) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(8)
    return {"x": rng.normal(size=n), "y": rng.normal(size=n)}


@pytest.fixture(autouse=True)
def _whole_columns_a_chunk(dataset_dir, settings):
    settings.BOKEHSITE_DATASET_CHUNK_BYTES = 4 * 1024 * 1024


def stored_dataset(api, name: str, columns: dict[str, np.ndarray], **options) -> Dataset:
    answer = upload_dataset(api, name, columns, **options)
    assert answer.status_code == 201, answer.content
    return Dataset.objects.get(pk=answer.json()["id"])


def backed_document(owner, dataset: Dataset, kind: str = "line", title: str = "backed"):
    """A stored document drawing ``dataset`` through a source marked as backed by it (empty here:
    what it holds first does not matter to the views)."""
    source = ColumnDataSource(data={"x": [], "y": []}, tags=[protocol.dataset_mark(dataset.pk, kind, "x", "y")])
    p = figure(width=600, height=300, x_range=Range1d(0, 1), y_range=Range1d(0, 1))
    (p.line if kind == "line" else p.scatter)("x", "y", source=source)
    doc = BokehDocument()
    doc.add_root(p)
    return services.create_document(owner, title, *bokeh_json.dump(doc)), source.id


@pytest.fixture
def line(api, dataset_dir):
    dataset = stored_dataset(api, "walk", line_columns(), require_sorted_x=True)
    document, source_id = backed_document(default_user(), dataset)
    return dataset, document, source_id


def columns_of(message: dict, buffers) -> dict[str, np.ndarray]:
    return Deserializer().deserialize(Serialized(message["data"], buffers))


async def next_frame(socket, timeout: float = 10):
    raw = await socket.receive_from(timeout)
    return wire.unpack(raw) if isinstance(raw, bytes) else (json.loads(raw), [])


async def connect(document_id, headers=((b"host", b"localhost"), (b"origin", b"http://localhost"))):
    socket, hello = await open_socket(protocol.path(document_id), list(headers))
    assert hello["type"] == "hello", hello
    return socket


def view(request_id, source, x0, x1, width=600, height=300, y0=-1e3, y1=1e3, **extra):
    return {"type": "view", "id": request_id, "source": source, "x0": x0, "x1": x1, "width": width,
            "height": height, "y0": y0, "y1": y1, **extra}


def test_a_line_view_is_the_m4_view_of_the_range_and_only_the_asker_gets_it(line):
    dataset, document, source_id = line
    columns = storage.open_columns(dataset)
    expected = aggregation.line_view(columns["x"], columns["y"], storage.summary_levels(dataset, "y"), 0, ROWS, 600)

    async def scenario():
        asker, other = await connect(document.id), await connect(document.id)
        await other.send_json_to({"type": "sync", "version": 1})
        await asker.send_json_to(view(1, source_id, 0, ROWS))
        message, buffers = await next_frame(asker)
        assert (message["type"], message["id"], message["source"], message["kind"]) == ("view_data", 1, source_id, "line")
        assert message["rows"] == ROWS
        got = columns_of(message, buffers)
        np.testing.assert_array_equal(got["x"], expected.x)
        np.testing.assert_array_equal(got["y"], expected.y)
        assert len(got["x"]) <= 4 * 600 + 2
        # A deep zoom: the rows themselves, with one outside each edge.
        await asker.send_json_to(view(2, source_id, 1000.5, 1100.5))
        message, buffers = await next_frame(asker)
        assert message["kind"] == "raw" and message["rows"] == 100
        np.testing.assert_array_equal(columns_of(message, buffers)["x"], np.arange(1000, 1102, dtype=float))
        assert await other.receive_nothing(0.3)  # a view is the asker's alone
        await asker.disconnect()
        await other.disconnect()

    run(scenario)
    assert not Event.objects.exists()  # nothing of it was stored
    assert services.current_version(document) == 1


def test_a_read_only_viewer_gets_views_too(line, settings):
    dataset, document, source_id = line
    document.visibility = Visibility.PUBLIC
    document.save()
    token = sign_frame_token(document, "read")

    async def scenario():
        socket, hello = await open_socket(protocol.path(document.id) + f"?frame_token={token}", [(b"origin", b"null")])
        assert hello["role"] == "read"
        await socket.send_json_to(view(5, source_id, 10, 20_000, width=300))
        message, _ = await next_frame(socket)
        assert (message["type"], message["id"], message["kind"]) == ("view_data", 5, "line")
        await socket.disconnect()

    run(scenario)


@pytest.mark.parametrize("request_fields, code, field", [
    ({"x0": 10, "x1": 5}, "invalid_view", "x1"),
    ({"x0": -1e308, "x1": 1e308}, "invalid_view", "x1"),
    ({"width": 0}, "bad_message", "width"),
    ({"width": 1_000_000}, "invalid_view", "width"),
    ({"height": 10_000}, "invalid_view", "height"),
    ({"y0": 5, "y1": 1}, "invalid_view", "y1"),
    ({"x0": "0"}, "bad_message", "x0"),
    ({"source": "p99999"}, "unknown_source", "source"),
])
def test_a_bad_view_request_gets_an_error_and_the_connection_stays_open(line, request_fields, code, field):
    dataset, document, source_id = line

    async def scenario():
        socket = await connect(document.id)
        await socket.send_json_to(view(9, source_id, 0, 100) | request_fields)
        error = await receive(socket)
        assert (error["type"], error["code"], error["field"], error["id"]) == ("error", code, field, 9)
        await socket.send_json_to({"type": "ping", "id": "still"})
        assert await receive(socket) == {"type": "pong", "id": "still"}
        await socket.disconnect()

    run(scenario)


def test_a_range_that_is_not_a_number_is_refused(line):
    dataset, document, source_id = line

    async def scenario():
        socket = await connect(document.id)
        await socket.send_to(text_data='{"type": "view", "id": 1, "source": "%s", "x0": NaN, "x1": 5, '
                                       '"width": 10, "height": 10}' % source_id)
        assert (await receive(socket))["code"] == "malformed_json"
        await socket.send_json_to({"type": "ping"})
        assert (await receive(socket))["type"] == "pong"
        await socket.disconnect()

    run(scenario)


def test_a_document_may_not_show_a_dataset_its_owner_may_not_use(dataset_dir, alice, bob, multi_user):
    dataset = stored_dataset(token_client(bob), "bob's", line_columns(1000), require_sorted_x=True)
    document, source_id = backed_document(alice, dataset, title="borrowed")
    document.visibility = Visibility.PUBLIC
    document.save()
    token = sign_frame_token(document, "read")

    async def scenario():
        socket, _ = await open_socket(protocol.path(document.id) + f"?frame_token={token}", [(b"origin", b"null")])
        await socket.send_json_to(view(1, source_id, 0, 1000))
        error = await receive(socket)
        assert (error["code"], error["field"]) == ("unknown_source", "source")
        await socket.disconnect()

    run(scenario)


def test_a_source_without_a_mark_has_no_views(api, dataset_dir):
    p = figure()
    source = ColumnDataSource(data={"x": [1, 2], "y": [3, 4]})
    p.line("x", "y", source=source)
    doc = BokehDocument()
    doc.add_root(p)
    document = services.create_document(default_user(), "plain", *bokeh_json.dump(doc))

    async def scenario():
        socket = await connect(document.id)
        await socket.send_json_to(view(1, source.id, 0, 10))
        assert (await receive(socket))["code"] == "unknown_source"
        await socket.disconnect()

    run(scenario)


def test_rows_appended_reach_the_views_that_cover_them(line):
    dataset, document, source_id = line

    async def scenario():
        covering, before = await connect(document.id), await connect(document.id)
        await covering.send_json_to(view(1, source_id, ROWS - 1000, ROWS + 1000, width=100))
        await before.send_json_to(view(2, source_id, 0, 1000, width=100))
        first, _ = await next_frame(covering)
        assert first["rows"] == 1000
        assert (await next_frame(before))[0]["id"] == 2
        more = {"x": np.arange(ROWS, ROWS + 500, dtype=np.float64), "y": np.zeros(500)}
        await sync_to_async(dataset_services.append)(dataset, more)
        again, buffers = await next_frame(covering)
        assert (again["id"], again["rows"]) == (1, 1500)
        assert columns_of(again, buffers)["x"].max() == ROWS + 499
        assert await before.receive_nothing(0.5)  # its range does not reach the new rows
        await covering.disconnect()
        await before.disconnect()

    run(scenario)


def test_a_dense_scatter_is_an_image_of_counts_and_a_sparse_one_its_points(api, dataset_dir):
    columns = points_columns()
    dataset = stored_dataset(api, "cloud", columns)
    document, source_id = backed_document(default_user(), dataset, kind="points")
    x, y = columns["x"], columns["y"]

    async def scenario():
        socket = await connect(document.id)
        await socket.send_json_to(view(1, source_id, -4, 4, width=80, height=40, y0=-4, y1=4))
        message, buffers = await next_frame(socket)
        assert message["kind"] == "image" and (message["x0"], message["x1"], message["y0"], message["y1"]) == (-4, 4, -4, 4)
        image = columns_of(message, buffers)["image"]
        assert image.shape == (40, 80)
        inside = (x >= -4) & (x <= 4) & (y >= -4) & (y <= 4)
        assert image.sum() == message["rows"] == np.count_nonzero(inside)
        # The points in one quadrant of the image count where the image says.
        quadrant = (x >= 0) & (x <= 4) & (y >= 0) & (y <= 4)  # row 0 of the image is at y0
        assert int(image[20:, 40:].sum()) == np.count_nonzero(quadrant)
        await socket.send_json_to(view(2, source_id, 0.5, 0.6, y0=0.5, y1=0.6))
        message, buffers = await next_frame(socket)
        assert message["kind"] == "raw"
        got = columns_of(message, buffers)
        near = (x >= 0.5) & (x <= 0.6) & (y >= 0.5) & (y <= 0.6)
        assert sorted(got["x"]) == sorted(x[near]) and message["rows"] == np.count_nonzero(near)
        # A scatter view needs its y range.
        await socket.send_json_to({"type": "view", "id": 3, "source": source_id, "x0": 0, "x1": 1, "width": 10, "height": 10})
        assert (await receive(socket))["field"] == "y0"
        await socket.disconnect()

    run(scenario)


def test_the_first_view_answers_over_rest_as_a_view_data_bundle(api, dataset_dir):
    dataset = stored_dataset(api, "walk", line_columns(), require_sorted_x=True)
    answer = api.get(f"/api/datasets/{dataset.pk}/view/?kind=line&width=500&height=200",
                     HTTP_ACCEPT=wire.CONTENT_TYPE)
    assert answer.status_code == 200
    message, buffers = wire.unpack(answer.content)
    assert (message["type"], message["kind"], message["rows"]) == ("view_data", "line", ROWS)
    values = line_columns()["y"]
    assert (message["x0"], message["x1"]) == (0, ROWS - 1)
    assert (message["y0"], message["y1"]) == (np.nanmin(values), np.nanmax(values))
    got = columns_of(message, buffers)
    assert np.nanmin(got["y"]) == np.nanmin(values) and np.nanmax(got["y"]) == np.nanmax(values)
    bad = api.get(f"/api/datasets/{dataset.pk}/view/?kind=line&width=500&height=200&y=nope", HTTP_ACCEPT=wire.CONTENT_TYPE)
    assert (bad.status_code, bad.json()["error"], bad.json()["field"]) == (400, "invalid_view", "y")


def test_a_datetime_x_is_viewed_in_bokehs_milliseconds(api, dataset_dir):
    seconds = np.arange(ROWS)
    stamps = np.datetime64("2026-01-01T00:00:00", "ns") + seconds.astype("timedelta64[s]")
    y = np.cumsum(np.random.default_rng(3).normal(size=ROWS))
    dataset = stored_dataset(api, "sensor", {"x": stamps, "y": y}, require_sorted_x=True)
    document, source_id = backed_document(default_user(), dataset)
    start_ms = stamps[0].astype("datetime64[ms]").astype(np.int64)
    x0, x1 = float(start_ms + 1000 * 1000), float(start_ms + 1000 * 31_000)  # rows 1,000 to 31,000
    columns = storage.open_columns(dataset)
    expected = aggregation.line_view(columns["x"], columns["y"], storage.summary_levels(dataset, "y"),
                                     x0 * 1e6, x1 * 1e6, 300)

    async def scenario():
        socket = await connect(document.id)
        await socket.send_json_to(view(1, source_id, x0, x1, width=300))
        message, buffers = await next_frame(socket)
        assert (message["type"], message["kind"], message["rows"]) == ("view_data", "line", 30_001)
        got = columns_of(message, buffers)
        np.testing.assert_array_equal(got["x"], expected.x.astype(np.float64) / 1e6)
        np.testing.assert_array_equal(got["y"], expected.y)
        assert got["x"][1] == x0 and got["x"][-2] == x1  # the edges, in ms, with a row beyond each
        await socket.disconnect()

    run(scenario)


async def shown_a_view(document, source_id):
    """A socket to ``document`` that has been sent a view of ``source_id``."""
    socket = await connect(document.id)
    await socket.send_json_to(view(1, source_id, 0, ROWS))
    assert (await next_frame(socket))[0]["type"] == "view_data"
    return socket


async def refused_soon(socket, request: dict, timeout: float = 5.0) -> dict:
    """Ask for ``request`` until it is refused (what refuses it is announced through the channel
    layer, which may reach the connection just after the request does); the error."""
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        await socket.send_json_to(request)
        message, _ = await next_frame(socket)
        if message["type"] == "error":
            return message
        assert message["type"] == "view_data"
        assert asyncio.get_running_loop().time() < deadline, "the view is still served"
        await asyncio.sleep(0.05)


def test_views_stop_once_the_dataset_is_deleted(line):
    dataset, document, source_id = line

    async def scenario():
        socket = await shown_a_view(document, source_id)
        await sync_to_async(dataset_services.delete_dataset)(dataset)
        error = await refused_soon(socket, view(2, source_id, 0, ROWS))
        assert (error["code"], error["field"]) == ("unknown_source", "source")
        await socket.disconnect()

    run(scenario)


def test_views_stop_once_the_document_no_longer_backs_the_source(line):
    dataset, document, source_id = line

    async def scenario():
        socket = await shown_a_view(document, source_id)
        await sync_to_async(services.replace_document)(document, *bokeh_json.dump(line_document()))  # no mark
        error = await refused_soon(socket, view(2, source_id, 0, ROWS))
        assert error["code"] == "unknown_source"
        await socket.disconnect()

    run(scenario)


def test_a_view_of_a_dataset_deleted_before_its_deletion_is_announced_is_refused_plainly(line):
    from datasets.signals import dataset_removed
    from streaming import broadcast

    dataset, document, source_id = line

    async def scenario():
        socket = await shown_a_view(document, source_id)
        await sync_to_async(dataset_services.delete_dataset)(dataset)  # its files go; nobody is told
        await socket.send_json_to(view(2, source_id, 0, ROWS))
        error = (await next_frame(socket))[0]
        assert (error["type"], error["code"], error["id"]) == ("error", "unknown_source", 2)
        await socket.disconnect()

    assert dataset_removed.disconnect(dispatch_uid="streaming.removed")
    try:
        run(scenario)
    finally:
        dataset_removed.connect(broadcast.dataset_removed, dispatch_uid="streaming.removed")
