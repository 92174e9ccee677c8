"""Sliding windows over one series, gathered batch by batch.

Legend: T = time steps, C = columns (the target's own past and covariates), L = input
length (the notes' "delay": how many past steps the model sees), H = horizon, Ct = target
columns, N = windows.

Window n starts at s = starts[n]:

    x[n] = series[s : s + L, :]                    (L, C)
    y[n] = series[s + L : s + L + H, target_cols]  (H, Ct)

``start``/``stop`` bound the TARGETS: every window's targets lie in [start, stop). Its
inputs reach L steps further back, before ``start`` when start > 0 (into the previous
part of a temporal split — past values are known when forecasting, so this is no leak),
but never before step 0. Windows are spaced ``stride`` steps apart from the first one.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_int
from .gather import as_series, gather_windows, target_columns


class WindowDataset:
    """The (x, y) windows of ``series``; nothing of size (N, L, C) is built until asked.

    Parameters
    ----------
    series : (T, C) or (T,) float32/float64 array; kept as a view, never copied
    input_len : int >= 1, L
    horizon : int >= 1, H
    stride : int >= 1, steps between consecutive window starts
    target_cols : None (every column), an int or a sequence of ints: the columns of y
    start, stop : the targets of every window lie in [start, stop) (stop None = T)

    >>> ds = WindowDataset(series, input_len=48, horizon=1)
    >>> x, y = ds.batch(np.arange(32))     # (32, 48, C), (32, 1, C): only these 32 windows are copied
    """

    def __init__(self, series, input_len, horizon=1, stride=1, target_cols=None, start=0, stop=None):
        self.series = as_series(series)
        T = self.series.shape[0]
        self.input_len = check_int("input_len", input_len, 1)
        self.horizon = check_int("horizon", horizon, 1)
        self.stride = check_int("stride", stride, 1)
        self.target_cols = target_columns(target_cols, self.series.shape[1])
        self.start = check_int("start", start, 0)
        self.stop = T if stop is None else check_int("stop", stop, 0)
        if self.stop > T:
            raise ValueError(f"stop: expected at most T = {T}, got {self.stop}")
        first = max(self.start - self.input_len, 0)
        last = self.stop - self.input_len - self.horizon
        if last < first:
            raise ValueError(f"start, stop: expected room for at least one window (input_len={self.input_len} + "
                             f"horizon={self.horizon} steps, targets in [{self.start}, {self.stop})), got none in T={T} steps")
        used = self.series[first : self.stop]
        if not np.isfinite(used).all():
            t, c = np.argwhere(~np.isfinite(used))[0]
            raise ValueError(f"series: expected finite values, got {used[t, c]} at index ({first + t}, {c})")
        self.starts = np.arange(first, last + 1, self.stride, dtype=np.int64)

    # ------------------------------------------------------------ sizes
    def __len__(self):
        return self.starts.size

    @property
    def n_features(self):
        """C, the columns of x."""
        return self.series.shape[1]

    @property
    def n_targets(self):
        """Ct, the columns of y."""
        return self.target_cols.size

    @property
    def target_times(self):
        """(N,) time index of each window's first target step (starts + L)."""
        return self.starts + self.input_len

    def __repr__(self):
        return (f"WindowDataset(windows={len(self)}, input_len={self.input_len}, horizon={self.horizon}, "
                f"stride={self.stride}, columns={self.n_features}, target_cols={self.target_cols.tolist()}, "
                f"targets in [{self.start}, {self.stop}))")

    # ------------------------------------------------------------ batches
    def batch(self, indices):
        """Windows ``indices`` (ints in [-N, N) or a slice) -> x (B, L, C), y (B, H, Ct)."""
        if isinstance(indices, slice):
            starts = self.starts[indices]
        else:
            idx = np.asarray(indices)
            if idx.dtype.kind not in "iu":
                raise TypeError(f"indices: expected integer window indices or a slice, got dtype {idx.dtype}")
            if idx.ndim != 1:
                raise ValueError(f"indices: expected a 1-D array of window indices, got shape {idx.shape}")
            n = len(self)
            bad = np.flatnonzero((idx < -n) | (idx >= n))
            if bad.size:
                raise ValueError(f"indices[{bad[0]}]: expected a window index in [{-n}, {n}), got {idx.ravel()[bad[0]]}")
            starts = self.starts[idx]
        return gather_windows(self.series, starts, self.input_len, self.horizon, self.target_cols)

    def arrays(self):
        """Every window at once: x (N, L, C), y (N, H, Ct) — for data that fits in memory."""
        return self.batch(slice(None))

    def batches(self, batch_size, shuffle=False, seed=None):
        """Yield (x, y) batches of ``batch_size`` windows, in time order or shuffled with ``seed``."""
        batch_size = check_int("batch_size", batch_size, 1)
        order = np.random.default_rng(seed).permutation(len(self)) if shuffle else np.arange(len(self))
        for i in range(0, len(self), batch_size):
            yield self.batch(order[i : i + batch_size])

    # ------------------------------------------------------------ views
    def subset(self, start, stop):
        """The windows of this dataset whose targets lie in [start, stop): a view on the same
        series (no copy) and the same stride grid. Used by temporal splits and backtests."""
        start, stop = check_int("start", start, 0), check_int("stop", stop, 0)
        if not self.start <= start < stop <= self.stop:
            raise ValueError(f"start, stop: expected {self.start} <= start < stop <= {self.stop} (this dataset's "
                             f"target range), got start={start}, stop={stop}")
        times = self.target_times
        lo = int(np.searchsorted(times, start, side="left"))
        hi = int(np.searchsorted(times, stop - self.horizon, side="right"))
        if hi <= lo:
            raise ValueError(f"start, stop: expected room for at least one window with targets in [{start}, {stop}) "
                             f"(horizon={self.horizon}, stride={self.stride}), got none")
        view = object.__new__(WindowDataset)
        view.__dict__.update(self.__dict__)
        view.start, view.stop, view.starts = start, stop, self.starts[lo:hi]
        return view
