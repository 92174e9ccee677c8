"""Rolling-origin backtesting (time-series cross-validation) on one WindowDataset.

Legend: n = origins, L = input length, H = horizon, Ct = target columns.

An origin t is the time index of the first forecast step: steps before t are known, steps
[t, t + H) are forecast from the input window [t - L, t) and compared with the truth.

    for each origin t (all at once when the model is fixed):
        model_t = fit_fn(dataset.subset(dataset.start, t))   only with refit=True: an expanding
                                                               window of the targets before t
        yhat    = forecast of steps [t, t + H)               recursive or direct
        naive   = the last value before t, repeated          :func:`naive_forecast`
        metrics of (truth, yhat) on those H x Ct points

Nothing is rebuilt per origin: the inputs and truths of every origin are gathered from the
dataset's series in one call, and a refit receives a ``subset`` view of the same dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._checks import check_int
from .baselines import naive_forecast
from .forecast import forecast_direct, forecast_recursive
from .gather import gather_windows
from .metrics import mae, mase, rmse, skill_vs_naive, smape

METRICS = ("mae", "rmse", "smape", "mase", "naive_mae", "skill")


@dataclass
class BacktestResult:
    """Per-origin forecasts and metrics.

    Attributes
    ----------
    origins : (n,) time index of each origin's first forecast step
    forecasts, actuals, naive : (n, H, Ct) the model's forecasts, the truth, the naive forecasts
    metrics : name -> (n,) array, one value per origin: ``mae``, ``rmse``, ``smape`` (0..200 %),
        ``mase`` (scaled by the in-sample naive MAE of every target value before the origin),
        ``naive_mae`` and ``skill`` = 1 - mae / naive_mae (NaN where naive_mae is 0)
    """

    origins: np.ndarray
    forecasts: np.ndarray
    actuals: np.ndarray
    naive: np.ndarray
    metrics: dict = field(default_factory=dict)

    def summary(self):
        """The mean of each per-origin metric, and ``pooled_skill``: the skill over every point of
        every origin at once (1 - total model MAE / total naive MAE)."""
        out = {k: float(np.nanmean(v)) for k, v in self.metrics.items()}
        out["pooled_skill"] = skill_vs_naive(self.actuals, self.forecasts, self.naive)
        return out


def _check_origins(origins, dataset, horizon):
    arr = np.atleast_1d(np.asarray(origins))
    if arr.dtype.kind not in "iu" or arr.ndim != 1 or arr.size == 0:
        raise TypeError(f"origins: expected a non-empty 1-D sequence of integer time indices, got {origins!r}")
    lo, hi = max(dataset.start, dataset.input_len), dataset.stop - horizon
    bad = np.flatnonzero((arr < lo) | (arr > hi))
    if bad.size:
        raise ValueError(f"origins[{bad[0]}]: expected a time index in [{lo}, {hi}] (input_len={dataset.input_len} "
                         f"steps before it, horizon={horizon} steps after it inside the dataset's target range "
                         f"[{dataset.start}, {dataset.stop})), got {arr[bad[0]]}")
    return arr.astype(np.int64)


def _forecast(model, x, future, dataset, horizon, strategy):
    if strategy == "direct":
        return forecast_direct(model, x, horizon=horizon, n_targets=dataset.n_targets)
    cov = np.setdiff1d(np.arange(dataset.n_features), dataset.target_cols)
    return forecast_recursive(model, x, horizon, target_cols=dataset.target_cols,
                              future_covariates=future[:, :, cov] if cov.size else None)


def rolling_origin(model_or_fit_fn, dataset, origins, horizon=None, refit=False, strategy="recursive",
                   period=1, inverse_transform=None, distributed=None):
    """Forecast from each origin and score it; one WindowDataset, no per-origin rebuild.

    Parameters
    ----------
    model_or_fit_fn : with ``refit=False`` a trained model (``predict`` or callable), used for
        every origin in one batched forecast; with ``refit=True`` a function
        ``fit_fn(train: WindowDataset) -> model`` called at each origin with the view of the
        windows whose targets lie before it
    dataset : WindowDataset; its series, input_len and target_cols define the problem
    origins : time indices of the first forecast step, each in [max(start, L), stop - H]
    horizon : H, steps forecast per origin (default: dataset.horizon)
    strategy : "recursive" (one-step model, fed back; covariate columns take their TRUE future
        values from the series, i.e. they are assumed known in advance) or "direct" (a head
        with H * Ct outputs)
    period : m of the MASE denominator (1: last-value naive)
    inverse_transform : optional callable applied to forecasts, truths, naive forecasts and the
        in-sample values (all (..., Ct)) before scoring, e.g.
        ``lambda a: scaler.inverse_transform(a, columns=dataset.target_cols)``. MASE and skill
        are unchanged by a per-column affine scaling; MAE, RMSE and sMAPE are not.
    distributed : None, ``"mpi"`` or a :class:`pyrnn.distributed.MPIStrategy`: under ``mpiexec -n N``
        origin i is refitted and forecast on rank i mod N (without refit: each rank forecasts a
        contiguous block of origins); every rank returns the whole result, in origin order

    Returns
    -------
    BacktestResult
    """
    horizon = dataset.horizon if horizon is None else check_int("horizon", horizon, 1)
    if strategy not in ("recursive", "direct"):
        raise ValueError(f"strategy: expected 'recursive' or 'direct', got {strategy!r}")
    if refit not in (True, False):
        raise TypeError(f"refit: expected True or False, got {refit!r}")
    t0 = _check_origins(origins, dataset, horizon)
    L, cols = dataset.input_len, dataset.target_cols
    x, truth = gather_windows(dataset.series, t0 - L, L, horizon, cols)       # (n, L, C), (n, H, Ct)
    future, _ = gather_windows(dataset.series, t0, horizon, 0)                # (n, H, C): covariates
    if refit:
        def run(rows):  # rows: one origin
            t = int(t0[rows][0])
            return _forecast(model_or_fit_fn(dataset.subset(dataset.start, t)), x[rows], future[rows], dataset, horizon,
                             strategy)
        blocks = [slice(i, i + 1) for i in range(len(t0))]
    else:
        def run(rows):
            return _forecast(model_or_fit_fn, x[rows], future[rows], dataset, horizon, strategy)
        blocks = [slice(0, len(t0))]
    if distributed is None:
        pred = np.concatenate([run(rows) for rows in blocks], axis=0)
    else:
        from ..distributed import get_strategy

        ranks = get_strategy(distributed)
        if not refit:  # one contiguous block of origins per rank
            cuts = ranks.bounds(len(t0))
            blocks = [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
        with ranks.guard("rolling_origin"):
            pred = np.concatenate(ranks.map(run, blocks), axis=0)
    naive = naive_forecast(x, horizon, target_cols=cols)
    undo = (lambda a: a) if inverse_transform is None else inverse_transform
    pred, truth, naive = (np.asarray(undo(a)) for a in (pred, truth, naive))
    rows = {k: [] for k in METRICS}
    for i, t in enumerate(t0):
        in_sample = np.asarray(undo(dataset.series[:t, cols]))                 # (t, Ct)
        rows["mae"].append(mae(truth[i], pred[i]))
        rows["rmse"].append(rmse(truth[i], pred[i]))
        rows["smape"].append(smape(truth[i], pred[i]))
        rows["mase"].append(mase(truth[i], pred[i], in_sample, period=period))
        rows["naive_mae"].append(mae(truth[i], naive[i]))
        rows["skill"].append(1.0 - rows["mae"][-1] / rows["naive_mae"][-1] if rows["naive_mae"][-1] > 0 else np.nan)
    return BacktestResult(t0, pred, truth, naive, {k: np.asarray(v) for k, v in rows.items()})
