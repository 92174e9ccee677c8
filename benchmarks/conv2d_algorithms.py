"""The Conv2D algorithms side by side, one thread, on the shapes of the vision models: Winograd F(2x2, 3x3)
and the indirect GEMM (C++), the Numba backend's Winograd (where it fits: 3x3, stride 1, > 8 channels)
and its im2col + OpenBLAS sgemm (single-threaded BLAS), and PyTorch channels_last (oneDNN) on one thread.
Forward, and one training step (forward, dx, dw, db).
Each result is checked against the float64 reference first; times are the best of alternating
blocks, in CPU time of the calling thread (everything runs on it: one thread each; on a shared
machine wall time also counts the other processes' turns, CPU time does not), GFLOP/s counts the direct
convolution's multiply-adds (2*B*HO*WO*O*C/G*KH*KW per pass). Not a test:

    python benchmarks/conv2d_algorithms.py [blocks]

The table it prints is recorded in benchmarks/README.md ("How the convolutions are built").
"""

import sys
import time

import numpy as np
import threadpoolctl
import torch

import pyrnn
from pyrnn import _C
from pyrnn.backends import backend_module
from pyrnn.backends import conv2d_numba_winograd as numba_winograd
from pyrnn.backends import conv2d_reference as ref
from pyrnn.bench_cnn import cpu_description

# name, (B, H, W, C, O, k, stride, padding)
SHAPES = [
    ("LeNet conv1 1->6 5x5 28x28 B=64", (64, 28, 28, 1, 6, 5, 1, 2)),
    ("LeNet conv2 6->16 5x5 14x14 B=64", (64, 14, 14, 6, 16, 5, 1, 0)),
    ("VGG conv 3->32 3x3 32x32 B=32", (32, 32, 32, 3, 32, 3, 1, 1)),
    ("layer row 32->64 3x3 28x28 B=64", (64, 28, 28, 32, 64, 3, 1, 1)),
    ("ResNet 64->64 3x3 16x16 B=32", (32, 16, 16, 64, 64, 3, 1, 1)),
    ("VGG 128->128 3x3 8x8 B=32", (32, 8, 8, 128, 128, 3, 1, 1)),
    ("ResNet down 64->128 3x3 s2 16x16 B=32", (32, 16, 16, 64, 128, 3, 2, 1)),
    ("ResNet skip 64->128 1x1 s2 16x16 B=32", (32, 16, 16, 64, 128, 1, 2, 0)),
    ("U-Net 16->16 3x3 64x64 B=8", (8, 64, 64, 16, 16, 3, 1, 1)),
    ("Conv1D 32->64 K=5 T=1000 B=32", (32, 1, 1000, 32, 64, (1, 5), 1, 0)),
]




def best_of(fns, blocks, reps=3):
    best = {name: float("inf") for name in fns}
    for _ in range(blocks):
        for name, fn in fns.items():
            t0 = time.thread_time()
            for _ in range(reps):
                fn()
            best[name] = min(best[name], (time.thread_time() - t0) / reps)
    return best


def row(name, shape, blocks, rng):
    """One table row: validate every variant against the float64 reference, then time them."""
    B, H, W, C, O, k, s, p = shape
    cpp, numba = backend_module("cpp"), backend_module("numba")
    kh, kw = (k, k) if isinstance(k, int) else k
    geom = ((s, s), (0, 0, p, p) if H == 1 else (p, p, p, p), (1, 1), 1)
    x = rng.standard_normal((B, H, W, C)).astype(np.float32)
    w = (rng.standard_normal((O, C, kh, kw)) / np.sqrt(C * kh * kw)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    want, _ = ref.conv2d_forward(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), *geom)
    dy = rng.standard_normal(want.shape).astype(np.float32)
    flops = 2 * want.size * C * kh * kw

    def ours(kernels, winograd):
        def infer():
            _C._set_winograd(winograd)
            numba_winograd.ENABLED = winograd
            return kernels.conv2d_forward(x, w, b, *geom)[0]

        def train():
            _C._set_winograd(winograd)
            numba_winograd.ENABLED = winograd
            _, saved = kernels.conv2d_forward(x, w, b, *geom)
            return kernels.conv2d_backward(saved, dy, np.zeros_like(w), np.zeros_like(b))
        return infer, train

    conv = torch.nn.Conv2d(C, O, (kh, kw), stride=s, padding=(0, p) if H == 1 else p)
    conv.load_state_dict({"weight": torch.tensor(w), "bias": torch.tensor(b)})
    conv = conv.to(memory_format=torch.channels_last)
    tx, tdy = torch.tensor(x).permute(0, 3, 1, 2), torch.tensor(dy).permute(0, 3, 1, 2)

    def torch_infer():
        with torch.no_grad():
            return conv(tx).permute(0, 2, 3, 1).numpy()

    def torch_train():
        t = tx.detach().requires_grad_(True)
        conv.zero_grad()
        conv(t).backward(tdy)
        return t.grad

    variants = {"winograd": ours(cpp, True), "igemm": ours(cpp, False), "numba winograd": ours(numba, True),
                "im2col": ours(numba, False),
                "torch": (torch_infer, torch_train)}
    for vname, (infer, _) in variants.items():  # validate before timing
        np.testing.assert_allclose(infer(), want, rtol=1e-3, atol=1e-3, err_msg=f"{name} {vname}")
    with threadpoolctl.threadpool_limits(1):
        fwd = best_of({v: f[0] for v, f in variants.items()}, blocks)
        trn = best_of({v: f[1] for v, f in variants.items()}, blocks)
    _C._set_winograd(True)
    numba_winograd.ENABLED = True
    cells = [f"{fwd[v] * 1e3:.2f} / {trn[v] * 1e3:.2f} ({flops / fwd[v] / 1e9:.0f})" for v in variants]
    return f"| {name} | " + " | ".join(cells) + " |"


def main(blocks=5):
    torch.set_num_threads(1)
    pyrnn.set_num_threads(1)
    print(f"CPU: {cpu_description()} ({_C.isa()}), one thread, float32, best of {blocks} blocks")
    print("| shape | Winograd | indirect GEMM | Numba Winograd | im2col + sgemm (Numba) | torch channels_last "
          "| (fwd ms / train ms, GFLOP/s fwd) |")
    print("|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for name, shape in SHAPES:
        print(row(name, shape, blocks, rng), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
