"""Temporal train/validation/test splits: contiguous parts in time order, never shuffled.

Legend: n = time steps, L = input length, H = horizon.

    train = [0, n_train)    val = [n_train, n_train + n_val)    test = [n_train + n_val, n)

On windows (:func:`split_windows`) each part keeps the windows whose TARGETS lie inside it,
so validation targets come after every training target and test targets after every
validation target. The INPUTS of the first L windows of a part overlap the end of the
previous part: a validation window whose first target is step n_train reads steps
[n_train - L, n_train). That is what a real forecast at that time would see (past values
are known), so no target leaks across parts — but those input steps are not "unseen" data.
"""

from __future__ import annotations

from typing import NamedTuple

from .._checks import check_float, check_int


class TemporalSplit(NamedTuple):
    """Three slices of time steps, in order; index arrays with them (``series[split.train]`` is a view)."""

    train: slice
    val: slice
    test: slice


def _part(name, frac, n):
    check_float(name, frac, 0.0, below=1.0)
    return 0 if frac == 0 else max(1, int(round(n * frac)))


def temporal_split(n, val_frac=0.15, test_frac=0.15):
    """Split n time steps into train/val/test in time order.

    Parameters
    ----------
    n : int >= 1, number of time steps
    val_frac, test_frac : fractions in [0, 1); a positive fraction gets at least one step
        (rounded to the nearest step), the training part gets the rest and must not be empty

    Returns
    -------
    TemporalSplit(train, val, test) of slices; an empty part is an empty slice.
    """
    n = check_int("n", n, 1)
    n_val, n_test = _part("val_frac", val_frac, n), _part("test_frac", test_frac, n)
    n_train = n - n_val - n_test
    if n_train < 1:
        raise ValueError(f"val_frac, test_frac: expected a non-empty training part, got {n_val} validation + "
                         f"{n_test} test steps out of n={n}")
    return TemporalSplit(slice(0, n_train), slice(n_train, n_train + n_val), slice(n_train + n_val, n))


def split_windows(dataset, split):
    """The windows of ``dataset`` whose targets lie in each part of ``split`` (views, no copy).

    Parameters
    ----------
    dataset : WindowDataset over the whole series
    split : TemporalSplit over the same series' time steps (from :func:`temporal_split`)

    Returns
    -------
    (train, val, test) WindowDatasets; None for an empty part. A non-empty part too short to
    hold one window (H target steps) raises ValueError.
    """
    parts = []
    for name, part in zip(split._fields, split):
        lo, hi = max(part.start, dataset.start), min(part.stop, dataset.stop)
        if part.stop <= part.start:
            parts.append(None)
            continue
        if hi <= lo:
            raise ValueError(f"split.{name}: expected steps inside the dataset's target range "
                             f"[{dataset.start}, {dataset.stop}), got [{part.start}, {part.stop})")
        try:
            parts.append(dataset.subset(lo, hi))
        except ValueError as exc:
            raise ValueError(f"split.{name}: {exc}") from None
    return tuple(parts)
