"""What :class:`~pyrnn.timeseries.Forecaster` decides from a series before any training, from the
training values only: checks, the season length, a variance-stabilising Box-Cox transform, the
per-series scale and the per-window level.

Legend: T = steps of one series, m = season length, L = input length, H = horizon,
c = full seasons (cycles) or blocks of the series.

- Season (``find_season``): the series minus its least-squares line, its autocorrelation
  ``r(k)`` for k = 2 .. T // 3, and the lag of the highest local maximum of r with
  ``r(k) > max(0.2, 2 / sqrt(T))`` (a 5 % white-noise band, floored); 1 (no season) if none. Of
  peaks within 10 % of the highest the smallest lag wins: the season, not a multiple of it (El
  Nino's r(48) edges out r(12)).
- Box-Cox (``choose_boxcox``): y' = (y^lam - 1) / lam, y' = log y for lam = 0. The series is cut
  into c blocks (full seasons, or blocks of max(m, 8) steps when m = 1); across blocks the
  spread s_c (standard deviation of the block's lag-1 differences) is regressed on the level
  l_c (the block's mean) in logs: s ~ l^beta. beta = 1 is a spread proportional to the level
  (multiplicative seasonality: log), beta = 1/2 a Poisson-like spread (square root), beta = 0
  none. lam = 1 - beta rounded to {0, 1/2, 1}; only if the levels differ enough to tell
  (max l / min l >= 1.5, c >= 4) and the transform is defined on every training value (y > 0
  for the log, y >= 0 for the square root; else the next weaker one).
- Scale (``series_scale``): the in-sample MAE of the seasonal naive forecast (lag m, else lag 1)
  on the transformed training values: the MASE denominator, so that a unit of the network's
  loss is one "typical seasonal change" in every series of a global model.
- Level (``window_level``): each input window is expressed relative to the mean of its last
  max(m, 4) steps (a full season averages the seasonal pattern out; without a season, four steps
  average some noise out: Nile's MASE 0.88 -> 0.81 against the last value), in units of the scale, as
  N-BEATS and ES-RNN normalise windows: the network never sees an absolute level, so a trend
  takes the series outside the training range without the network extrapolating.
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_series", "find_season", "choose_boxcox", "boxcox", "inv_boxcox", "series_scale", "window_level"]


def check_series(name, y, min_length=1):
    """``y`` as a 1-D float64 array of finite values; a clear error otherwise."""
    if isinstance(y, (str, bytes, dict)) or y is None:
        raise TypeError(f"{name}: expected a 1-D array of numbers, got {type(y).__name__}")
    try:
        arr = np.asarray(y)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected a 1-D array of numbers, got {type(y).__name__} ({exc})") from None
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected a 1-D array of numbers (float or integer), got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D series (T,), got shape {arr.shape}")
    if arr.shape[0] < min_length:
        raise ValueError(f"{name}: expected at least {min_length} values, got {arr.shape[0]}")
    arr = arr.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{name}: expected finite values, got {arr[bad[0]]} at index {bad[0]} "
                         f"({bad.size} NaN or inf in all); fill or drop them first")
    return arr


def _acf(x, max_lag):
    """Sample autocorrelation r(0 .. max_lag) of x (mean removed), by one FFT."""
    x = x - x.mean()
    n = x.size
    f = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(f * np.conj(f))[: max_lag + 1]
    return ac / ac[0] if ac[0] > 0 else np.zeros(max_lag + 1)


def find_season(y, max_lag=None):
    """The season length m from the autocorrelation peak (see the module docstring); 1 if none."""
    y = np.asarray(y, dtype=np.float64)
    T = y.size
    max_lag = T // 3 if max_lag is None else min(max_lag, T // 3)
    if max_lag < 3:
        return 1
    t = np.arange(T, dtype=np.float64)
    resid = y - np.polyval(np.polyfit(t, y, 1), t)
    r = _acf(resid, max_lag + 1)
    k = np.arange(2, max_lag + 1)
    peaks = k[(r[k] > r[k - 1]) & (r[k] >= r[k + 1]) & (r[k] > max(0.2, 2 / np.sqrt(T)))]
    if not peaks.size:
        return 1
    return int(peaks[np.argmax(r[peaks] >= 0.9 * r[peaks].max())])  # the fundamental, not a multiple of it


def choose_boxcox(y, season):
    """lam in {0, 0.5, 1} for :func:`boxcox` (1: no transform), from the training values ``y``."""
    y = np.asarray(y, dtype=np.float64)
    block = season if season > 1 else max(season, 8)
    c = y.size // block
    if c < 4:
        return 1.0
    blocks = y[y.size - c * block :].reshape(c, block)     # the most recent full blocks
    level = blocks.mean(axis=1)
    spread = np.diff(blocks, axis=1).std(axis=1) if block > 2 else blocks.std(axis=1)
    keep = (level > 0) & (spread > 0)
    if keep.sum() < 4 or level[keep].max() / level[keep].min() < 1.5:
        return 1.0
    beta = np.polyfit(np.log(level[keep]), np.log(spread[keep]), 1)[0]
    lam = 0.0 if beta > 0.75 else 0.5 if beta > 0.25 else 1.0
    if lam == 0.0 and y.min() <= 0:
        lam = 0.5
    if lam == 0.5 and y.min() < 0:
        lam = 1.0
    return lam


def boxcox(y, lam):
    """(y^lam - 1) / lam, log y for lam = 0, y itself for lam = 1 (no transform)."""
    if lam == 1.0:
        return np.asarray(y, dtype=np.float64).copy()
    if lam == 0.0:
        return np.log(y)
    return (np.power(y, lam) - 1.0) / lam


def inv_boxcox(z, lam):
    """The inverse of :func:`boxcox`; values below its domain (lam z + 1 < 0) map to 0."""
    if lam == 1.0:
        return np.asarray(z, dtype=np.float64).copy()
    if lam == 0.0:
        return np.exp(z)
    return np.power(np.maximum(lam * z + 1.0, 0.0), 1.0 / lam)


def series_scale(z, season):
    """In-sample MAE of the seasonal naive forecast on z (lag m, else lag 1, else std, else 1)."""
    for lag in dict.fromkeys((season, 1)):
        if z.size > lag:
            s = np.mean(np.abs(z[lag:] - z[:-lag]))
            if s > 0:
                return float(s)
    s = float(np.std(z))
    return s if s > 0 else 1.0


def window_level(x, season):
    """Level of each window x (..., L): the mean of its last max(m, 4) steps (all L if fewer) -> (...,)."""
    return x[..., x.shape[-1] - min(max(season, 4), x.shape[-1]) :].mean(axis=-1)
