"""``python -m pyrnn``: command-line entry points.

- ``demo``: the main job (see :mod:`pyrnn.demo`): a Conv1D + GRU forecaster on a bundled real series;
- ``info``: version, backends that load, the GEMM provider;
- ``check``: every backend against the NumPy reference on every cell (forward,
  BPTT, weight gradients), then one LSTM training step timed on each backend;
- ``forecast``: a :class:`~pyrnn.timeseries.Forecaster` on one column of a CSV file, h steps with
  intervals (see :mod:`pyrnn.timeseries.forecast_cli`);
- ``bench``: the tables of :mod:`pyrnn.bench` (recurrent layers and Conv1D, every backend and PyTorch)
  and :mod:`pyrnn.bench_cnn` (image CNNs against PyTorch's NCHW and channels_last);
- ``warmup``: compile and cache every Numba kernel ahead of time (:mod:`pyrnn.backends.warmup`).

No command prints the help; ``--version`` the version.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import pyrnn
from pyrnn.backends.contract import GATES


def _layer(cell, I, H, dtype, seed=0):
    if cell.startswith("rnn_"):
        return pyrnn.RNN(I, H, num_layers=2, bidirectional=True, dtype=dtype, seed=seed, nonlinearity=cell[4:])
    return {"lstm": pyrnn.LSTM, "gru": pyrnn.GRU}[cell](I, H, num_layers=2, bidirectional=True, dtype=dtype, seed=seed)


def _train_step(layer, x, dy, backend):
    layer.zero_grad()
    with pyrnn.use_backend(backend):
        y, _ = layer.forward(x)
        dx, _ = layer.backward(dy)
    return [y, dx] + [g.copy() for g in layer.grads.values()]


def cmd_info(_args):
    print(f"pyrnn {pyrnn.__version__}  numpy {np.__version__}")
    print(f"backends (fastest first): {pyrnn.available_backends()}  in use: {pyrnn.get_backend()}")
    if "cpp" in pyrnn.available_backends():
        from pyrnn import _C

        names = {"ilp64": "NumPy's OpenBLAS (ILP64)", "lp64": "SciPy's BLAS (LP64)", "loops": "portable loops (no BLAS found)"}
        print(f"cpp GEMM: {names[_C.blas_interface()]}")
        print(f"cpp loops: {_C.isa()} (this CPU runs {', '.join(_C.supported_isas())}); "
              f"thread team: up to {_C.get_num_threads()} threads")
    return 0


def cmd_check(args):
    backends = pyrnn.available_backends()
    rng = np.random.default_rng(0)
    worst = 0.0
    print(f"backends: {backends}")
    print("max |backend - numpy reference| over y, dx and every weight gradient (float64, 2 layers, bidirectional):")
    for cell in GATES:
        layer = _layer(cell, 8, 16, np.float64)
        x = rng.standard_normal((4, 16, 8))
        dy = rng.standard_normal((4, 16, 32))
        ref = _train_step(layer, x, dy, "numpy")
        row = []
        for b in backends:
            if b == "numpy":
                continue
            err = max(float(np.max(np.abs(g - r))) for g, r in zip(_train_step(layer, x, dy, b), ref))
            worst = max(worst, err)
            row.append(f"{b} {err:.1e}")
        print(f"  {cell:9s} " + "   ".join(row))
    B, T, I, H = args.batch, args.time, args.input, args.hidden
    print(f"LSTM training step (forward + backward), float32, T={T} B={B} I={I} H={H}, best of {args.repeat}:")
    layer = pyrnn.LSTM(I, H, dtype=np.float32, seed=0)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    dy = rng.standard_normal((B, T, H)).astype(np.float32)
    for b in backends:
        _train_step(layer, x, dy, b)  # warm-up (JIT compile, caches)
        best = min(_timed(lambda b=b: _train_step(layer, x, dy, b)) for _ in range(args.repeat))
        print(f"  {b:6s} {best * 1e3:9.2f} ms")
    ok = worst < 1e-9
    print("check: OK" if ok else f"check: FAILED (max error {worst:.2e} >= 1e-9)")
    return 0 if ok else 1


def cmd_demo(args):
    from . import demo

    demo.run(epochs=args.epochs, seed=args.seed, verbose=args.verbose, out_dir=args.out, plots=not args.no_plots)
    return 0


def cmd_bench(args):
    from . import bench, bench_cnn, bench_stats

    load = bench_stats.load_average()
    print(f"CPU {bench_cnn.cpu_description()}, {os.cpu_count()} cores, load average {load if load is None else round(load, 2)}")
    timings = []
    if args.only != "cnn":
        rows = bench.run(quick=args.quick, blocks=5 if args.quick else 9)
        peak = bench.gemm_peak()
        timings += rows
        print(f"GEMM peak (NumPy sgemm, every thread, best block): {peak:.0f} GFLOP/s")
        print("median ms (min-max over interleaved blocks); speed-ups: median of the per-round ratios (min-max)")
        print(bench.format_table(rows, peak=peak))
    if args.only != "recurrent":
        timings += _bench_cnn(args.quick)
    for line in bench_stats.machine_warnings(timings):
        print(line)
    return 0


def _bench_cnn(quick):
    from . import bench, bench_cnn

    try:
        import torch
    except ImportError:
        print("image CNNs: skipped (they are validated and timed against PyTorch, which is not installed)")
        return []
    print(f"image CNNs against PyTorch {torch.__version__} ({torch.get_num_threads()} threads), CPU {bench_cnn.cpu_description()}: "
          "median ms over alternating blocks (interquartile range)")
    rows = bench_cnn.run(blocks=5 if quick else 9)
    epochs = bench_cnn.run_epochs(blocks=3 if quick else 5)
    table = bench_cnn.format_table(rows + epochs)
    peak = bench.gemm_peak()
    print(table)
    print(bench_cnn.format_gflops(rows, peak, bench_cnn.fma_limit(torch.get_num_threads())))
    return rows + epochs


def cmd_warmup(args):
    from .backends.warmup import warmup

    dtypes = ("float32", "float64") if args.dtype == "both" else (args.dtype,)
    for line in warmup(args.backend, dtypes):
        print(line, flush=True)
    return 0


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def build_parser():
    """The argument parser of ``python -m pyrnn`` (every flag with its help and default)."""
    parser = argparse.ArgumentParser(prog="python -m pyrnn", description="pyrnn: fast CPU recurrent networks and image CNNs",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--version", action="version", version=f"pyrnn {pyrnn.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{demo,info,check,bench,warmup,forecast}")
    fmt = {"formatter_class": argparse.ArgumentDefaultsHelpFormatter}
    d = sub.add_parser("demo", help="train a Conv1D + GRU forecaster on the bundled sunspot series; MAE, MASE, skill vs naive",
                       description="Train a Conv1D + GRU one-year-ahead forecaster on the yearly sunspot numbers, hold out "
                       "the last 30 years, print MAE, RMSE, sMAPE, MASE and skill vs the naive forecast, and (with "
                       "matplotlib) write two plots.", **fmt)
    d.add_argument("--epochs", type=int, default=80, help="training epochs")
    d.add_argument("--seed", type=int, default=0, help="seed of the weights and of the batch shuffling")
    d.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="0 silent, 1 progress bar, 2 a line per epoch")
    d.add_argument("--out", default=".", help="folder for demo_forecast.png and demo_training.png")
    d.add_argument("--no-plots", action="store_true", help="write no plots (they also need matplotlib)")
    d.set_defaults(fn=cmd_demo)
    sub.add_parser("info", help="version, loaded backends, GEMM provider", **fmt).set_defaults(fn=cmd_info)
    p = sub.add_parser("check", help="every backend against the NumPy reference, then a timed LSTM step",
                       description="Compare every backend with the NumPy reference on every cell (forward, BPTT, weight "
                       "gradients; float64), then time one float32 LSTM training step on each backend.", **fmt)
    p.add_argument("--batch", type=int, default=64, help="B of the timed LSTM step")
    p.add_argument("--time", type=int, default=100, help="T (time steps) of the timed LSTM step")
    p.add_argument("--input", type=int, default=128, help="I (input features) of the timed LSTM step")
    p.add_argument("--hidden", type=int, default=256, help="H (hidden units) of the timed LSTM step")
    p.add_argument("--repeat", type=int, default=3, help="timed repetitions per backend (the best is printed)")
    p.set_defaults(fn=cmd_check)
    b = sub.add_parser("bench", help="time every backend and PyTorch on the benchmark configs (validated first)",
                       description="Validate, then time every backend and PyTorch in interleaved blocks: medians with "
                       "their spread, speed-ups over PyTorch and the share of the machine's GEMM peak.", **fmt)
    b.add_argument("--quick", action="store_true", help="only the three small recurrent configurations (and Conv1D); "
                   "fewer blocks for the image CNNs")
    b.add_argument("--only", choices=("recurrent", "cnn"), help="only the recurrent/Conv1D table or only the image CNN one")
    b.set_defaults(fn=cmd_bench)
    w = sub.add_parser("warmup", help="compile and cache the Numba kernels ahead of time (20-40 s once)",
                       description="Run every Numba kernel once on a tiny input so that Numba compiles it and caches it "
                       "on disk; later processes then start at once.", **fmt)
    w.add_argument("--backend", choices=("numba",), default="numba", help="the backend to warm up (only Numba compiles)")
    w.add_argument("--dtype", choices=("float32", "float64", "both"), default="both", help="the dtypes to compile for")
    w.set_defaults(fn=cmd_warmup)
    from .timeseries import forecast_cli

    forecast_cli.add_parser(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
