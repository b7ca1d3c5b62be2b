"""Views of many series sharing one x (kind "lines") against brute-force references.

The density image counts, for each pixel, the series whose line touches it, each line drawn as
Datashader draws lines. For series without NaNs it must be exactly Datashader's line aggregation
over the raw rows (``any`` of each series, summed); with NaNs, exactly that over each series' M4
points (a NaN inside a pixel column that is neither its first nor its last row is bridged, as in
line views). The lines must hold each pixel column's first and last point and its extremes. Then
the same through the websocket and the REST API, and bad input."""

import numpy as np
import pytest
from bokeh.core.serialization import Deserializer, Serialized
from bokeh.document import Document as BokehDocument
from bokeh.models import ColumnDataSource, Range1d
from bokeh.plotting import figure

from accounts.users import default_user
from bokehsite import protocol, wire
from datasets import series, storage, summaries
from datasets import services as dataset_services
from datasets.models import Dataset
from documents import bokeh_json, services
from tests.helpers import open_socket, receive, run, start_upload, upload_dataset


def built(ys, folder):
    levels = []
    for i, y in enumerate(ys):
        summaries.build(y, folder, f"y{i}")
        levels.append(summaries.open_levels(folder, f"y{i}", y))
    return levels


def raw_density(x, ys, x0, x1, y0, y1, width, height):
    """Datashader over every row: each series' ``any``, summed."""
    import datashader
    import pandas

    canvas = datashader.Canvas(plot_width=width, plot_height=height, x_range=(x0, x1), y_range=(y0, y1))
    image = np.zeros((height, width), np.uint32)
    for y in ys:
        frame = pandas.DataFrame({"x": np.asarray(x, np.float64), "y": np.asarray(y, np.float64)})
        image += canvas.line(frame, "x", "y", agg=datashader.any()).values
    return image


def pixel_columns(x, x0, x1, width):
    """Datashader's pixel column of each x (x1 in the last)."""
    s = width / (x1 - x0)
    return np.minimum((np.asarray(x, np.float64) * s - x0 * s).astype(np.int64), width - 1)


def brute_m4_rows(x, y, x0, x1, width):
    """Each pixel column's first, last, lowest and highest row (NaN ignored unless first or
    last; a column of NaNs keeps its first and last), and the rows just outside the range."""
    first, end = np.searchsorted(x, x0, "left"), np.searchsorted(x, x1, "right")
    y = np.asarray(y, np.float64)
    rows = set()
    columns = pixel_columns(x[first:end], x0, x1, width)
    for column in np.unique(columns):
        at = first + np.flatnonzero(columns == column)
        rows.update((at[0], at[-1]))
        values = y[at]
        if np.isfinite(values).any():
            rows.update((at[np.nanargmin(values)], at[np.nanargmax(values)]))
    if first > 0:
        rows.add(first - 1)
    if end < len(x):
        rows.add(end)
    return np.array(sorted(rows), np.int64)


def walks(n, count, seed=1, dtypes=(np.float64,)):
    rng = np.random.default_rng(seed)
    ys = []
    for i in range(count):
        walk = np.cumsum(rng.normal(size=n))
        dtype = dtypes[i % len(dtypes)]
        ys.append((walk * 10).astype(dtype) if np.dtype(dtype).kind == "i" else walk.astype(dtype))
    return ys


N = 6000
WINDOWS = [  # x0, x1, y0, y1, width, height: full, zoomed, partly outside left and right, clipped in y, tiny
    (0.0, N - 1.0, -250.0, 250.0, 300, 120),
    (1000.5, 3000.25, -60.0, 60.0, 257, 133),
    (-2000.0, 2500.0, -100.0, 100.0, 300, 100),
    (4000.0, N + 3000.0, -100.0, 100.0, 211, 90),
    (100.0, 5000.0, -5.0, 5.0, 300, 60),
    (2000.0, 2300.0, -50.0, 50.0, 40, 30),
    (0.0, N - 1.0, -250.0, 250.0, 1, 1),
]


@pytest.fixture
def sorted_x():
    rng = np.random.default_rng(5)
    return np.sort(rng.uniform(0, N - 1, N))


@pytest.mark.parametrize("window", WINDOWS)
def test_the_density_is_datashaders_line_aggregation_over_the_raw_rows(tmp_path, sorted_x, window):
    ys = walks(N, 12, dtypes=(np.float64, np.float32, np.int32))
    view = series.view(sorted_x, ys, built(ys, tmp_path), *window, line_points=0)
    np.testing.assert_array_equal(view.image, raw_density(sorted_x, ys, *window))


