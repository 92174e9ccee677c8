"""Window gather: the (input, target) windows of a batch of start indices, copied out of one series.

Legend: T = time steps of the series, C = its columns, B = windows in the batch,
L = input length, H = horizon, Ct = target columns.

    x[b] = series[s : s + L, :]                     (L, C)   what the model sees
    y[b] = series[s + L : s + L + H, target_cols]   (H, Ct)  what it must predict
    with s = starts[b], 0 <= s <= T - L - H

Only the B requested windows are copied; nothing of size (number of windows, L, C) is
ever built. :func:`gather_windows` validates every argument here, then calls the compiled
loop (``_gather.pyx``, typed memoryviews, GIL released) or, if that module did not load,
:func:`gather_windows_numpy` — the readable specification it is tested against.
"""

from __future__ import annotations

import warnings

import numpy as np

from .._checks import check_int

_UNSET = object()
_compiled = _UNSET  # the compiled gather_into, None when it failed to load, _UNSET before the first call


def _compiled_gather():
    """The compiled ``gather_into`` or None (after one RuntimeWarning saying why)."""
    global _compiled
    if _compiled is _UNSET:
        try:
            from ._gather import gather_into
        except ImportError as exc:
            warnings.warn(f"pyrnn.timeseries: the compiled window gather is unavailable ({exc}); "
                          "using the NumPy version", RuntimeWarning, stacklevel=3)
            gather_into = None
        _compiled = gather_into
    return _compiled


def gather_impl():
    """``"cython"`` if the compiled gather loads, else ``"numpy"``."""
    return "numpy" if _compiled_gather() is None else "cython"


# ------------------------------------------------------------------ validation
def as_series(series, name="series"):
    """``series`` as a (T, C) float32/float64 array — a view, never a copy ((T,) becomes (T, 1))."""
    arr = series if isinstance(series, np.ndarray) else np.asarray(series)
    if arr.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: expected a float32 or float64 array, got dtype {arr.dtype} "
                        "(convert it with .astype(np.float32))")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 1-D (T,) or 2-D (T, C) array, got {arr.ndim}-D with shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name}: expected at least one column, got shape {arr.shape}")
    return arr


def target_columns(target_cols, n_cols):
    """``target_cols`` (None = every column, an int, or a sequence of ints; negatives count
    from the end) as a 1-D int64 array of indices in [0, C)."""
    if target_cols is None:
        return np.arange(n_cols, dtype=np.int64)
    cols = np.atleast_1d(np.asarray(target_cols))
    if cols.size == 0:
        raise ValueError("target_cols: expected at least one column, got an empty sequence")
    if cols.dtype.kind not in "iu" or cols.ndim != 1:
        raise TypeError(f"target_cols: expected None, an int or a 1-D sequence of ints, got {target_cols!r}")
    bad = np.flatnonzero((cols < -n_cols) | (cols >= n_cols))
    if bad.size:
        raise ValueError(f"target_cols[{bad[0]}]: expected a column index in [{-n_cols}, {n_cols}), got {cols[bad[0]]}")
    return np.ascontiguousarray(np.where(cols < 0, cols + n_cols, cols), dtype=np.int64)


def check_starts(starts, n_steps, input_len, horizon):
    """``starts`` as a 1-D int64 array with every value in [0, T - L - H]."""
    arr = np.asarray(starts)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"starts: expected integer start indices, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"starts: expected a 1-D array (B,), got {arr.ndim}-D with shape {arr.shape}")
    last = n_steps - input_len - horizon
    if arr.size and (arr.min() < 0 or arr.max() > last):
        bad = np.flatnonzero((arr < 0) | (arr > last))
        raise ValueError(f"starts[{bad[0]}]: expected a start in [0, {last}] (T={n_steps} steps, input_len={input_len}, "
                         f"horizon={horizon}), got {arr[bad[0]]}")
    return np.ascontiguousarray(arr, dtype=np.int64)


# ------------------------------------------------------------------ the gather
def gather_windows_numpy(series, starts, input_len, horizon, cols):
    """Reference gather on validated arguments: series (T, C), starts (B,) int64, cols (Ct,) int64."""
    x = series[starts[:, None] + np.arange(input_len)]                       # (B, L, C)
    rows = starts[:, None] + input_len + np.arange(horizon)                   # (B, H)
    y = series[rows[:, :, None], cols]                                        # (B, H, Ct)
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def gather_windows(series, starts, input_len, horizon=1, target_cols=None, impl="auto"):
    """Copy the windows that begin at ``starts`` out of ``series``.

    Parameters
    ----------
    series : (T, C) or (T,) float32/float64 array (any strides; never copied whole)
    starts : (B,) integer array, each in [0, T - input_len - horizon]
    input_len : int >= 1, steps the model sees (the "delay")
    horizon : int >= 0, steps to predict (0: inputs only, y has shape (B, 0, Ct))
    target_cols : None (every column), an int or a sequence of ints: the columns of y
    impl : "auto" (compiled if it loads, else NumPy with a RuntimeWarning), "cython" or "numpy"

    Returns
    -------
    x : (B, L, C) array of the series' dtype, C-contiguous
    y : (B, H, Ct) array of the series' dtype, C-contiguous
    """
    arr = as_series(series)
    input_len = check_int("input_len", input_len, 1)
    horizon = check_int("horizon", horizon, 0)
    if input_len + horizon > arr.shape[0]:
        raise ValueError(f"series: expected at least input_len + horizon = {input_len + horizon} steps, got {arr.shape[0]}")
    idx = check_starts(starts, arr.shape[0], input_len, horizon)
    cols = target_columns(target_cols, arr.shape[1])
    if impl not in ("auto", "cython", "numpy"):
        raise ValueError(f"impl: expected 'auto', 'cython' or 'numpy', got {impl!r}")
    kernel = None if impl == "numpy" else _compiled_gather()
    if impl == "cython" and kernel is None:
        raise RuntimeError("impl='cython': expected the compiled module pyrnn.timeseries._gather, got none "
                           "(build it with `python setup.py build_ext --inplace`)")
    if kernel is None:
        return gather_windows_numpy(arr, idx, input_len, horizon, cols)
    x = np.empty((idx.size, input_len, arr.shape[1]), dtype=arr.dtype)
    y = np.empty((idx.size, horizon, cols.size), dtype=arr.dtype)
    kernel(arr, idx, input_len, cols, x, y)
    return x, y
