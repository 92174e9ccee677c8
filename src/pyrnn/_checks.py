"""Input checks shared by the Python layer: every message says what was expected and what came."""

from __future__ import annotations

import numpy as np


def float_input(name, value, dtype=None):
    """``value`` as a C-contiguous float32 or float64 array of any rank (0-D included).

    With a ``dtype``, any float array is cast to it (layers with parameters, and a ``dy``
    in the dtype of its forward); with ``dtype=None`` the array keeps its own float dtype
    (layers without parameters follow their input; float16 is widened, losslessly, to
    float32). Integer, boolean, complex and object arrays raise TypeError: silently
    rounding them would hide a bug in the caller's data pipeline.
    """
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name}: expected an array of floats, got {type(value).__name__} ({exc})") from exc
    if dtype is not None:
        if arr.dtype.kind != "f":
            raise TypeError(f"{name}: expected a floating-point array ({np.dtype(dtype).name}), got dtype {arr.dtype}")
        return np.asarray(arr, dtype=dtype, order="C")
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    if arr.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: expected a float32 or float64 array, got dtype {arr.dtype}")
    return np.asarray(arr, order="C")


def as_float_array(name, value, dtype):
    """``value`` as a C-contiguous array of ``dtype`` (see :func:`float_input`)."""
    return float_input(name, value, dtype)


def check_lengths(lengths, batch, time, minimum=0):
    """Valid steps per sample: integers (batch,) in [minimum, time], as int64."""
    arr = np.asarray(lengths)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"lengths: expected integers, got dtype {arr.dtype}")
    check_shape("lengths", arr, (batch,), "(batch,)")
    bad = np.flatnonzero((arr < minimum) | (arr > time))
    if bad.size:
        raise ValueError(f"lengths[{bad[0]}]: expected a value in [{minimum}, {time}] (the time axis of x), got {arr[bad[0]]}")
    return np.ascontiguousarray(arr, dtype=np.int64)


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
