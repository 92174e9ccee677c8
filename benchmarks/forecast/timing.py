"""Time of ``Forecaster().fit(y, horizon=24).predict(24, quantiles=...)`` (default arguments) on a
300-point monthly series, against statsforecast's AutoETS and AutoARIMA on the same series in the
same run (alternating calls), and darts' RNNModel if ``darts[torch]`` is installed (benchmark only).

    python benchmarks/forecast/timing.py [--repeats 5] [--series co2|elnino] [--no-darts]

Each result is validated before it is timed (finite, the right shape, ordered quantiles). The
machine may be shared: the figures are medians with their spread, indicative only.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

import pyrnn
from pyrnn import datasets
from pyrnn.bench_cnn import cpu_description
from pyrnn.timeseries import Forecaster

H = 24


def series(name):
    s = datasets.load_co2("monthly") if name == "co2" else datasets.load_elnino()
    return s.values[-300:]


def forecaster_call(y, **kwargs):
    q = Forecaster(**kwargs).fit(y, horizon=H).predict(H, quantiles=(0.1, 0.5, 0.9))
    return q


def classical_calls(y):
    try:
        from statsforecast.models import AutoARIMA, AutoETS
    except ImportError:
        return {}

    def call(cls):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = cls(season_length=12).forecast(y=y, h=H, level=[80])
        return np.stack([out["lo-80"], out["mean"], out["hi-80"]], axis=1)

    return {"AutoETS": lambda: call(AutoETS), "AutoARIMA": lambda: call(AutoARIMA)}


def darts_call(y):
    """darts' RNNModel (GRU, 100 epochs, its defaults otherwise) on the same series, if darts[torch] is installed."""
    try:
        import logging

        from darts import TimeSeries
        from darts.models import RNNModel
    except ImportError:
        return {}
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    def call():
        series = TimeSeries.from_values(y.astype(np.float32))
        model = RNNModel(model="GRU", input_chunk_length=24, training_length=36, n_epochs=100, random_state=0,
                         pl_trainer_kwargs={"accelerator": "cpu", "enable_progress_bar": False, "logger": False,
                                            "enable_model_summary": False})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(series, verbose=False)
            mean = model.predict(H, verbose=False).values()[:, 0].astype(np.float64)
        return np.stack([mean, mean, mean], axis=1)  # no interval without a likelihood: the mean three times

    return {"darts RNNModel (GRU, 1 model)": call}


def validate(name, q):
    if q.shape != (H, 3) or not np.isfinite(q).all() or np.any(np.diff(q, axis=1) < 0):
        raise AssertionError(f"{name}: expected ({H}, 3) finite ordered quantiles, got {q.shape}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--series", default="co2", choices=("co2", "elnino"))
    ap.add_argument("--no-darts", action="store_true", help="leave darts' RNNModel out even if installed")
    args = ap.parse_args(argv)
    y = series(args.series)
    calls = {"Forecaster (5 members)": lambda: forecaster_call(y, seed=0),
             "Forecaster (1 member)": lambda: forecaster_call(y, seed=0, members=1), **classical_calls(y)}
    if not args.no_darts:
        calls.update(darts_call(y))
    for name, fn in calls.items():  # validate (and warm up: Numba JIT, statsforecast's compilation)
        validate(name, fn())
    times = {name: [] for name in calls}
    for _ in range(args.repeats):  # alternating blocks: every model once per round
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"CPU: {cpu_description()} ({os.cpu_count()} CPUs, load average {load:.1f}); pyrnn {pyrnn.__version__}; "
          f"{args.series}, last 300 months, horizon {H}, fit + predict with 80 % intervals, {args.repeats} rounds")
    print(f"{'model':26s} {'median s':>9s} {'min':>7s} {'max':>7s}")
    for name, t in times.items():
        print(f"{name:26s} {np.median(t):9.2f} {np.min(t):7.2f} {np.max(t):7.2f}")
    return times


if __name__ == "__main__":
    main()
