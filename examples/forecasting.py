"""Time-series forecasting, several steps ahead, the two usual ways: recursive (predict one
step, append it, slide the window) and direct (a head with n outputs), each compared with the
naive last-value and seasonal-naive baselines on the same test points. Writes forecasting.png
(the test months, each forecast's last step) when matplotlib is installed.

Data: monthly El Nino sea-surface temperature 1950-2010 (bundled, public domain).

    python examples/forecasting.py [--quick]
"""

import argparse

import numpy as np

import pyrnn
from pyrnn import timeseries as ts
from pyrnn.layers import Conv1D, Dense, LastStep
from pyrnn.plots import save_lines


def model(outputs, seed):
    return pyrnn.Sequential([Conv1D(1, 16, 3, padding="causal", seed=seed), pyrnn.GRU(16, 32, seed=seed + 1), LastStep(),
                             Dense(32, outputs, seed=seed + 2)]).compile("adam", "mse", lr=3e-3, clip_norm=1.0)


def main(quick=False):
    s = pyrnn.datasets.load_elnino()
    y = s.values.astype(np.float32)
    L, H = 36, 6                                   # three years in, six months ahead
    split = ts.temporal_split(len(y), val_frac=0.1, test_frac=0.15)
    scaler = ts.StandardScaler().fit(y[split.train])
    z = scaler.transform(y)
    epochs = 3 if quick else 40

    one = ts.WindowDataset(z, L, horizon=1, stop=split.val.stop)
    x1, t1 = one.arrays()
    recursive = model(1, 0)
    recursive.fit(x1, t1.reshape(len(t1), -1), epochs=epochs, batch_size=32, validation_split=0.1, seed=0, verbose=0)

    many = ts.WindowDataset(z, L, horizon=H, stop=split.val.stop)
    xh, th = many.arrays()
    direct = model(H, 10)
    direct.fit(xh, th.reshape(len(th), -1), epochs=epochs, batch_size=32, validation_split=0.1, seed=0, verbose=0)

    test = ts.WindowDataset(z, L, horizon=H, start=split.test.start, stride=H)
    xt, yt = test.arrays()                          # origins every H months through the test years
    truth = scaler.inverse_transform(yt[..., 0])    # (N, H)
    histories = scaler.inverse_transform(xt[..., 0])
    forecasts = {
        "recursive": scaler.inverse_transform(ts.forecast_recursive(recursive, xt, steps=H)[..., 0]),
        "direct": scaler.inverse_transform(ts.forecast_direct(direct, xt, horizon=H)[..., 0]),
        "naive": np.stack([ts.naive_forecast(h, H) for h in histories]),
        "seasonal naive (12)": np.stack([ts.seasonal_naive_forecast(h, H, 12) for h in histories]),
    }
    print(f"El Nino SST, {len(truth)} test origins, {H} months ahead (y_train = the training months)")
    for name, f in forecasts.items():
        skill = ts.skill_vs_naive(truth, f, forecasts["naive"])
        print(f"{name:20s} MAE {ts.mae(truth, f):.3f}  RMSE {ts.rmse(truth, f):.3f}  sMAPE {ts.smape(truth, f):.2f}  "
              f"MASE {ts.mase(truth, f, y[split.train], period=12):.3f}  skill vs naive {skill:+.3f}")
    months = np.arange(split.test.start, split.test.start + truth.size)
    save_lines("forecasting.png", {"actual": (months, truth.ravel()),
                                   **{name: (months, f.ravel()) for name, f in forecasts.items() if name != "seasonal naive (12)"}},
               title=f"El Nino SST, test years: forecasts from origins every {H} months", xlabel="month index",
               ylabel="SST (deg C)", styles={"actual": "k-"})
    return forecasts, truth


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few epochs: checks that the script runs")
    main(ap.parse_args().quick)
