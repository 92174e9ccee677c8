"""Where the time of an image CNN row goes (pyrnn.bench_cnn): pyrnn's training step per layer
(``bench_cnn.layer_times``, the sum by layer class, and what the model adds around its layers),
its Python functions by own time (cProfile), and PyTorch's operators on the same step
(torch.profiler), after the same validation as the benchmark. Not a test:

    python benchmarks/profile_cnn.py [row ...] [--backend cpp] [--calls 5] [--layout NCHW|channels_last]

rows: conv2d, lenet, block, vgg, unet (default: all).
"""

import argparse
import collections
import cProfile
import io
import pstats

import torch

import pyrnn
from pyrnn import bench_cnn

ROWS = dict(zip(("conv2d", "lenet", "block", "vgg", "unet"), bench_cnn.CASES))


def profile(case, backend, calls, layout):
    x, dy = case.inputs()
    steps = bench_cnn.step_functions(case, [backend, layout])  # validated, as the benchmark
    model = case.build()
    print(f"== {case.label}: pyrnn {backend}, training step, mean of {calls} calls")
    rows, total = bench_cnn.layer_times(model, x, dy, backend, calls)
    by_class = collections.defaultdict(lambda: [0.0, 0.0, 0])
    for i, name, f, b in rows:
        print(f"  {i:3d} {name[:72]:72s} fwd {f:8.3f} ms  bwd {b:8.3f} ms")
        acc = by_class[name.split("(")[0]]
        acc[0], acc[1], acc[2] = acc[0] + f, acc[1] + b, acc[2] + 1
    layers = sum(f + b for _, _, f, b in rows)
    print(f"  step {total:.2f} ms: layers {layers:.2f} ms, the model around them {total - layers:.2f} ms")
    for name, (f, b, n) in sorted(by_class.items(), key=lambda kv: -(kv[1][0] + kv[1][1])):
        print(f"  {name:16s} x{n:<3d} fwd {f:8.3f} ms  bwd {b:8.3f} ms  ({100 * (f + b) / total:4.1f}% of the step)")
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        steps[backend].train()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(12)
    print(f"  cProfile, {calls} calls, by own time:")
    print("\n".join("    " + line for line in out.getvalue().splitlines()[6:] if line.strip()))
    steps[layout].train()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as tp:
        for _ in range(calls):
            steps[layout].train()
    print(f"  PyTorch ({layout}), {calls} calls, by own CPU time:")
    table = tp.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
    print("\n".join("    " + line for line in table.splitlines()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rows", nargs="*", help=f"any of {', '.join(ROWS)} (default: all)")
    ap.add_argument("--backend", default=pyrnn.get_backend())
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--layout", default="channels_last", choices=("NCHW", "channels_last"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    unknown = [r for r in args.rows if r not in ROWS]
    if unknown:
        ap.error(f"rows: expected any of {', '.join(ROWS)}, got {', '.join(unknown)}")
    torch.set_num_threads(args.threads)
    pyrnn.set_num_threads(args.threads)
    for row in args.rows or ROWS:
        profile(ROWS[row], args.backend, args.calls, f"torch {args.layout}")


if __name__ == "__main__":
    main()
