"""Views of large datasets against a brute-force reference: every pixel column's exact minimum and
maximum, its first and last row, at the full range and at zooms down to a handful of points,
with the edges, NaNs, integer and datetime x, and rows appended after the summaries were built."""

import numpy as np
import pytest

from datasets import summaries
from datasets.aggregation import RAW_ROWS_PER_PIXEL, line_view


def pixel_edges(x0, x1, width):
    return x0 + (x1 - x0) * (np.arange(width + 1) / width)


def pixel_of(values, x0, x1, width):
    """The pixel column of each x (the last column includes x1)."""
    return np.minimum(np.searchsorted(pixel_edges(x0, x1, width), values, "right") - 1, width - 1)


def per_column(xs, ys, x0, x1, width):
    """For x sorted ascending: the pixel columns that hold rows, and for each its first and last
    x and its NaN-ignoring minimum and maximum of y (NaN where it has no number)."""
    columns = pixel_of(xs, x0, x1, width)
    present, starts = np.unique(columns, return_index=True)
    ends = np.append(starts[1:], len(xs))
    ys = np.asarray(ys, float)
    return (present, xs[starts], xs[ends - 1],
            np.fmin.reduceat(ys, starts), np.fmax.reduceat(ys, starts))


def reference(x, y, x0, x1, width):
    """The same over the raw rows: the truth a view must keep."""
    inside = (x >= x0) & (x <= x1)
    return per_column(x[inside], y[inside], x0, x1, width)


def built(y, tmp_path, name="y"):
    summaries.build(y, tmp_path, name)
    return summaries.open_levels(tmp_path, name, y)


def check_view(x, y, levels, x0, x1, width):
    view = line_view(x, y, levels, x0, x1, width)
    expected = reference(x, y, x0, x1, width)
    if view.raw:
        assert view.rows <= RAW_ROWS_PER_PIXEL * width
        first, last = np.searchsorted(x, x0, "left"), np.searchsorted(x, x1, "right")
        assert np.array_equal(view.x, x[max(first - 1, 0):last + 1])
        return view
    # Each pixel column of the view holds its first and last row and its exact extremes.
    within = (view.x >= x0) & (view.x <= x1)
    got = per_column(view.x[within], view.y[within], x0, x1, width)
    for have, want in zip(got, expected):
        assert np.array_equal(have, want, equal_nan=True)
    assert len(view.x) <= 4 * width + 2  # at most four points a pixel column, and the two outside
    assert np.all(np.diff(view.x) >= 0)  # in row order
    return view


@pytest.fixture(scope="module")
def walk():
    rng = np.random.default_rng(7)
    x = np.arange(200_003, dtype=np.float64) * 0.5
    y = np.cumsum(rng.standard_normal(len(x)))
    y[1000:1400] = np.nan  # a gap
    y[5000] = np.nan
    return x, y


@pytest.mark.parametrize("fraction", [1.0, 0.1, 0.01, 0.001, 0.0001, 0.00002])
@pytest.mark.parametrize("width", [1, 7, 800])
def test_a_view_holds_each_pixel_columns_exact_extremes_at_every_zoom(walk, tmp_path, fraction, width):
    x, y = walk
    levels = built(y, tmp_path)
    span = (x[-1] - x[0]) * fraction
    x0 = x[0] + (x[-1] - x[0] - span) * 0.37
    check_view(x, y, levels, x0, x0 + span, width)


def test_the_line_runs_to_the_edges_and_ranges_off_the_data_are_empty(walk, tmp_path):
    x, y = walk
    levels = built(y, tmp_path)
    view = line_view(x, y, levels, 10_000.25, 60_000.75, 300)
    assert view.x[0] < 10_000.25 and view.x[-1] > 60_000.75  # the rows just outside
    before = line_view(x, y, levels, -100.0, -50.0, 300)
    assert before.rows == 0 and list(before.x) == [x[0]]  # nothing inside: only the next row
    assert line_view(x, y, levels, x[-1] + 1, x[-1] + 9, 300).x.tolist() == [x[-1]]


def test_integer_and_datetime_x_and_integer_y(tmp_path):
    x = np.arange(0, 3_000_000, 7, dtype=np.int64)
    y = (np.arange(len(x)) * 2_654_435_761 % 1_000_003).astype(np.int32)
    levels = built(y, tmp_path)
    check_view(x, y, levels, 100, 2_900_000, 640)
    stamps = (np.datetime64("2026-01-01T00:00:00", "ns") + x.astype("timedelta64[s]")).astype(np.int64)
    check_view(stamps, y, levels, stamps[10], stamps[-10], 640)