def test_the_density_on_both_threads_is_the_same(tmp_path, sorted_x):
    from concurrent.futures import ThreadPoolExecutor

    ys = walks(N, 9)
    levels = built(ys, tmp_path)
    with ThreadPoolExecutor(2) as threads:
        both = series.view(sorted_x, ys, levels, *WINDOWS[0], line_points=0, threads=threads).image
    np.testing.assert_array_equal(both, series.view(sorted_x, ys, levels, *WINDOWS[0], line_points=0).image)


def nan_walks():
    ys = walks(N, 8, seed=2)
    ys[0][::7] = np.nan  # gaps narrower than a pixel column
    ys[1][2000:2600] = np.nan  # a gap across many pixel columns
    ys[2][:] = np.nan  # no numbers at all
    ys[3][5990:] = np.nan  # up to the end
    ys[4] = ys[4].astype(np.float32)
    ys[4][100:4000:3] = np.nan
    return ys


@pytest.mark.parametrize("window", WINDOWS)
def test_with_nans_the_density_is_datashaders_over_each_series_m4_points(tmp_path, sorted_x, window):
    ys = nan_walks()
    x0, x1, _, _, width, _ = window
    view = series.view(sorted_x, ys, built(ys, tmp_path), *window, line_points=0)
    first, end = np.searchsorted(sorted_x, x0, "left"), np.searchsorted(sorted_x, x1, "right")
    picked = []
    for y in ys:
        if end - first <= 4 * width:  # few rows: the rows themselves
            rows = np.arange(max(first - 1, 0), min(end + 1, N))
        else:
            rows = brute_m4_rows(sorted_x, y, x0, x1, width)
        picked.append((sorted_x[rows], y[rows]))
    expected = sum(raw_density(px, [py], *window).astype(np.int64) for px, py in picked)
    np.testing.assert_array_equal(view.image, expected)


def test_a_gap_across_pixel_columns_leaves_them_empty(tmp_path):
    x = np.arange(N, dtype=np.float64)
    y = np.sin(x / 50)
    y[2000:3000] = np.nan
    view = series.view(x, [y], built([y], tmp_path), 0.0, N - 1.0, -2.0, 2.0, 300, 50, line_points=0)
    columns = pixel_columns(x, 0.0, N - 1.0, 300)
    gap = np.setdiff1d(columns, columns[np.isfinite(y)])  # those holding only NaN rows
    assert len(gap) >= 45
    assert view.image[:, gap].sum() == 0 and view.image.sum() > 0
    touched = set(np.flatnonzero(view.image.any(axis=0)))
    assert touched == set(range(300)) - set(gap)


@pytest.mark.parametrize("window", WINDOWS)
def test_the_lines_are_each_series_m4_rows(tmp_path, sorted_x, window):
    ys = nan_walks() + walks(N, 3, seed=9, dtypes=(np.int16, np.float32, np.uint8))
    x0, x1, _, _, width, _ = window
    view = series.view(sorted_x, ys, built(ys, tmp_path), *window, line_points=10 ** 9)
    assert view.image is None and len(view.xs) == len(view.ys) == len(ys)
    first, end = np.searchsorted(sorted_x, x0, "left"), np.searchsorted(sorted_x, x1, "right")
    assert view.rows == end - first
    for y, xs, got in zip(ys, view.xs, view.ys):
        assert xs.dtype == got.dtype == np.float64
        if end - first <= 4 * width:
            rows = np.arange(max(first - 1, 0), min(end + 1, N))
            np.testing.assert_array_equal(xs, sorted_x[rows])
            np.testing.assert_array_equal(got, y[rows].astype(np.float64))
            continue
        # The same points as brute force, but for ties (integers): compare per pixel column.
        expected = brute_m4_rows(sorted_x, y, x0, x1, width)
        assert len(xs) <= len(expected)
        inside = (xs >= x0) & (xs <= x1)
        want = (sorted_x[expected] >= x0) & (sorted_x[expected] <= x1)
        assert np.array_equal(xs[~inside], sorted_x[expected][~want])  # the rows just outside
        have_cols, want_cols = pixel_columns(xs[inside], x0, x1, width), pixel_columns(sorted_x[expected][want], x0, x1, width)
        values, want_values = got[inside], y[expected][want].astype(np.float64)
        for column in np.unique(want_cols):
            mine, theirs = values[have_cols == column], want_values[want_cols == column]
            assert mine[0] == theirs[0] or (np.isnan(mine[0]) and np.isnan(theirs[0]))
            assert mine[-1] == theirs[-1] or (np.isnan(mine[-1]) and np.isnan(theirs[-1]))
            assert np.array_equal(np.nanmin(mine, initial=np.inf), np.nanmin(theirs, initial=np.inf))
            assert np.array_equal(np.nanmax(mine, initial=-np.inf), np.nanmax(theirs, initial=-np.inf))
        assert np.all(np.diff(xs) >= 0)  # in row order
        assert np.isin(xs, sorted_x).all()  # rows, not made-up points


