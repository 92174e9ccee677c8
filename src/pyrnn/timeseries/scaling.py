"""Per-column scalers, fitted on the training part of a series only.

Legend: T = time steps, C = columns (the last axis; a 1-D array is one column).

Both scalers are an affine map per column, with statistics in float64:

    transform:          z = (x - offset) / scale
    inverse_transform:  x = z * scale + offset

- ``StandardScaler``: offset = mean, scale = standard deviation (ddof=0) over every axis but the
  last; a constant column gets scale 1 (as scikit-learn).
- ``MinMaxScaler(feature_range=(a, b))``: maps [min, max] to [a, b]: scale = (max - min) / (b - a),
  offset = min - a * scale; a constant column gets max - min := 1.

Fit on the training part only (``scaler.fit(series[split.train])``) and transform every part
with those statistics: the validation and test parts must not shape the scaling. ``columns``
in transform/inverse_transform selects which fitted columns the array's last axis holds —
e.g. ``inverse_transform(forecast, columns=dataset.target_cols)`` for (B, H, Ct) forecasts.
"""

from __future__ import annotations

import numpy as np


def _numeric(name, x):
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected a numeric (float or integer) array, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(f"{name}: expected an array (T,) or (..., C), got a scalar")
    return arr


class _AffineScaler:
    """Shared machinery: fit computes (offset, scale) per column; subclasses say how."""

    def __init__(self):
        self.offset = None
        self.scale = None

    def _stats(self, x2d):  # (N, C) float64 -> offset (C,), scale (C,)
        raise NotImplementedError

    def fit(self, x):
        """Statistics of ``x`` (T,) or (..., C) per column, over every other axis. Returns self."""
        arr = _numeric("x", x)
        x2d = arr.reshape(-1, 1) if arr.ndim == 1 else arr.reshape(-1, arr.shape[-1])
        if x2d.shape[0] == 0 or x2d.shape[1] == 0:
            raise ValueError(f"x: expected at least one value per column, got shape {arr.shape}")
        x2d = x2d.astype(np.float64, copy=False)
        if not np.isfinite(x2d).all():
            raise ValueError(f"x: expected finite values, got {x2d[~np.isfinite(x2d)][0]}")
        self.offset, self.scale = self._stats(x2d)
        return self

    def _select(self, name, arr, columns):
        if self.offset is None:
            raise ValueError(f"{type(self).__name__}: expected a fitted scaler (call fit first), got an unfitted one")
        n = self.offset.size
        if columns is None:
            cols = np.arange(n)
        else:
            cols = np.atleast_1d(np.asarray(columns))
            if cols.dtype.kind not in "iu" or cols.ndim != 1:
                raise TypeError(f"columns: expected an int or a 1-D sequence of ints, got {columns!r}")
            bad = np.flatnonzero((cols < -n) | (cols >= n))
            if bad.size:
                raise ValueError(f"columns[{bad[0]}]: expected a fitted column in [{-n}, {n}), got {cols[bad[0]]}")
        if cols.size == 1:  # one statistic: any shape
            return self.offset[cols[0]], self.scale[cols[0]]
        if arr.ndim < 2 or arr.shape[-1] != cols.size:
            raise ValueError(f"{name}: expected a last axis of {cols.size} columns, got shape {arr.shape}")
        return self.offset[cols], self.scale[cols]

    @staticmethod
    def _out_dtype(arr):
        return arr.dtype if arr.dtype.kind == "f" else np.float64

    def transform(self, x, columns=None):
        """(x - offset) / scale per column, in x's float dtype (integers give float64)."""
        arr = _numeric("x", x)
        offset, scale = self._select("x", arr, columns)
        return ((arr - offset) / scale).astype(self._out_dtype(arr), copy=False)

    def inverse_transform(self, z, columns=None):
        """z * scale + offset per column: back to the original units."""
        arr = _numeric("z", z)
        offset, scale = self._select("z", arr, columns)
        return (arr * scale + offset).astype(self._out_dtype(arr), copy=False)

    def fit_transform(self, x):
        return self.fit(x).transform(x)

    # ------------------------------------------------------------ state
    def get_state(self):
        """``{"offset": (C,), "scale": (C,)}`` float64 copies, for a checkpoint."""
        if self.offset is None:
            raise ValueError(f"{type(self).__name__}: expected a fitted scaler (call fit first), got an unfitted one")
        return {"offset": self.offset.copy(), "scale": self.scale.copy()}

    def set_state(self, state):
        """Restore what :meth:`get_state` returned (checked: two (C,) finite arrays, scale > 0)."""
        missing = sorted({"offset", "scale"} - set(state))
        if missing:
            raise ValueError(f"state: expected keys ['offset', 'scale'], missing {missing}")
        offset = np.asarray(state["offset"], dtype=np.float64).ravel()
        scale = np.asarray(state["scale"], dtype=np.float64).ravel()
        if offset.shape != scale.shape or offset.size == 0:
            raise ValueError(f"state: expected offset and scale of one shape (C,), got {offset.shape} and {scale.shape}")
        if not (np.isfinite(offset).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError("state: expected finite offsets and positive finite scales, got "
                             f"offset={offset.tolist()}, scale={scale.tolist()}")
        self.offset, self.scale = offset.copy(), scale.copy()
        return self


class StandardScaler(_AffineScaler):
    """z = (x - mean) / std per column (std with ddof=0; a constant column gets std 1)."""

    def _stats(self, x2d):
        std = x2d.std(axis=0)
        return x2d.mean(axis=0), np.where(std > 0, std, 1.0)

    def get_config(self):
        return {"class": "StandardScaler"}


class MinMaxScaler(_AffineScaler):
    """Maps each column's training [min, max] onto ``feature_range`` (a, b), a < b."""

    def __init__(self, feature_range=(0.0, 1.0)):
        super().__init__()
        lo, hi = (float(v) for v in feature_range)
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ValueError(f"feature_range: expected finite (a, b) with a < b, got {feature_range!r}")
        self.feature_range = (lo, hi)

    def _stats(self, x2d):
        a, b = self.feature_range
        lo, hi = x2d.min(axis=0), x2d.max(axis=0)
        width = np.where(hi > lo, hi - lo, 1.0)
        scale = width / (b - a)
        return lo - a * scale, scale

    def get_config(self):
        return {"class": "MinMaxScaler", "feature_range": list(self.feature_range)}
