"""``python -m pyrnn forecast FILE.csv --column NAME --horizon H [--season M] [--plot out.png]``.

Reads one numeric column of a CSV file (a header row, then one row per step, in time order),
fits a :class:`~pyrnn.timeseries.Forecaster` on all of it, prints the forecast with its interval
and, with ``--plot``, writes a figure: the history, the forecast and the interval band.
"""

from __future__ import annotations

import csv
import time

import numpy as np

from .forecaster import Forecaster


def add_parser(sub):
    """The ``forecast`` subcommand on an argparse ``add_subparsers()`` object."""
    p = sub.add_parser("forecast", help="fit a Forecaster on one CSV column; print (and plot) h steps with intervals")
    p.add_argument("file", help="CSV file with a header row")
    p.add_argument("--column", required=True, help="name (or 0-based index) of the column to forecast")
    p.add_argument("--horizon", type=int, required=True, help="steps to forecast")
    p.add_argument("--season", type=int, default=None, help="season length (default: found from the data)")
    p.add_argument("--level", type=float, default=80.0, help="interval coverage in percent (default 80)")
    p.add_argument("--members", type=int, default=5, help="ensemble members (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", default=None, help="write a figure (history, forecast, interval) to this file")
    p.set_defaults(fn=run)
    return p


def read_column(path, column):
    """The values of one column of a CSV file as float64 (T,); clear errors for a missing column or a bad cell."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise ValueError(f"{path}: expected a header row and at least one data row, got {len(rows)} row(s)")
    header = [h.strip() for h in rows[0]]
    if column in header:
        j = header.index(column)
    elif column.isdigit() and int(column) < len(header):
        j = int(column)
    else:
        raise ValueError(f"--column: expected one of the header's columns {header}, got {column!r}")
    values = []
    for i, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        cell = row[j].strip() if j < len(row) else ""
        try:
            values.append(float(cell))
        except ValueError:
            raise ValueError(f"{path}, line {i}, column {header[j]!r}: expected a number, got {cell!r}") from None
    return np.asarray(values, dtype=np.float64)


def run(args):
    """The subcommand: returns the exit code (0), prints the table."""
    level = args.level / 100.0
    if not 0 < level < 1:
        raise SystemExit(f"--level: expected a percentage strictly between 0 and 100, got {args.level}")
    start = time.perf_counter()
    qs = ((1 - level) / 2, 0.5, (1 + level) / 2)
    try:
        y = read_column(args.file, args.column)
        f = Forecaster(season_length=args.season, members=args.members, seed=args.seed)
        f.fit(y, horizon=args.horizon)
        q = f.predict(args.horizon, quantiles=qs)
    except (OSError, TypeError, ValueError) as exc:  # a message, not a traceback
        raise SystemExit(f"python -m pyrnn forecast: {exc}") from None
    seconds = time.perf_counter() - start
    s = f.summary()
    print(f"{args.file}: column {args.column!r}, {len(y)} values; season length {s['season_length']} "
          f"({s['season_source']}), Box-Cox lambda {s['boxcox_lambda'][0]:g}, {s['members']} members, "
          f"{s['kind'][0]}; fit + forecast {seconds:.1f} s")
    lo, hi = f"lo {args.level:g}%", f"hi {args.level:g}%"
    print(f"{'step':>5} {'forecast':>12} {lo:>12} {hi:>12}")
    for i, (a, b, c) in enumerate(q, start=1):
        print(f"{i:5d} {b:12.5g} {a:12.5g} {c:12.5g}")
    if args.plot:
        plot(args.plot, y, q, args.level, args.column)
    return 0


def plot(path, y, q, level, name):
    """History, forecast and interval band in one figure (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--plot needs matplotlib (pip install matplotlib)") from None
    T, h = len(y), len(q)
    t_hist, t_fut = np.arange(T), np.arange(T, T + h)
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(t_hist, y, "k-", lw=1, label="history")
    ax.fill_between(t_fut, q[:, 0], q[:, 2], color="C0", alpha=0.25, label=f"{level:g} % interval")
    ax.plot(t_fut, q[:, 1], "C0-", lw=1.5, label="forecast (median)")
    ax.set(xlabel="step", ylabel=str(name), title=f"Forecaster: {h} steps ahead")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")
