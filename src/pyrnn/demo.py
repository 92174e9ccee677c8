"""``python -m pyrnn demo``: the main job, end to end on real data.

A Conv1D + GRU forecaster (the convolution reads local patterns, the GRU carries them through
time) learns the yearly
sunspot numbers 1700-2008 (public domain, bundled). The last ``test_years`` are held
out: the scaler is fitted and the model trained on the years before them only. On the
held-out tail the model forecasts one year ahead from the true past ``input_len`` years,
and it is compared with the naive last-value forecast on the same years:

- MAE, RMSE, sMAPE of the model (and of the naive forecast);
- MASE: MAE / the in-sample MAE of the last-value forecast on the training years;
- skill vs naive: 1 - MAE(model) / MAE(naive) on the held-out years (> 0: better than naive).

With matplotlib installed it writes ``demo_forecast.png`` (forecast vs actual) and
``demo_training.png`` (the training curve) into ``out_dir`` and prints their absolute paths.
"""

from __future__ import annotations

import os

import numpy as np

from . import datasets, timeseries
from .callbacks import EarlyStopping
from .layers import Conv1D, Dense, LastStep
from .layers.recurrent import GRU
from .models import Sequential
from .plots import save_lines


def build_model(seed=0):
    """Conv1D (causal, 16 filters of 5 years) -> GRU(32) -> last step -> Dense(1)."""
    return Sequential([Conv1D(1, 16, 5, padding="causal", seed=seed), GRU(16, 32, seed=seed + 1), LastStep(),
                       Dense(32, 1, seed=seed + 2)])


def run(epochs=80, input_len=24, test_years=30, seed=0, verbose=1, out_dir=".", plots=True):
    """Train, evaluate on the held-out tail, print the metrics; returns them as a dict."""
    series = datasets.load_sunspots()
    years, y = series.time, series.values.astype(np.float32)
    train_end = len(y) - test_years
    scaler = timeseries.StandardScaler().fit(y[:train_end])
    z = scaler.transform(y).astype(np.float32)

    train = timeseries.WindowDataset(z, input_len, horizon=1, stop=train_end)
    x, t = train.arrays()
    model = build_model(seed).compile("adam", "mse", lr=3e-3, metrics=["mae"], clip_norm=1.0)
    stop = EarlyStopping(monitor="val_loss", patience=20, restore_best_weights=True)
    history = model.fit(x, t.reshape(len(t), -1), epochs=epochs, batch_size=16, validation_split=0.15,
                        seed=seed, verbose=verbose, callbacks=[stop])

    test = timeseries.WindowDataset(z, input_len, horizon=1, start=train_end)
    xt, _ = test.arrays()
    pred = scaler.inverse_transform(model.predict(xt).reshape(-1)).reshape(-1)
    truth = y[train_end:]
    naive = y[train_end - 1 : -1]
    metrics = {
        "MAE": timeseries.mae(truth, pred),
        "RMSE": timeseries.rmse(truth, pred),
        "sMAPE": timeseries.smape(truth, pred),
        "MASE": timeseries.mase(truth, pred, y[:train_end], period=1),
        "skill_vs_naive": timeseries.skill_vs_naive(truth, pred, naive),
        "naive_MAE": timeseries.mae(truth, naive),
    }
    print(f"sunspots {years[0]}-{years[-1]}: trained on {years[0]}-{years[train_end - 1]}, "
          f"held-out tail {years[train_end]}-{years[-1]} ({test_years} years), one-year-ahead forecasts")
    for k, v in metrics.items():
        print(f"{k:15s} {v:.4f}")
    if plots:
        _plots(out_dir, years[train_end:], truth, pred, naive, history)
    return metrics


def _plots(out_dir, years, truth, pred, naive, history):
    """The forecast against the actual numbers, and the training curve (each path printed)."""
    save_lines(os.path.join(out_dir, "demo_forecast.png"),
               {"actual": (years, truth), "Conv1D + GRU, one year ahead": (years, pred), "naive (last value)": (years, naive)},
               title="Held-out tail: forecast vs actual", xlabel="year", ylabel="sunspot number",
               styles={"actual": "k-", "Conv1D + GRU, one year ahead": "C0-o", "naive (last value)": "C1--"})
    save_lines(os.path.join(out_dir, "demo_training.png"),
               {"training loss": history.history["loss"], "validation loss": history.history["val_loss"]},
               title="Training curve", xlabel="epoch", ylabel="MSE (standardised)", logy=True)
