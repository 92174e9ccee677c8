"""Write benchmarks/RESULTS.md from one run of pyrnn.bench (every config, every backend, PyTorch).

    python benchmarks/write_results.py            # add --quick for the three small configs

Times are medians in one process; speed-ups are ratios from that same run.
"""

import argparse
import datetime
import os
import platform
import sys

import numpy as np

import pyrnn
from pyrnn import bench


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md"))
    args = ap.parse_args()
    rows = bench.run(quick=args.quick)
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    env = {k: os.environ.get(k, "(unset)") for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS")}
    text = (
        "# pyrnn benchmark results\n\n"
        f"Generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC} by `python benchmarks/write_results.py"
        f"{' --quick' if args.quick else ''}`, one run.\n\n"
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}, NumPy {np.__version__}, "
        f"pyrnn {pyrnn.__version__}, PyTorch {torch_version}; environment {env}.\n\n"
        "Median wall time in ms (GFLOP/s of the GEMMs in parentheses); `x vs torch` = PyTorch median / pyrnn median.\n\n"
        + bench.format_table(rows) + "\n"
    )
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