def test_unevenly_spaced_x_with_bursts_and_repeats(tmp_path):
    rng = np.random.default_rng(11)
    gaps = np.where(rng.random(300_000) < 0.01, rng.exponential(5_000, 300_000), rng.exponential(0.01, 300_000))
    gaps[rng.random(300_000) < 0.2] = 0.0  # repeated x
    x = np.cumsum(gaps)
    y = np.cumsum(rng.standard_normal(len(x)))
    levels = built(y, tmp_path)
    for fraction in (1.0, 0.05, 0.001):
        span = (x[-1] - x[0]) * fraction
        x0 = x[0] + (x[-1] - x[0] - span) * 0.61
        check_view(x, y, levels, x0, x0 + span, 500)


def test_the_pixel_columns_rows_are_found_as_numpy_finds_them():
    from datasets.aggregation import _search_sorted

    rng = np.random.default_rng(5)
    for trial in range(2000):
        n = int(rng.integers(0, 400))
        x = [np.sort(rng.normal(size=n)), np.sort(rng.integers(0, 20, n)), np.arange(n, dtype=float),
             np.sort(np.exp(rng.normal(size=n) * 5)).astype(np.float32)][trial % 4]
        first = int(rng.integers(0, n + 1))
        end = int(rng.integers(first, n + 1))
        edges = np.sort(np.concatenate([rng.uniform(-3, 25, int(rng.integers(1, 40))),
                                        rng.choice(x, 5).astype(float) if n else []]))
        expected = np.searchsorted(x[first:end], edges, "left") + first
        assert np.array_equal(_search_sorted(x, edges, first, end), expected), (trial, first, end)


def test_rows_appended_after_the_summaries_were_built(walk, tmp_path):
    x, y = walk
    head = 123_457
    summaries.build(y[:head], tmp_path, "y")
    summaries.extend(y, tmp_path, "y", head)
    levels = summaries.open_levels(tmp_path, "y", y)
    fresh = summaries.summarize(y)
    assert len(levels) == len(fresh)
    for got, want in zip(levels, fresh):
        assert np.array_equal(got, want)
    check_view(x, y, levels, x[0], x[-1], 777)


def test_summaries_are_small(walk, tmp_path):
    x, y = walk
    size = summaries.build(y, tmp_path, "y")
    assert size < y.nbytes * 0.4


@pytest.mark.parametrize("rows", [1, 8, 9, 65, 70_001, 300_000])
def test_extremes_of_ranges_are_those_of_their_rows(tmp_path, rows):
    """summaries.extremes against the rows for ranges of every length and place, the whole column
    and its first and last rows included, over NaN runs, infinities and ties."""
    rng = np.random.default_rng(rows)
    y = np.cumsum(rng.standard_normal(rows))
    if rows > 100:
        y = np.round(y)  # ties
        y[37:90] = np.nan
        y[rng.integers(0, rows, rows // 50)] = np.nan
        y[rows // 2:rows // 2 + 5_000] = np.nan  # NaN-only blocks on several levels
        y[rows // 3] = np.inf
        y[rows // 4] = -np.inf
    levels = built(y, tmp_path)
    starts = rng.integers(0, rows, 2_000)
    lengths = rng.integers(1, rows + 1, 2_000) // rng.integers(1, 1_000, 2_000) + 1
    starts = np.concatenate([starts, [0, 0, rows - 1]])
    ends = np.concatenate([np.minimum(starts[:-3] + lengths, rows), [rows, 1, rows]])
    low, at_low, high, at_high = summaries.extremes(y, levels, starts, ends)
    for i in range(len(starts)):
        rows_of = y[starts[i]:ends[i]]
        if np.isnan(rows_of).all():
            assert low[i] == np.inf and high[i] == -np.inf
            continue
        assert low[i] == np.nanmin(rows_of) and high[i] == np.nanmax(rows_of), i
        assert starts[i] <= at_low[i] < ends[i] and starts[i] <= at_high[i] < ends[i], i
        assert y[at_low[i]] == low[i] and y[at_high[i]] == high[i], i


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_views_of_windows_at_the_edges_with_nan_columns_and_infinities(tmp_path, dtype):
    """The y of each pixel column's lowest and highest point comes from the summaries: exact for
    both float types, and read from y where a column has only NaNs (or an infinity)."""
    rng = np.random.default_rng(13)
    x = np.arange(100_000, dtype=np.float64)
    y = np.cumsum(rng.standard_normal(len(x))).astype(dtype)
    y[20_000:23_000] = np.nan  # whole pixel columns of NaNs
    y[50_001], y[70_003] = np.inf, -np.inf
    levels = built(y, tmp_path)
    for x0, x1 in ((0.0, 99_999.0), (0.0, 30_000.5), (60_000.25, 99_999.0), (-500.0, 1e6), (19_000.0, 24_000.0)):
        view = check_view(x, y, levels, x0, x1, 300)
        assert view.y.dtype == dtype
        inside = view.x[(view.x >= x0) & (view.x <= x1)]
        assert np.array_equal(view.y[(view.x >= x0) & (view.x <= x1)], y[inside.astype(np.int64)], equal_nan=True)
