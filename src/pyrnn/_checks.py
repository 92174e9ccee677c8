"""Input checks shared by the Python layer: every message says what was expected and what came."""

from __future__ import annotations

import numpy as np


def as_float_array(name, value, dtype):
    """``value`` as a C-contiguous array of ``dtype``; floats of another width are cast.

    Integer, boolean, complex and object arrays are refused with a TypeError:
    silently rounding them would hide a bug in the caller's data pipeline.
    """
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name}: expected an array of floats, got {type(value).__name__} ({exc})") from exc
    if arr.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating-point array ({np.dtype(dtype).name}), got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=dtype)


def check_shape(name, arr, expected, labels=None):
    """Raise ValueError unless ``arr.shape == expected``; ``labels`` name the axes."""
    if arr.shape != tuple(expected):
        what = f" {labels}" if labels else ""
        raise ValueError(f"{name}: expected shape {tuple(expected)}{what}, got {arr.shape}")


def check_ndim(name, arr, ndim, labels):
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array {labels}, got {arr.ndim}-D with shape {arr.shape}")


def check_finite(name, arr):
    """Raise ValueError naming the first NaN/inf entry of a float array."""
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name}: expected finite values, got {arr[tuple(bad)]} at index {tuple(int(i) for i in bad)}")
