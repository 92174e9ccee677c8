"""Accuracy of ``pyrnn.timeseries.Forecaster`` (default arguments, untuned) against naive, seasonal
naive and classical statistical models on the four bundled series, rolling origin.

    pip install -e ".[forecast-bench]"            # statsforecast: benchmark only, never a dependency
    python benchmarks/forecast/accuracy.py [--origins 5] [--write benchmarks/forecast/RESULTS.md]

Per series: the last ``origins`` origins, ``step`` apart, each forecasting H steps from the values
before it (every model refitted at every origin on those values only). Metrics per origin, then
their mean: MAE, sMAPE (0..200 %), MASE (MAE over the in-sample MAE of the seasonal naive forecast
with the series' calendar period: 1 for the yearly series, 12 for the monthly ones, the M4
convention) and the coverage of the 80 % interval (the fraction of the H truths inside it).
Classical models get the calendar period as their season length, the Forecaster ``season_length=None``
(it finds its own from the data, reported in the table).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from pyrnn import datasets
from pyrnn.bench_cnn import cpu_description
from pyrnn.timeseries import Forecaster, mae, mase, naive_forecast, seasonal_naive_forecast, smape

# name -> (loader, horizon H, step between origins)
SERIES = {
    "sunspots": (datasets.load_sunspots, 10, 10),
    "co2": (lambda: datasets.load_co2("monthly"), 12, 12),
    "nile": (datasets.load_nile, 10, 5),
    "elnino": (datasets.load_elnino, 12, 12),
}




def classical_models(period):
    """statsforecast's AutoETS, AutoARIMA, AutoTheta (None if statsforecast is not installed)."""
    try:
        from statsforecast.models import AutoARIMA, AutoETS, AutoTheta
    except ImportError:
        return None
    return {"AutoETS": lambda: AutoETS(season_length=period), "AutoARIMA": lambda: AutoARIMA(season_length=period),
            "AutoTheta": lambda: AutoTheta(season_length=period)}


def run_classical(make, train, H):
    model = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = model.forecast(y=train.astype(np.float64), h=H, level=[80])
    return out["mean"], out["lo-80"], out["hi-80"]


def evaluate(name, origins, forecaster_args):
    load, H, step = SERIES[name]
    s = load()
    y, period = s.values, s.period
    t0 = len(y) - H - step * np.arange(origins - 1, -1, -1)
    classical = classical_models(period) or {}
    rows = {}
    seasons = []

    def score(model, t, mean, lo=None, hi=None, seconds=0.0):
        truth = y[t : t + H]
        r = rows.setdefault(model, {"mae": [], "smape": [], "mase": [], "coverage": [], "seconds": []})
        r["mae"].append(mae(truth, mean))
        r["smape"].append(smape(truth, mean))
        r["mase"].append(mase(truth, mean, y[:t], period=period))
        r["coverage"].append(np.nan if lo is None else float(np.mean((truth >= lo) & (truth <= hi))))
        r["seconds"].append(seconds)

    for t in t0:
        train = y[:t]
        start = time.perf_counter()
        f = Forecaster(**forecaster_args).fit(train, horizon=H)
        q = f.predict(H, quantiles=(0.1, 0.5, 0.9))
        score("Forecaster", t, q[:, 1], q[:, 0], q[:, 2], time.perf_counter() - start)
        seasons.append(f.summary()["season_length"])
        score("naive", t, naive_forecast(train, H))
        if period > 1:
            score("seasonal naive", t, seasonal_naive_forecast(train, H, period))
        for model, make in classical.items():
            start = time.perf_counter()
            mean, lo, hi = run_classical(make, train, H)
            score(model, t, mean, lo, hi, time.perf_counter() - start)
    summary = {m: {k: float(np.nanmean(v)) if not np.all(np.isnan(v)) else np.nan for k, v in r.items()}
               for m, r in rows.items()}
    return summary, {"H": H, "origins": t0.tolist(), "period": period, "forecaster_season": seasons, "T": len(y)}


def format_tables(results):
    models = []
    for summary, _ in results.values():
        models += [m for m in summary if m not in models]
    lines = ["| model | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
    for metric, fmt in (("mase", "{:.3f}"), ("smape", "{:.2f}"), ("mae", "{:.3g}"), ("coverage", "{:.2f}")):
        lines.append(f"| **{metric.upper() if metric != 'coverage' else '80 % coverage'}** |" + " |" * len(results))
        for m in models:
            cells = []
            for summary, _ in results.values():
                v = summary.get(m, {}).get(metric, np.nan)
                best = min((s[metric] for s in summary.values() if not np.isnan(s[metric])), default=np.nan)
                cell = "-" if np.isnan(v) else fmt.format(v)
                cells.append(f"**{cell}**" if metric in ("mase", "smape", "mae") and v == best else cell)
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines.append("| **seconds per fit + forecast** |" + " |" * len(results))
    for m in models:
        cells = []
        for summary, _ in results.values():
            v = summary.get(m, {}).get("seconds", np.nan)
            cells.append("-" if np.isnan(v) or v == 0 else f"{v:.2f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    notes = [f"- {name}: T = {info['T']}, H = {info['H']}, origins {info['origins']}, MASE period {info['period']}, "
             f"Forecaster season found {sorted(set(info['forecaster_season']))}" for name, (_, info) in results.items()]
    return "\n".join(lines + [""] + notes)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--origins", type=int, default=5)
    ap.add_argument("--series", nargs="*", default=list(SERIES), choices=list(SERIES))
    ap.add_argument("--members", type=int, default=None, help="Forecaster members (default: its default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", help="also write the table to this markdown file")
    args = ap.parse_args(argv)
    fargs = {"seed": args.seed} if args.members is None else {"seed": args.seed, "members": args.members}
    if classical_models(1) is None:
        print("statsforecast is not installed: only naive and seasonal naive (pip install -e '.[forecast-bench]')")
    results = {}
    for name in args.series:
        results[name] = evaluate(name, args.origins, fargs)
        print(f"{name}: done", flush=True)
    table = format_tables(results)
    head = f"CPU: {cpu_description()}; Forecaster({', '.join(f'{k}={v}' for k, v in fargs.items())}); mean over origins\n"
    print(head + table)
    if args.write:
        with open(args.write, "w") as f:
            f.write("# Forecaster accuracy (benchmarks/forecast/accuracy.py)\n\n" + head + "\n" + table + "\n")
    return results


if __name__ == "__main__":
    main()
