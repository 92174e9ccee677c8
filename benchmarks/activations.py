"""The elementwise activations (ReLU, LeakyReLU, Tanh, Sigmoid), float32, forward and backward: pyrnn's numpy and
cpp backends against PyTorch's kernels (``torch.relu``..., and for backward the aten kernels autograd runs:
``threshold_backward``, ``leaky_relu_backward``, ``tanh_backward``, ``sigmoid_backward``, so no graph
bookkeeping is timed), on 301,056 values (LeNet-5's first activation: B=64, 28x28x6) and 3,010,560.

Every result is checked against torch first. Then the medians (and quartiles) over alternating blocks of calls
(the machine is shared: alternating keeps a busy minute from landing on one side only). One thread: the CPU time
of the calling thread (``time.thread_time``), with the BLAS/OpenMP pools limited by threadpoolctl,
``pyrnn.set_num_threads(1)`` and ``torch.set_num_threads(1)``; more threads: wall time. The CPU model heads the
table. Not a test:

    python benchmarks/activations.py [--threads N] [--blocks N] [--kinds relu,tanh,...]
"""

import argparse
import contextlib
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import pyrnn
from pyrnn.backends import backend_module
from pyrnn.bench_cnn import cpu_description
from pyrnn.bench_stats import alternate

SIZES = {"301k (64x28x28x6)": (64, 28, 28, 6), "3.0M (64x28x28x60)": (64, 28, 28, 60)}
SLOPE = 0.01
IMPLS = ("numpy", "cpp", "torch")




def _torch_pair(kind, tx, tdy):
    """torch's forward and backward kernels of `kind`: (forward(), backward()) callables."""
    aten = torch.ops.aten
    if kind == "relu":
        ty = torch.relu(tx)
        return (lambda: torch.relu(tx)), (lambda: aten.threshold_backward(tdy, ty, 0))
    if kind == "leaky_relu":
        return (lambda: torch.nn.functional.leaky_relu(tx, SLOPE)), (lambda: aten.leaky_relu_backward(tdy, tx, SLOPE, False))
    if kind == "tanh":
        ty = torch.tanh(tx)
        return (lambda: torch.tanh(tx)), (lambda: aten.tanh_backward(tdy, ty))
    ty = torch.sigmoid(tx)
    return (lambda: torch.sigmoid(tx)), (lambda: aten.sigmoid_backward(tdy, ty))


def cases(kind, shape, rng):
    """{"fwd": {impl: fn}, "bwd": {impl: fn}}, every result checked against torch's first."""
    x = (3 * rng.standard_normal(shape)).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
    t_fwd, t_bwd = _torch_pair(kind, tx, tdy)
    want_y, want_dx = t_fwd().numpy(), t_bwd().numpy()
    out = {"fwd": {}, "bwd": {}}
    for be in IMPLS[:2]:
        k = backend_module(be)
        y, saved = k.activation_forward(kind, x, SLOPE)
        dx = k.activation_backward(kind, saved, dy, SLOPE)
        np.testing.assert_allclose(y, want_y, rtol=2e-6, atol=1e-6, err_msg=f"{kind} {be} y")
        # dx from our own y: tanh's y within 3.6e-7 of torch's, so 1 - y^2 within 7.2e-7
        np.testing.assert_allclose(dx, want_dx, rtol=2e-6, atol=8e-7 * float(np.abs(dy).max()), err_msg=f"{kind} {be} dx")
        out["fwd"][be] = lambda k=k: k.activation_forward(kind, x, SLOPE)
        out["bwd"][be] = lambda k=k, saved=saved: k.activation_backward(kind, saved, dy, SLOPE)
    out["fwd"]["torch"], out["bwd"]["torch"] = t_fwd, t_bwd
    return out


def timed(fns, blocks, clock):
    """{name: (median, 25th, 75th percentile)} in ms, over alternating blocks (pyrnn.bench_stats.alternate)."""
    times = alternate(fns, blocks, clock=clock)
    return {name: tuple(1e3 * np.percentile(v, [50, 25, 75])) for name, v in times.items()}


def main(blocks=15, threads=1, kinds=("relu", "leaky_relu", "tanh", "sigmoid")):
    torch.set_num_threads(threads)
    pyrnn.set_num_threads(threads)
    clock = time.thread_time if threads == 1 else time.perf_counter
    limits = threadpool_limits(1) if threads == 1 else contextlib.nullcontext()
    print(f"{cpu_description()}, {threads} thread(s) ({'CPU time of the calling thread' if threads == 1 else 'wall time'}), "
          f"torch {torch.__version__}, float32; median ms [quartiles] over {blocks} alternating blocks of ~50 ms")
    print("| activation | values | pass | " + " | ".join(IMPLS) + " | numpy / cpp | cpp / torch |")
    print("|---" * (3 + len(IMPLS) + 2) + "|")
    rng = np.random.default_rng(0)
    with limits:
        for kind in kinds:
            for size, shape in SIZES.items():
                for direction, fns in cases(kind, shape, rng).items():
                    med = timed(fns, blocks, clock)
                    cells = [f"{m:.3f} [{lo:.3f}-{hi:.3f}]" for m, lo, hi in (med[i] for i in IMPLS)]
                    ratios = f"{med['numpy'][0] / med['cpp'][0]:.1f} | {med['cpp'][0] / med['torch'][0]:.2f}"
                    print(f"| {kind} | {size} | {direction} | " + " | ".join(cells) + f" | {ratios} |", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=15)
    parser.add_argument("--kinds", default="relu,leaky_relu,tanh,sigmoid")
    args = parser.parse_args()
    main(args.blocks, args.threads, tuple(args.kinds.split(",")))