def test_lines_while_few_points_are_in_view_else_the_density(tmp_path, sorted_x):
    ys = walks(N, 10)
    levels = built(ys, tmp_path)
    for window in WINDOWS:
        view = series.view(sorted_x, ys, levels, *window, line_points=5000)
        assert (view.image is None) == (view.points <= 5000), window
    whole = series.view(sorted_x, ys, levels, *WINDOWS[0], line_points=5000)
    deep = series.view(sorted_x, ys, levels, *WINDOWS[5], line_points=5000)
    assert whole.image is not None and deep.image is None  # zoomed out: the image; zoomed in: the lines
    assert whole.points > 5000 >= deep.points


# --- through the server ------------------------------------------------------------------------------

ROWS = 20_000


def series_columns(n: int = ROWS) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    a = np.cumsum(rng.normal(size=n))
    a[500:900] = np.nan
    return {"x": np.arange(n, dtype=np.float64), "a": a, "b": np.cumsum(rng.normal(size=n)).astype(np.float32),
            "c": (np.cumsum(rng.normal(size=n)) * 10).astype(np.int32),
            "when": np.datetime64("2026-01-01", "ms") + np.arange(n).astype("timedelta64[s]")}


def stored_dataset(api, name, columns, **options) -> Dataset:
    answer = upload_dataset(api, name, columns, **options)
    assert answer.status_code == 201, answer.content
    return Dataset.objects.get(pk=answer.json()["id"])


def lines_document(owner, dataset: Dataset, y, x: str = "x", title: str = "series"):
    source = ColumnDataSource(data={"xs": [], "ys": [], "series": []},
                              tags=[protocol.dataset_mark(dataset.pk, "lines", x, y)])
    p = figure(width=600, height=300, x_range=Range1d(0, 1), y_range=Range1d(0, 1))
    p.multi_line(xs="xs", ys="ys", source=source)
    doc = BokehDocument()
    doc.add_root(p)
    return services.create_document(owner, title, *bokeh_json.dump(doc)), source.id


def columns_of(message, buffers):
    return Deserializer().deserialize(Serialized(message["data"], buffers))


async def connect(document_id):
    socket, hello = await open_socket(protocol.path(document_id), [(b"host", b"localhost"), (b"origin", b"http://localhost")])
    assert hello["type"] == "hello", hello
    return socket


async def next_frame(socket, timeout: float = 20):
    raw = await socket.receive_from(timeout)
    return wire.unpack(raw)


def view(request_id, source, x0, x1, width=600, height=300, y0=-500.0, y1=500.0):
    return {"type": "view", "id": request_id, "source": source, "x0": x0, "x1": x1, "width": width, "height": height,
            "y0": y0, "y1": y1}


@pytest.fixture
def settled(dataset_dir, settings):
    settings.BOKEHSITE_DATASET_CHUNK_BYTES = 4 * 1024 * 1024


@pytest.mark.django_db(transaction=True)
def test_a_lines_view_over_the_websocket_is_the_density_then_the_lines(api, settled, monkeypatch):
    columns = series_columns()
    dataset = stored_dataset(api, "many", columns, require_sorted_x=True)
    document, source_id = lines_document(default_user(), dataset, ["a", "b", "c"])
    monkeypatch.setattr(series, "LINE_POINTS", 3000)  # this process computes the views
    stored = storage.open_columns(dataset)
    ys = [stored[name] for name in ("a", "b", "c")]
    levels = [storage.summary_levels(dataset, name) for name in ("a", "b", "c")]

    async def scenario():
        socket = await connect(document.id)
        await socket.send_json_to(view(1, source_id, 0, ROWS - 1))
        message, buffers = await next_frame(socket)
        assert (message["type"], message["id"], message["kind"], message["rows"]) == ("view_data", 1, "image", ROWS)
        expected = series.view(stored["x"], ys, levels, 0, ROWS - 1, -500.0, 500.0, 600, 300)
        np.testing.assert_array_equal(columns_of(message, buffers)["image"], expected.image)
        await socket.send_json_to(view(2, source_id, 5000.5, 5400.5))  # 400 rows a series: lines
        message, buffers = await next_frame(socket)
        assert (message["id"], message["kind"], message["rows"]) == (2, "lines", 400)
        got = columns_of(message, buffers)
        assert got["series"] == ["a", "b", "c"]
        for name, xs, values in zip("abc", got["xs"], got["ys"]):
            np.testing.assert_array_equal(xs, np.arange(5000, 5402, dtype=float))
            np.testing.assert_array_equal(values, stored[name][5000:5402].astype(float))
        # The y range is needed.
        await socket.send_json_to({"type": "view", "id": 3, "source": source_id, "x0": 0, "x1": 1, "width": 10, "height": 10})
        refused = await receive(socket)
        assert (refused["type"], refused["field"]) == ("error", "y0")
        await socket.disconnect()

    run(scenario)


