"""Several time scales (inputs that matter at more than one delay): dilated recurrent layers whose
recurrence reads h(t - d), stacked with d = 1 and d = 12, on monthly CO2 at Mauna Loa (bundled).
The d = 12 layer links each month to the same month a year before. The model sees and predicts
month-to-month changes (the trend would leave the scaler's training range); the level forecast
is the last level plus the predicted change. Writes time_scales.png (forecast vs actual on the
held-out months) when matplotlib is installed.

    python examples/time_scales.py [--quick]
"""

import argparse

import numpy as np

import pyrnn
from pyrnn import timeseries as ts
from pyrnn.layers import Dense, Dilated, LastStep
from pyrnn.plots import save_lines


def main(quick=False):
    y = pyrnn.datasets.load_co2(freq="monthly").values.astype(np.float32)
    dy = np.diff(y)                                   # dy[i] = y[i + 1] - y[i]
    split = ts.temporal_split(len(dy), val_frac=0.0, test_frac=0.15)
    scaler = ts.StandardScaler().fit(dy[split.train])
    z = scaler.transform(dy)
    L = 48
    x, t = ts.WindowDataset(z, L, horizon=1, stop=split.train.stop).arrays()
    model = pyrnn.Sequential([Dilated(pyrnn.GRU(1, 16, seed=0), 1), Dilated(pyrnn.GRU(16, 16, seed=1), 12), LastStep(),
                              Dense(16, 1, seed=2)]).compile("adam", "mse", lr=3e-3, clip_norm=1.0)
    model.fit(x, t[:, 0], epochs=2 if quick else 30, batch_size=32, seed=0, verbose=0)
    xt, yt = ts.WindowDataset(z, L, horizon=1, start=split.test.start).arrays()
    last = y[split.test.start : split.test.stop]        # the level before each forecast month
    pred = last + scaler.inverse_transform(model.predict(xt)).reshape(-1)
    truth = last + scaler.inverse_transform(yt[:, 0]).reshape(-1)
    naive = last
    print(f"monthly CO2, {len(truth)} held-out months, one month ahead: MAE {ts.mae(truth, pred):.3f} ppm, "
          f"naive {ts.mae(truth, naive):.3f} ppm, skill vs naive {ts.skill_vs_naive(truth, pred, naive):+.3f}")
    save_lines("time_scales.png", {"actual": truth, "dilated GRUs (d = 1, 12)": pred, "naive (last month)": naive},
               title="Monthly CO2 at Mauna Loa, held-out months, one month ahead", xlabel="held-out month", ylabel="ppm",
               styles={"actual": "k-", "naive (last month)": "--"})


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a couple of epochs")
    main(ap.parse_args().quick)
