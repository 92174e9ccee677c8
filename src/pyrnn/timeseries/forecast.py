"""Multi-step forecasts from a trained model: recursive (one step at a time) and direct (one call).

Legend: B = forecast origins (histories) done at once, L = input length, C = columns of the
model's input, Ct = target columns (those the model predicts), S = steps forecast.

A history is (L,) (one univariate series), (L, C) (one multivariate series) or (B, L, C);
forecasts come back as (S,), (S, Ct) or (B, S, Ct) to match. Every origin is forecast in the
same model call: the only Python loop is over the S steps of the recursion.

- Recursive: the model maps x (B, L, C) -> the next step (B, Ct). Predict step t, write it
  into the window, slide one step, repeat:

      x_0 = history[:, -L:]
      yhat_t = model(x_t)                                   t = 0 .. S-1
      x_{t+1} = [x_t[:, 1:], row_t],  row_t[target_cols] = yhat_t,
                                      row_t[other columns] = future_covariates[:, t]

  The model cannot predict columns it does not output (covariates): their future values must
  be given (``future_covariates``, known or forecast separately); errors compound over steps.
- Direct: a head with S * Ct outputs maps x (B, L, C) -> (B, S * Ct) (h-major: output h * Ct + k
  is step h of target k, the layout of ``y.reshape(len(y), -1)`` for WindowDataset targets
  y (N, S, Ct)) or (B, S, Ct); one call, no compounding, one model per horizon.

``model`` is anything with ``predict(x)`` (a pyrnn model: batched, eval mode, no state kept
for backward) or a plain callable ``model(x)``.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_int
from .gather import target_columns


def as_history(history, input_len=None):
    """(B, L, C) float array of the last ``input_len`` steps (all if None) and the caller's rank."""
    arr = history if isinstance(history, np.ndarray) else np.asarray(history)
    if arr.dtype not in (np.float32, np.float64):
        raise TypeError(f"history: expected a float32 or float64 array, got dtype {arr.dtype}")
    if arr.ndim not in (1, 2, 3):
        raise ValueError(f"history: expected (L,), (L, C) or (B, L, C), got {arr.ndim}-D with shape {arr.shape}")
    rank, shape = arr.ndim, arr.shape
    arr = arr[None, :, None] if rank == 1 else arr[None] if rank == 2 else arr
    if input_len is not None:
        input_len = check_int("input_len", input_len, 1)
        if arr.shape[1] < input_len:
            raise ValueError(f"history: expected at least input_len = {input_len} steps, got {arr.shape[1]}")
        arr = arr[:, arr.shape[1] - input_len :]
    if arr.shape[1] == 0 or arr.shape[2] == 0 or arr.shape[0] == 0:
        raise ValueError(f"history: expected at least one origin, step and column, got shape {shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"history: expected finite values, got {arr[~np.isfinite(arr)][0]}")
    return arr, rank


def match_rank(forecast, rank):
    """(B, S, Ct) -> (S,) for a 1-D history, (S, Ct) for a 2-D one, unchanged for 3-D."""
    return forecast[0, :, 0] if rank == 1 else forecast[0] if rank == 2 else forecast


def _call(model, x):
    fn = getattr(model, "predict", None)
    if fn is None:
        if not callable(model):
            raise TypeError(f"model: expected an object with predict(x) or a callable, got {type(model).__name__}")
        fn = model
    return np.asarray(fn(x))


def _one_step(out, B, Ct, step):
    """A model's one-step output as (B, Ct): accepts (B, Ct), (B, 1, Ct) and, for Ct = 1, (B,)."""
    if out.shape == (B, 1, Ct) or (Ct == 1 and out.shape == (B,)):
        out = out.reshape(B, Ct)
    if out.shape != (B, Ct):
        raise ValueError(f"model output at step {step}: expected shape ({B}, {Ct}) (one step of the target "
                         f"columns for each origin), got {out.shape}")
    _check_output(f"model output at step {step}", out)
    return out


def _check_output(name, out):
    if out.dtype.kind != "f":
        raise TypeError(f"{name}: expected a float array, got dtype {out.dtype}")
    if not np.isfinite(out).all():
        raise ValueError(f"{name}: expected finite values, got {out[~np.isfinite(out)][0]}")


def _future_covariates(future_covariates, cov_cols, B, steps, dtype):
    if cov_cols.size == 0:
        if future_covariates is not None:
            raise ValueError("future_covariates: expected None (the model predicts every input column), got an array")
        return None
    if future_covariates is None:
        raise ValueError(f"future_covariates: expected the future values of input columns {cov_cols.tolist()} "
                         f"(the model does not predict them) for the {steps} steps, got None")
    fc = np.asarray(future_covariates)
    if fc.dtype.kind not in "fiu":
        raise TypeError(f"future_covariates: expected a numeric array, got dtype {fc.dtype}")
    fc = fc.reshape(steps, 1) if fc.ndim == 1 and cov_cols.size == 1 and fc.shape == (steps,) else fc
    if fc.shape not in ((steps, cov_cols.size), (B, steps, cov_cols.size)):
        raise ValueError(f"future_covariates: expected shape ({steps}, {cov_cols.size}) or ({B}, {steps}, "
                         f"{cov_cols.size}) (steps, covariate columns {cov_cols.tolist()}), got {fc.shape}")
    if not np.isfinite(fc).all():
        raise ValueError("future_covariates: expected finite values, got NaN or inf")
    return np.broadcast_to(fc, (B, steps, cov_cols.size)).astype(dtype, copy=False)


def forecast_recursive(model, history, steps, target_cols=None, future_covariates=None, input_len=None):
    """Forecast ``steps`` steps by feeding each one-step prediction back as input.

    Parameters
    ----------
    model : one-step model, x (B, L, C) -> (B, Ct) (``predict`` or a callable)
    history : (L,), (L, C) or (B, L, C) float array: the last L steps before each origin
    steps : int >= 1, S
    target_cols : input columns the model's outputs fill (None: every column)
    future_covariates : (S, C - Ct) or (B, S, C - Ct): the other columns over the forecast
        steps; required when target_cols leaves columns out, refused otherwise
    input_len : use only the last ``input_len`` steps of history (None: all of them)

    Returns
    -------
    (S,), (S, Ct) or (B, S, Ct) forecasts, history's dtype (see the module docstring).
    """
    x0, rank = as_history(history, input_len)
    steps = check_int("steps", steps, 1)
    B, L, C = x0.shape
    tcols = target_columns(target_cols, C)
    cov = np.setdiff1d(np.arange(C), tcols)
    fc = _future_covariates(future_covariates, cov, B, steps, x0.dtype)
    buf = np.empty((B, L + steps, C), dtype=x0.dtype)  # the history, then the forecast rows
    buf[:, :L] = x0
    if fc is not None:
        buf[:, L:, cov] = fc
    for t in range(steps):
        out = _one_step(_call(model, buf[:, t : t + L]), B, tcols.size, t)
        buf[:, L + t, tcols] = out
    return match_rank(buf[:, L:][:, :, tcols], rank)


def forecast_direct(model, history, horizon=None, n_targets=1, input_len=None):
    """Forecast every step of the horizon at once with a multi-output head.

    Parameters
    ----------
    model : x (B, L, C) -> (B, S * Ct) (h-major) or (B, S, Ct)
    history : (L,), (L, C) or (B, L, C) float array
    horizon : expected S (None: read it from the output width)
    n_targets : Ct, the target columns the head predicts per step
    input_len : use only the last ``input_len`` steps of history (None: all of them)

    Returns
    -------
    (S,), (S, Ct) or (B, S, Ct) forecasts, history's dtype.
    """
    x0, rank = as_history(history, input_len)
    n_targets = check_int("n_targets", n_targets, 1)
    B = x0.shape[0]
    out = _call(model, x0)
    if out.ndim == 2 and out.shape[0] == B and out.shape[1] % n_targets == 0:
        out = out.reshape(B, out.shape[1] // n_targets, n_targets)
    if out.ndim != 3 or out.shape[0] != B or out.shape[2] != n_targets or out.shape[1] == 0:
        raise ValueError(f"model output: expected shape ({B}, S * {n_targets}) or ({B}, S, {n_targets}) "
                         f"(S steps of {n_targets} target(s) per origin), got {out.shape}")
    if horizon is not None and out.shape[1] != check_int("horizon", horizon, 1):
        raise ValueError(f"model output: expected horizon = {horizon} steps, got {out.shape[1]} (shape {out.shape})")
    _check_output("model output", out)
    return match_rank(out.astype(x0.dtype, copy=False), rank)