@pytest.mark.django_db(transaction=True)
def test_a_datetime_x_is_viewed_in_milliseconds(api, settled):
    columns = series_columns()
    columns = {"t": columns["when"], "a": columns["a"], "b": columns["b"]}
    dataset = stored_dataset(api, "timed", columns, require_sorted_x=True)
    document, source_id = lines_document(default_user(), dataset, ["a", "b"], x="t")
    start = float(columns["t"][0].astype(np.int64))  # ms

    async def scenario():
        socket = await connect(document.id)
        await socket.send_json_to(view(1, source_id, start + 1000 * 3000, start + 1000 * 3100))
        message, buffers = await next_frame(socket)
        assert (message["kind"], message["rows"]) == ("lines", 101)
        got = columns_of(message, buffers)
        np.testing.assert_array_equal(got["xs"][0], columns["t"][2999:3102].astype(np.int64).astype(float))
        np.testing.assert_array_equal(got["ys"][1], columns["b"][2999:3102].astype(float))
        await socket.disconnect()

    run(scenario)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("y, detail", [(["a", "nope"], "no column of numbers other than x called 'nope'"),
                                       (["a", "when"], "called 'when'"),  # a datetime column
                                       (["x"], "called 'x'")])
def test_a_mark_naming_columns_the_dataset_cannot_draw_is_refused_plainly(api, settled, y, detail):
    dataset = stored_dataset(api, "many", series_columns(), require_sorted_x=True)
    document, source_id = lines_document(default_user(), dataset, y)

    async def scenario():
        socket = await connect(document.id)
        await socket.send_json_to(view(1, source_id, 0, 100))
        refused = await receive(socket)
        assert (refused["type"], refused["error"] if "error" in refused else refused["code"], refused["field"]) == (
            "error", "invalid_view", "source")
        assert detail in refused["detail"]
        await socket.disconnect()

    run(scenario)


@pytest.mark.django_db(transaction=True)
def test_an_unsorted_x_and_too_many_names_are_refused(api, settled):
    columns = series_columns(1000)
    columns["x"] = columns["x"][::-1].copy()
    dataset = stored_dataset(api, "backwards", {"x": columns["x"], "a": columns["a"]})
    document, source_id = lines_document(default_user(), dataset, ["a"])
    too_many = ColumnDataSource(tags=[{**protocol.dataset_mark(dataset.pk, "lines", "x", ["a"]),
                                       "y": ["a"] * (protocol.MAX_SERIES + 1)}])
    assert protocol.read_mark(too_many.tags) is None  # not a mark: the source is not backed

    async def scenario():
        socket = await connect(document.id)
        await socket.send_json_to(view(1, source_id, 0, 100))
        refused = await receive(socket)
        assert (refused["code"], refused["field"]) == ("invalid_view", "source")
        assert "x is sorted" in refused["detail"]
        await socket.disconnect()

    run(scenario)


