"""Write benchmarks/RESULTS.md from one run: pyrnn.bench's layer table (every recurrent config and
Conv1D, every backend, PyTorch), one epoch of the small Conv1D + GRU model, and the peak memory of
an LSTM training step (benchmarks/memory.py, a fresh process per measurement).

    python benchmarks/write_results.py     # --quick: the three small recurrent configs (and Conv1D);
                                           # --skip-memory: no memory table (it takes ~half a minute)

Times are medians in one process; speed-ups are ratios from that same run.
"""

import argparse
import datetime
import os
import platform
import sys

import memory  # benchmarks/memory.py: this script's folder is sys.path[0]
import numpy as np

import pyrnn
from pyrnn import bench


def _torch_version():
    try:
        import torch
    except ImportError:
        return "not installed"
    return torch.__version__


def sections(quick=False, skip_memory=False):
    """The Markdown sections after the header, each measured now."""
    rows = bench.run(quick=quick)
    peak = bench.gemm_peak()  # after the layers, in the same run
    out = [
        "## One layer\n\n"
        "Median wall time in ms (GFLOP/s of the GEMMs in parentheses); `x vs torch` = PyTorch median / pyrnn median. "
        "Conv1D: stride 1, no padding; PyTorch on its channels-first layout. "
        f"GEMM peak measured in the same run (NumPy's OpenBLAS sgemm, n = 1024 and 2048, every thread): "
        f"{peak:.0f} GFLOP/s; the last column is the default backend's GFLOP/s as a share of it.\n\n"
        + bench.format_table(rows, peak=peak),
        f"## One training epoch\n\n{bench.EPOCH.label}: pyrnn's `fit` against the same model, weights, data and batches in "
        "PyTorch. Median wall time of an epoch in ms; `x vs torch` = PyTorch median / pyrnn median.\n\n"
        + bench.format_table(bench.run_epochs()),
    ]
    if not skip_memory:
        out.append(f"## Peak memory\n\n{memory.TITLE}. Growth of the peak resident set over the step, a fresh process "
                   "per measurement.\n\n" + memory.table())
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="only the three small recurrent configurations (and Conv1D)")
    ap.add_argument("--skip-memory", action="store_true", help="leave out the peak-memory table")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md"))
    args = ap.parse_args()
    flags = "".join(f" --{k.replace('_', '-')}" for k in ("quick", "skip_memory") if getattr(args, k))
    env = {k: os.environ.get(k, "(unset)") for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS")}
    text = (
        "# pyrnn benchmark results\n\n"
        f"Generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC} by `python benchmarks/write_results.py"
        f"{flags}`, one run.\n\n"
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}, NumPy {np.__version__}, "
        f"pyrnn {pyrnn.__version__}, PyTorch {_torch_version()}; environment {env}.\n\n"
        + "\n\n".join(sections(args.quick, args.skip_memory)) + "\n"
    )
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
