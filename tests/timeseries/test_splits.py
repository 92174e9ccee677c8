"""Temporal splits: contiguous parts in time order; window targets never cross a boundary."""

import numpy as np
import pytest

from pyrnn.timeseries import WindowDataset, split_windows, temporal_split


@pytest.mark.parametrize("n, val, test, sizes", [
    (100, 0.15, 0.15, (70, 15, 15)),
    (10, 0.0, 0.25, (8, 0, 2)),      # 2.5 rounds to 2 (round half to even)
    (10, 0.01, 0.01, (8, 1, 1)),     # a positive fraction gets at least one step
    (1, 0.0, 0.0, (1, 0, 0)),
])
def test_parts_are_contiguous_and_ordered(n, val, test, sizes):
    split = temporal_split(n, val, test)
    assert tuple(p.stop - p.start for p in split) == sizes
    assert split.train.start == 0 and split.train.stop == split.val.start
    assert split.val.stop == split.test.start and split.test.stop == n
    series = np.arange(n)
    np.testing.assert_array_equal(np.concatenate([series[p] for p in split]), series)


def test_window_targets_stay_in_their_part_and_inputs_overlap_by_L():
    T, L, H = 300, 24, 5
    series = np.arange(T, dtype=np.float64)  # value = time index
    split = temporal_split(T, 0.2, 0.2)
    train, val, test = split_windows(WindowDataset(series, L, H), split)
    for ds, part in zip((train, val, test), split):
        _, y = ds.arrays()
        assert y.min() >= part.start and y.max() < part.stop
        assert y.min() == max(part.start, L)        # the part's first step is a target (or step L)
        assert y.max() >= part.stop - 1              # and so is its last one (stride 1)
        assert ds.series is train.series             # all views of one series
    assert train.arrays()[1].max() < val.arrays()[1].min() and val.arrays()[1].max() < test.arrays()[1].min()
    x_val, _ = val.arrays()
    assert x_val[0, 0, 0] == split.val.start - L     # the documented overlap: L input steps from train


def test_empty_part_gives_none():
    ds = WindowDataset(np.zeros(50), 5, 1)
    train, val, test = split_windows(ds, temporal_split(50, 0.0, 0.2))
    assert val is None and len(test) == 10 and len(train) == 35


@pytest.mark.parametrize("args, pattern", [
    ((0,), r"n: expected an integer >= 1, got 0"),
    ((10, 1.0, 0.0), r"val_frac: expected a finite number in \[0, 1\), got 1.0"),
    ((10, 0.1, -0.1), r"test_frac: expected a finite number in \[0, 1\), got -0.1"),
    ((10, 0.5, 0.5), r"expected a non-empty training part, got 5 validation \+ 5 test steps out of n=10"),
])
def test_bad_fractions(args, pattern):
    with pytest.raises(ValueError, match=pattern):
        temporal_split(*args)


def test_a_part_too_short_for_one_window():
    ds = WindowDataset(np.zeros(40), 5, 4)
    with pytest.raises(ValueError, match=r"split.test: .*expected room for at least one window with targets in \[38, 40\)"):
        split_windows(ds, temporal_split(40, 0.0, 0.05))