@pytest.mark.django_db(transaction=True)
def test_the_first_view_over_rest_takes_a_list_of_columns(api, settled):
    columns = series_columns()
    dataset = stored_dataset(api, "many", columns, require_sorted_x=True)
    url = f"/api/datasets/{dataset.pk}/view/"
    answer = api.post(url, {"kind": "lines", "y": ["a", "c"], "width": 500, "height": 200}, format="json",
                      HTTP_ACCEPT=wire.CONTENT_TYPE)
    assert answer.status_code == 200, answer.content
    message, buffers = wire.unpack(answer.content)
    assert (message["kind"], message["rows"], message["x0"], message["x1"]) == ("lines", ROWS, 0, ROWS - 1)
    assert message["y0"] == min(np.nanmin(columns["a"]), columns["c"].min())
    assert message["y1"] == max(np.nanmax(columns["a"]), columns["c"].max())
    assert columns_of(message, buffers)["series"] == ["a", "c"]
    # Without y: every column of numbers but x (not the datetime one); over GET, y repeated.
    default = wire.unpack(api.post(url, {"kind": "lines", "width": 50, "height": 20}, format="json",
                                   HTTP_ACCEPT=wire.CONTENT_TYPE).content)
    assert columns_of(*default)["series"] == ["a", "b", "c"]
    got = wire.unpack(api.get(f"{url}?kind=lines&width=50&height=20&y=b&y=a", HTTP_ACCEPT=wire.CONTENT_TYPE).content)
    assert columns_of(*got)["series"] == ["b", "a"]
    for body, field in [({"y": ["a", "nope"]}, "y"), ({"y": ["a"] * (protocol.MAX_SERIES + 1)}, "y"),
                        ({"y": [3]}, "y"), ({"y": ["when"]}, "y")]:
        bad = api.post(url, {"kind": "lines", "width": 50, "height": 20, **body}, format="json",
                       HTTP_ACCEPT=wire.CONTENT_TYPE)
        assert (bad.status_code, bad.json()["field"]) == (400, field), bad.content


@pytest.mark.django_db(transaction=True)
def test_an_upload_of_thousands_of_columns_lists_a_bounded_number_of_missing_chunks(api, settled):
    columns = {"x": np.arange(10, dtype=np.float64), **{f"s{i}": np.zeros(10) for i in range(dataset_services.MAX_COLUMNS - 1)}}
    started = start_upload(api, "wide", columns)
    assert started.status_code == 201, started.content
    status = started.json()
    assert len(status["columns"]) == dataset_services.MAX_COLUMNS
    assert sum(len(c["missing"]) for c in status["columns"]) == dataset_services.LISTED_MISSING
    assert all(c["missing_chunks"] == 1 for c in status["columns"])
    assert len(started.content) < 2 * 1024 * 1024
    finish = api.post(f"/api/datasets/uploads/{status['id']}/finish/")
    assert (finish.status_code, finish.json()["error"]) == (409, "upload_incomplete")
    assert "misses 1 chunk" in finish.json()["detail"]
    one_more = start_upload(api, "wider", {**columns, "extra": np.zeros(10)})
    assert (one_more.status_code, one_more.json()["field"]) == (400, "columns")


@pytest.mark.django_db(transaction=True)
def test_the_maps_kept_are_bounded_by_the_open_files_limit(api, settled, monkeypatch):
    first = stored_dataset(api, "first", series_columns(100), require_sorted_x=True)
    second = stored_dataset(api, "second", series_columns(100), require_sorted_x=True)
    storage.forget(first.pk), storage.forget(second.pk)
    assert storage.raise_open_files_limit() >= 1024
    monkeypatch.setattr(storage, "_open_files_limit", lambda: 16)  # 8 maps kept: one dataset's 5 columns and a few levels
    storage.open_columns(first)
    storage.summary_levels(first, "a")
    storage.open_columns(second)
    kept = {key[0] for key in storage._maps}
    assert str(second.pk) in kept and str(first.pk) not in kept


@pytest.mark.django_db(transaction=True)
def test_rows_appended_reach_a_lines_view_that_covers_them(api, settled):
    from asgiref.sync import sync_to_async

    columns = series_columns(1000)
    dataset = stored_dataset(api, "growing", {k: columns[k] for k in ("x", "a", "c")}, require_sorted_x=True)
    document, source_id = lines_document(default_user(), dataset, ["a", "c"])

    async def scenario():
        socket = await connect(document.id)
        await socket.send_json_to(view(1, source_id, 900, 1200, width=100))
        first, _ = await next_frame(socket)
        assert (first["kind"], first["rows"]) == ("lines", 100)
        more = {"x": np.arange(1000, 1100, dtype=np.float64), "a": np.full(100, 7.0), "c": np.full(100, -3, np.int32)}
        await sync_to_async(dataset_services.append)(dataset, more)
        again, buffers = await next_frame(socket)
        assert (again["id"], again["rows"]) == (1, 200)
        got = columns_of(again, buffers)
        assert got["xs"][0].max() == 1099 and got["ys"][0][-1] == 7.0 and got["ys"][1][-1] == -3.0
        await socket.disconnect()

    run(scenario)
