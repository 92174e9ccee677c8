"""WindowDataset: which windows exist, what a batch holds, and views that copy nothing."""

import numpy as np
import pytest

from pyrnn.timeseries import WindowDataset


def all_windows(T, L, H, stride, start, stop):
    """Every start s on the stride grid from the first valid one whose targets lie in [start, stop)."""
    valid = [s for s in range(T) if s + L >= start and s + L + H <= stop]
    return valid[::stride]


def test_windows_match_a_brute_force_enumeration():
    rng = np.random.default_rng(0)
    for _ in range(60):
        T = int(rng.integers(2, 80))
        L = int(rng.integers(1, T))
        H = int(rng.integers(1, T - L + 1))
        stride = int(rng.integers(1, 5))
        start = int(rng.integers(0, T - H + 1))
        stop = int(rng.integers(max(start + H, L + H), T + 1)) if max(start + H, L + H) <= T else None
        if stop is None:
            continue
        series = rng.standard_normal((T, 2))
        ds = WindowDataset(series, L, H, stride, target_cols=1, start=start, stop=stop)
        expected = all_windows(T, L, H, stride, start, stop)
        assert ds.starts.tolist() == expected
        assert len(ds) == len(expected)
        x, y = ds.arrays()
        np.testing.assert_array_equal(x, np.stack([series[s : s + L] for s in expected]))
        np.testing.assert_array_equal(y, np.stack([series[s + L : s + L + H, [1]] for s in expected]))
        assert (ds.target_times >= start).all() and (ds.target_times + H <= stop).all()


def test_the_series_is_kept_as_a_view():
    series = np.random.default_rng(1).standard_normal(100).astype(np.float32)
    ds = WindowDataset(series, 10, 2)
    assert np.shares_memory(ds.series, series) and ds.series.shape == (100, 1)
    x, y = ds.batch([0, -1])
    np.testing.assert_array_equal(x[1, :, 0], series[88:98])
    np.testing.assert_array_equal(y[1, :, 0], series[98:100])
    assert x.dtype == np.float32


def test_batches_cover_every_window_once():
    series = np.arange(200.0)
    ds = WindowDataset(series, 7, 3, stride=2)
    x_all, y_all = ds.arrays()
    for shuffle in (False, True):
        xs, ys = zip(*ds.batches(16, shuffle=shuffle, seed=4))
        assert [len(b) for b in xs] == [16] * (len(ds) // 16) + ([len(ds) % 16] if len(ds) % 16 else [])
        x, y = np.concatenate(xs), np.concatenate(ys)
        order = np.argsort(x[:, 0, 0])  # the first input value identifies the window here
        np.testing.assert_array_equal(x[order], x_all)
        np.testing.assert_array_equal(y[order], y_all)
        assert shuffle == (not np.array_equal(order, np.arange(len(ds))))


def test_subset_is_a_view_of_the_parent_windows():
    series = np.random.default_rng(2).standard_normal((300, 3))
    ds = WindowDataset(series, 12, 4, stride=3, target_cols=[0, 2])
    sub = ds.subset(150, 220)
    assert sub.series is ds.series and np.shares_memory(sub.starts, ds.starts)
    keep = [s for s in ds.starts if s + 12 >= 150 and s + 12 + 4 <= 220]
    assert sub.starts.tolist() == keep and (sub.start, sub.stop) == (150, 220)
    np.testing.assert_array_equal(sub.arrays()[0], ds.batch(np.searchsorted(ds.starts, keep))[0])
    assert sub.subset(160, 200).starts.tolist() == [s for s in keep if s + 12 >= 160 and s + 16 <= 200]
    # inputs of the first windows reach back before the subset's start; targets never do
    x, y = sub.batch([0])
    assert sub.starts[0] < 150 <= sub.target_times[0]
    np.testing.assert_array_equal(x[0], series[sub.starts[0] : sub.starts[0] + 12])
    np.testing.assert_array_equal(y[0], series[sub.target_times[0] : sub.target_times[0] + 4][:, [0, 2]])


def test_nan_is_refused_only_where_windows_read():
    series = np.ones((50, 2))
    series[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"series: expected finite values, got nan at index \(3, 1\)"):
        WindowDataset(series, 5, 1)
    ds = WindowDataset(series, 5, 1, start=20)  # inputs start at step 15: step 3 is never read
    assert ds.starts[0] == 15


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        (dict(input_len=0), ValueError, r"input_len: expected an integer >= 1, got 0"),
        (dict(horizon=0), ValueError, r"horizon: expected an integer >= 1, got 0"),
        (dict(stride=0), ValueError, r"stride: expected an integer >= 1, got 0"),
        (dict(stop=31), ValueError, r"stop: expected at most T = 30, got 31"),
        (dict(start=-1), ValueError, r"start: expected an integer >= 0, got -1"),
        (dict(input_len=28, horizon=3), ValueError, r"expected room for at least one window"),
        (dict(start=20, stop=22, horizon=3), ValueError, r"expected room for at least one window"),
        (dict(series=np.zeros(30, np.int32)), TypeError, r"series: expected a float32 or float64 array, got dtype int32"),
        (dict(target_cols=5), ValueError, r"target_cols\[0\]: expected a column index in \[-1, 1\), got 5"),
    ],
)
def test_bad_construction(kwargs, exc, pattern):
    args = dict(series=np.zeros(30), input_len=5, horizon=1) | kwargs
    with pytest.raises(exc, match=pattern):
        WindowDataset(**args)


def test_bad_batch_and_subset():
    ds = WindowDataset(np.zeros(30), 5, 1, start=10, stop=25)
    with pytest.raises(ValueError, match=r"indices\[1\]: expected a window index in \[-15, 15\), got 15"):
        ds.batch([0, 15])
    with pytest.raises(TypeError, match=r"indices: expected integer window indices or a slice, got dtype float64"):
        ds.batch([0.0])
    with pytest.raises(ValueError, match=r"expected 10 <= start < stop <= 25 .* got start=5, stop=20"):
        ds.subset(5, 20)
    with pytest.raises(ValueError, match=r"expected 10 <= start < stop <= 25 .* got start=12, stop=12"):
        ds.subset(12, 12)
    grid = WindowDataset(np.zeros(30), 5, 1, stride=3)  # targets at steps 5, 8, 11, ...
    with pytest.raises(ValueError, match=r"expected room for at least one window with targets in \[6, 8\)"):
        grid.subset(6, 8)
    with pytest.raises(ValueError, match=r"batch_size: expected an integer >= 1, got 0"):
        next(ds.batches(0))
