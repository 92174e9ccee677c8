"""Training jobs run both in the test process (one process) and under ``mpiexec -n 2`` by
tests/distributed/test_mpi.py: ``python mpi_jobs.py OUT_DIR JOB [JOB ...]`` runs each job with
``distributed=...`` and every rank writes ``OUT_DIR/<job>.rank<r>.npz`` (final weights, History).

Each job returns ``(model, extra)``; the models are small and trained a few steps."""

from __future__ import annotations

import os
import sys
import time

import numpy as np

import pyrnn
from pyrnn.callbacks import EarlyStopping, LearningRateScheduler, ModelCheckpoint, TerminateOnNaN
from pyrnn.layers import Conv1D, Dense, Dropout, Embedding, LastStep

# ------------------------------------------------------------------ the jobs


def lstm_dropout(distributed, epochs=2):
    """LSTM (2 layers, dropout between them) -> Dropout -> LastStep -> Dense; lengths, an uneven
    last batch (45 = 5 x 8 + 5), validation_split, clipping, mae/rmse metrics."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((45, 12, 3)).astype(np.float32)
    y = (x[:, :, :1].sum(axis=1) / 4).astype(np.float32)
    lengths = rng.integers(4, 13, size=45)
    model = pyrnn.Sequential([pyrnn.LSTM(3, 8, num_layers=2, dropout=0.3, seed=1), Dropout(0.2, seed=2), LastStep(),
                              Dense(8, 1, seed=3)])
    model.compile(optimizer="adam", loss="mse", lr=1e-2, metrics=["mae", "rmse"], clip_norm=1.0)
    model.fit(x, y, epochs=epochs, batch_size=8, validation_split=0.1, seed=0, verbose=0, lengths=lengths,
              distributed=distributed)
    return model, {}


def conv_gru(distributed):
    """Conv1D -> GRU -> LastStep -> Dense with validation_data (the README's forecaster, smaller);
    callbacks that stop early, restore the best weights and halve the learning rate (on rank 0)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 16, 2)).astype(np.float32)
    y = x[:, -3:, :1].mean(axis=1).astype(np.float32)
    model = pyrnn.Sequential([Conv1D(2, 6, 3, padding="causal", seed=0), pyrnn.GRU(6, 8, seed=1), LastStep(),
                              Dense(8, 1, seed=2)])
    model.compile(optimizer="adam", loss="mse", lr=3e-3, metrics=["mae"], clip_norm=1.0)
    callbacks = [EarlyStopping(patience=1, min_delta=0.02, restore_best_weights=True), LearningRateScheduler(lambda e, lr: lr / 2)]
    model.fit(x[:40], y[:40], epochs=6, batch_size=16, validation_data=(x[40:], y[40:]), seed=0, verbose=0,
              callbacks=callbacks, distributed=distributed)
    return model, {}


def uneven_masked(distributed):
    """13 samples in batches of 4, in order: the last batch has one row (rank 1 gets none); the
    sample mask leaves rank 1 nothing to read in batch 1 and rank 0 nothing in batch 2 (their
    forwards still draw the dropout masks); dropout everywhere; SGD with momentum."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((13, 6, 2)).astype(np.float32)
    y = rng.integers(0, 3, size=13)
    mask = np.array([1, 1, 0, 0, 0, 0, 1, 0, 1, 1, 1, 1, 1], bool)
    model = pyrnn.Sequential([pyrnn.GRU(2, 6, num_layers=2, dropout=0.25, seed=0), LastStep(), Dropout(0.3, seed=4),
                              Dense(6, 3, seed=5)])
    model.compile(optimizer=pyrnn.optim.SGD(model.param_grad_pairs(), lr=0.1, momentum=0.9), loss="cross_entropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0, mask=mask, distributed=distributed)
    return model, {}


def tbptt(distributed):
    """fit_tbptt: 7 sequences in batches of 3 (3/3/1), k1=5, k2=8, a step mask, shuffled, dropout."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 23, 2)).astype(np.float32)
    y = np.cumsum(x[:, :, :1], axis=1).astype(np.float32) / 5
    mask = rng.random((7, 23)) > 0.3
    model = pyrnn.recurrent_model(pyrnn.LSTM(2, 8, num_layers=2, dropout=0.2, seed=0), Dense(8, 1, seed=1))
    model.compile(optimizer="adam", loss="mse", lr=1e-2, metrics=["mae"], clip_norm=1.0)
    pyrnn.fit_tbptt(model, x, y, k1=5, k2=8, epochs=2, batch_size=3, mask=mask, shuffle=True, seed=0,
                    validation_data=(x[:3], y[:3]), distributed=distributed)
    return model, {}


def diverges(distributed):
    """Two samples hit an embedding row of NaN: the first batch holding one (on either rank) has a
    NaN loss on every rank, its step is skipped everywhere and TerminateOnNaN (run on rank 0)
    stops every rank at that batch."""
    rng = np.random.default_rng(4)
    x = rng.integers(0, 7, size=(40, 5))
    x[[13, 29], 2] = 7
    model = pyrnn.Sequential([Embedding(8, 4, seed=0), pyrnn.GRU(4, 6, seed=1), LastStep(), Dense(6, 1, seed=2)])
    model.layers[0].params["weight"][7] = np.nan
    model.compile(optimizer="adam", loss="mse", lr=1e-2, metrics=["mae"])
    stop = TerminateOnNaN()
    model.fit(x, (x.sum(axis=1, keepdims=True) / 20).astype(np.float32), epochs=3, batch_size=8, seed=0, verbose=0,
              callbacks=[stop], distributed=distributed)
    return model, {"stopped_at": np.array(-1 if stop.stopped_at is None else stop.stopped_at)}


