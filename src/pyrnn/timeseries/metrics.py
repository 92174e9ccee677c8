"""Forecast accuracy: MAE, RMSE, sMAPE, MASE and skill against the naive forecast.

Legend: y = truth, yhat = forecast, n = points compared (every element of the arrays),
y_train = the in-sample (training) values in time order, m = seasonal period.

    MAE   = mean |y - yhat|
    RMSE  = sqrt(mean (y - yhat)^2)
    sMAPE = mean 200 |y - yhat| / (|y| + |yhat|)        in percent, 0 .. 200; a point with
                                                          y = yhat = 0 counts 0 (0/0 := 0)
    MASE  = MAE / mean_t |y_train[t] - y_train[t - m]|   the denominator is the IN-SAMPLE MAE of
                                                          the (seasonal) naive forecast on the
                                                          training series (Hyndman & Koehler 2006;
                                                          for one series, sktime's
                                                          mean_absolute_scaled_error)
    skill = 1 - MAE(y, yhat) / MAE(y, yhat_naive)       OUT-OF-SAMPLE: the naive forecast on the
                                                          same test points; > 0 beats it, 1 is perfect

MASE < 1 says the forecast beats the one-step naive forecast's in-sample error — not the naive
forecast of the same horizon on the test points, which is what ``skill_vs_naive`` measures.
All take float or integer arrays of one shape (no broadcasting) and return a Python float.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_int


def _values(name, a):
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if arr.size == 0:
        raise ValueError(f"{name}: expected at least one value, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: expected finite values, got {arr[~np.isfinite(arr)][0]}")
    return arr


def _errors(y_true, y_pred, pred_name="y_pred"):
    t, p = _values("y_true", y_true), _values(pred_name, y_pred)
    if t.shape != p.shape:
        raise ValueError(f"{pred_name}: expected the shape of y_true {t.shape}, got {p.shape}")
    return t, p


def mae(y_true, y_pred):
    """Mean absolute error."""
    t, p = _errors(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def rmse(y_true, y_pred):
    """Root mean squared error."""
    t, p = _errors(y_true, y_pred)
    return float(np.sqrt(np.mean((t - p) ** 2)))


def smape(y_true, y_pred):
    """Symmetric MAPE in percent, 0..200: mean of 200 |y - yhat| / (|y| + |yhat|), with 0/0 := 0."""
    t, p = _errors(y_true, y_pred)
    den = np.abs(t) + np.abs(p)
    ratio = np.divide(np.abs(t - p), den, out=np.zeros_like(den), where=den > 0)
    return float(200.0 * np.mean(ratio))


def mase(y_true, y_pred, y_train, period=1, multioutput="uniform_average"):
    """Mean absolute scaled error: MAE / in-sample MAE of the period-m naive forecast on y_train.

    Parameters
    ----------
    y_true, y_pred : arrays of one shape; with a 2-D y_train (T, Ct) their last axis is the Ct columns
    y_train : (T,) one series or (T, Ct) one per column, in time order, T > period
    period : m >= 1 (1: the last-value naive forecast; the season length for seasonal data)
    multioutput : with several columns, "uniform_average" (the mean of the per-column MASEs, each
        column scaled by its own denominator) or "raw_values" (the (Ct,) array)

    Raises ValueError if a denominator is 0 (a training series constant over ``period`` steps).
    """
    t, p = _errors(y_true, y_pred)
    period = check_int("period", period, 1)
    train = _values("y_train", y_train)
    if train.ndim not in (1, 2):
        raise ValueError(f"y_train: expected (T,) or (T, Ct), got shape {train.shape}")
    if train.shape[0] <= period:
        raise ValueError(f"y_train: expected more than period = {period} steps, got {train.shape[0]}")
    if multioutput not in ("uniform_average", "raw_values"):
        raise ValueError(f"multioutput: expected 'uniform_average' or 'raw_values', got {multioutput!r}")
    scale = np.mean(np.abs(train[period:] - train[:-period]), axis=0)          # () or (Ct,)
    if np.any(scale == 0):
        raise ValueError(f"y_train: expected a series that changes over period = {period} steps (in-sample naive "
                         "MAE > 0), got a constant one: MASE is undefined")
    if train.ndim == 1:
        return float(np.mean(np.abs(t - p)) / scale)
    if t.ndim == 0 or t.shape[-1] != train.shape[1]:
        raise ValueError(f"y_true: expected a last axis of {train.shape[1]} columns (as y_train), got shape {t.shape}")
    per_column = np.abs(t - p).reshape(-1, train.shape[1]).mean(axis=0) / scale
    return per_column if multioutput == "raw_values" else float(per_column.mean())


def skill_vs_naive(y_true, y_pred, y_naive):
    """1 - MAE(y_true, y_pred) / MAE(y_true, y_naive) on the same points (out of sample).

    Raises ValueError if the naive forecast is exact (MAE 0): the skill is undefined.
    """
    t, p = _errors(y_true, y_pred)
    _, n = _errors(y_true, y_naive, pred_name="y_naive")
    naive_mae = np.mean(np.abs(t - n))
    if naive_mae == 0:
        raise ValueError("y_naive: expected a naive forecast with some error, got MAE 0: the skill is undefined")
    return float(1.0 - np.mean(np.abs(t - p)) / naive_mae)
