"""``python -m pyrnn``: command-line entry points.

- ``demo``: the main job (see :mod:`pyrnn.demo`): a Conv1D + GRU forecaster on a bundled real series;
- ``info``: version, backends that load, the GEMM provider;
- ``check``: every backend against the NumPy reference on every cell (forward,
  BPTT, weight gradients), then one LSTM training step timed on each backend;
- ``forecast``: a :class:`~pyrnn.timeseries.Forecaster` on one column of a CSV file, h steps with
  intervals (see :mod:`pyrnn.timeseries.forecast_cli`);
- ``bench``: the tables of :mod:`pyrnn.bench` (recurrent layers and Conv1D, every backend and PyTorch)
  and :mod:`pyrnn.bench_cnn` (image CNNs against PyTorch's NCHW and channels_last).
"""

from __future__ import annotations

import argparse
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
    from . import bench

    min_seconds = 0.1 if args.quick else 0.3
    if args.only != "cnn":
        rows = bench.run(quick=args.quick, min_seconds=min_seconds)
        peak = bench.gemm_peak(min_seconds=min_seconds)
        print(f"GEMM peak (NumPy sgemm, every thread): {peak:.0f} GFLOP/s")
        print(bench.format_table(rows, peak=peak))
    if args.only != "recurrent":
        _bench_cnn(args.quick, min_seconds)
    return 0


def _bench_cnn(quick, min_seconds):
    from . import bench, bench_cnn

    try:
        import torch
    except ImportError:
        print("image CNNs: skipped (they are validated and timed against PyTorch, which is not installed)")
        return
    print(f"image CNNs against PyTorch {torch.__version__} ({torch.get_num_threads()} threads), CPU {bench_cnn.cpu_description()}: "
          "median ms over alternating blocks (interquartile range)")
    rows = bench_cnn.run(blocks=5 if quick else 9)
    table = bench_cnn.format_table(rows + bench_cnn.run_epochs(blocks=3 if quick else 5))
    peak = bench.gemm_peak(min_seconds=min_seconds)
    print(table)
    print(bench_cnn.format_gflops(rows, peak, bench_cnn.fma_limit(torch.get_num_threads())))


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m pyrnn", description="pyrnn: fast CPU recurrent networks")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="train a Conv1D + GRU forecaster on the bundled sunspot series; MAE, MASE, skill vs naive")
    d.add_argument("--epochs", type=int, default=80)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="0 silent, 1 progress bar, 2 a line per epoch")
    d.add_argument("--out", default=".", help="folder for demo_forecast.png and demo_training.png")
    d.add_argument("--no-plots", action="store_true")
    d.set_defaults(fn=cmd_demo)
    sub.add_parser("info", help="version, loaded backends, GEMM provider").set_defaults(fn=cmd_info)
    p = sub.add_parser("check", help="every backend against the NumPy reference, then a timed LSTM step")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--time", type=int, default=100)
    p.add_argument("--input", type=int, default=128)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--repeat", type=int, default=3)
    p.set_defaults(fn=cmd_check)
    b = sub.add_parser("bench", help="time every backend and PyTorch on the benchmark configs (validated first)")
    b.add_argument("--quick", action="store_true", help="only the three small recurrent configurations (and Conv1D); "
                   "fewer blocks for the image CNNs")
    b.add_argument("--only", choices=("recurrent", "cnn"), help="only the recurrent/Conv1D table or only the image CNN one")
    b.set_defaults(fn=cmd_bench)
    from .timeseries import forecast_cli

    forecast_cli.add_parser(sub)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
