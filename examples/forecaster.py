"""The one-call forecaster: fit a monthly series, forecast two years with an 80 % interval,
check it on a rolling-origin backtest, save it and load it back. Writes forecaster.png (history,
forecast and interval) when matplotlib is installed.

Data: monthly El Nino sea-surface temperature 1950-2010 (bundled, public domain).

    python examples/forecaster.py [--quick] [--plot forecaster.png]
"""

import argparse
import os
import tempfile

import numpy as np

import pyrnn
from pyrnn.timeseries import Forecaster, load_forecaster


def main(quick=False, plot="forecaster.png"):
    y = pyrnn.datasets.load_elnino().values
    # untuned: every argument keeps its default (--quick: fewer members and epochs, to check the script runs)
    args = dict(members=2, epochs=10) if quick else {}
    f = Forecaster(seed=0, **args).fit(y[:-24], horizon=24)            # hold out the last two years
    s = f.summary()
    print(f"season {s['season_length']} ({s['season_source']}), Box-Cox lambda {s['boxcox_lambda'][0]:g}, "
          f"inputs {sorted(set(s['input_lengths']))}, best epochs {s['epochs']}")

    q = f.predict(24, quantiles=(0.1, 0.5, 0.9))                       # (24, 3)
    truth = y[-24:]
    inside = np.mean((truth >= q[:, 0]) & (truth <= q[:, 2]))
    snaive = np.tile(y[-36:-24], 2)
    print(f"held-out 24 months: MAE {np.mean(np.abs(q[:, 1] - truth)):.3f} deg C "
          f"(seasonal naive {np.mean(np.abs(snaive - truth)):.3f}), 80 % interval covers {inside:.0%}")

    origins = 2 if quick else 4
    bt = Forecaster(seed=0, **args).backtest(y, horizon=12, origins=origins)  # refits at each origin
    sm = bt.summary()
    print(f"backtest, {origins} origins x 12 months: MASE {sm['mase']:.3f}, sMAPE {sm['smape']:.2f} %, "
          f"skill vs naive {sm['skill']:+.3f}, 80 % coverage {sm['coverage']:.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "elnino.forecaster")
        f.save(path)
        same = np.array_equal(load_forecaster(path).predict(24, quantiles=(0.1, 0.5, 0.9)), q)
    print(f"saved and loaded back: the same forecast bit for bit: {same}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(f"matplotlib is not installed: {os.path.basename(plot)} not written (pip install matplotlib)")
    else:
        from pyrnn.timeseries.forecast_cli import plot as draw

        draw(os.path.abspath(plot), y[:-24], q, 80, "SST (deg C)")  # prints where it went
    return q


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer members and epochs: checks that the script runs")
    ap.add_argument("--plot", default="forecaster.png", help="where to write the history, forecast and interval "
                    "(default forecaster.png)")
    a = ap.parse_args()
    main(a.quick, a.plot)
