"""Baseline forecasts every model must beat.

Legend: B = origins, L = history length, C = columns, Ct = target columns, H = horizon,
m = seasonal period. Shapes follow :mod:`pyrnn.timeseries.forecast`: a history (L,), (L, C)
or (B, L, C) gives forecasts (H,), (H, Ct) or (B, H, Ct).

    naive (last value):  yhat[h] = y[L - 1]                        h = 0 .. H-1
    seasonal naive:      yhat[h] = y[L - m + (h mod m)]            (the last observed season, repeated)
"""

from __future__ import annotations

import numpy as np

from .._checks import check_int
from .forecast import as_history, match_rank
from .gather import target_columns


def naive_forecast(history, horizon, target_cols=None):
    """Repeat the last observed value of each target column ``horizon`` times."""
    x, rank = as_history(history)
    horizon = check_int("horizon", horizon, 1)
    cols = target_columns(target_cols, x.shape[2])
    last = x[:, -1:, cols]                                            # (B, 1, Ct)
    return match_rank(np.repeat(last, horizon, axis=1), rank)


def seasonal_naive_forecast(history, horizon, period, target_cols=None):
    """Repeat the last observed season (``period`` steps) of each target column; needs L >= period."""
    x, rank = as_history(history)
    horizon = check_int("horizon", horizon, 1)
    period = check_int("period", period, 1)
    L = x.shape[1]
    if L < period:
        raise ValueError(f"history: expected at least period = {period} steps, got {L}")
    cols = target_columns(target_cols, x.shape[2])
    rows = L - period + np.arange(horizon) % period                   # (H,)
    return match_rank(x[:, rows][:, :, cols], rank)