def lstm_allreduce(distributed):
    """lstm_dropout with one Allreduce per step (deterministic=False)."""
    if distributed is not None:
        from pyrnn.distributed import MPIStrategy

        distributed = MPIStrategy(deterministic=False)
    return lstm_dropout(distributed)


def checkpoint(distributed, out_dir):
    """2 epochs of lstm_dropout with a checkpoint per epoch, then epoch 2 again from checkpoint 1."""
    ck_dir = os.path.join(out_dir, "checkpoints" + ("_mpi" if distributed else ""))
    os.makedirs(ck_dir, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((45, 12, 3)).astype(np.float32)
    y = (x[:, :, :1].sum(axis=1) / 4).astype(np.float32)
    model = pyrnn.Sequential([pyrnn.LSTM(3, 8, num_layers=2, dropout=0.3, seed=1), LastStep(), Dense(8, 1, seed=3)])
    model.compile(optimizer="adam", loss="mse", lr=1e-2, metrics=["mae"])
    ck = ModelCheckpoint(os.path.join(ck_dir, "epoch{epoch}.safetensors"))
    model.fit(x, y, epochs=2, batch_size=8, seed=0, verbose=0, callbacks=[ck], distributed=distributed)
    again = pyrnn.load(os.path.join(ck_dir, "epoch1.safetensors"))
    again.fit(x, y, epochs=1, batch_size=8, verbose=0, distributed=distributed)
    resumed = {f"resumed/{k}": v for k, v in again.state_dict().items()}
    return model, {**resumed, "saved_here": np.array(len(ck.saved))}


def raises(distributed):
    """Rank 1 raises in its third step (a metric), while rank 0 waits in the step's reduction."""
    rank = 0 if distributed is None else pyrnn.distributed.get_strategy(distributed).rank
    calls = []

    def boom(pred, target, mask):
        calls.append(1)
        if rank == 1 and len(calls) == 3:
            raise RuntimeError(f"injected failure on purpose, raised at {time.time():.3f}")
        return 0.0

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 5, 2)).astype(np.float32)
    model = pyrnn.Sequential([pyrnn.GRU(2, 4, seed=0), LastStep(), Dense(4, 1, seed=1)])
    model.compile(optimizer="sgd", loss="mse", metrics=[pyrnn.metrics.Metric("boom", boom)])
    model.fit(x, x[:, -1, :1], epochs=50, batch_size=4, verbose=0, distributed=distributed)
    return model, {}


def backtest(distributed):
    """rolling_origin over 5 origins with a refit per origin (a small GRU trained one epoch, not
    distributed inside), and without refit (the last model for every origin)."""
    from pyrnn.timeseries import WindowDataset, rolling_origin

    t = np.arange(300)
    series = np.stack([np.sin(t / 7), np.cos(t / 11)], axis=1).astype(np.float32)
    ds = WindowDataset(series, 10, 1, target_cols=0)
    models = []

    def fit_fn(train):
        x, y = train.arrays()
        model = pyrnn.Sequential([pyrnn.GRU(2, 6, seed=0), LastStep(), Dense(6, 1, seed=1)])
        model.compile(optimizer="adam", loss="mse", lr=1e-2)
        model.fit(x, y.reshape(len(y), -1), epochs=1, batch_size=32, seed=0, verbose=0)
        models.append(model)
        return model

    origins = [150, 180, 210, 240, 270]
    refit = rolling_origin(fit_fn, ds, origins, horizon=4, refit=True, distributed=distributed)
    fixed = rolling_origin(fit_fn(ds.subset(ds.start, 150)), ds, origins, horizon=4, distributed=distributed)
    out = {"refit/forecasts": refit.forecasts, "fixed/forecasts": fixed.forecasts}
    out.update({f"refit/{k}": v for k, v in refit.metrics.items()})
    return out


def forecaster_backtest(distributed):
    """Forecaster.backtest with a refit per origin, the origins spread over the ranks."""
    from pyrnn.timeseries import Forecaster

    t = np.arange(160)
    y = 10 + np.sin(2 * np.pi * t / 12) + 0.1 * np.random.default_rng(3).standard_normal(160)
    bt = Forecaster(season_length=12, members=1, epochs=3, seed=0).backtest(y, horizon=6, origins=3,
                                                                            distributed=distributed)
    return {"forecasts": bt.forecasts, **{f"m/{k}": np.asarray(v) for k, v in bt.metrics.items()}}


JOBS = {f.__name__: f for f in (lstm_dropout, conv_gru, uneven_masked, tbptt, diverges, lstm_allreduce, checkpoint, raises)}


def run(job, distributed, out_dir):
    if job == "backtest":
        return backtest(distributed)
    if job == "forecaster_backtest":
        return forecaster_backtest(distributed)
    fn = JOBS[job]
    model, extra = fn(distributed, out_dir) if job == "checkpoint" else fn(distributed)
    arrays = {f"w/{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"h/{k}": np.asarray(v) for k, v in model.history.history.items()})
    arrays.update(extra)
    return arrays


if __name__ == "__main__":
    out, jobs = sys.argv[1], sys.argv[2:]
    import pyrnn.distributed

    strategy = pyrnn.distributed.get_strategy("mpi")
    for job in jobs:
        arrays = run(job, "mpi", out)
        arrays["threads"] = np.array(pyrnn.get_num_threads())
        np.savez(os.path.join(out, f"{job}.rank{strategy.rank}.npz"), **arrays)
