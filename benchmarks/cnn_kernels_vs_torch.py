"""The image-CNN kernels other than convolution (batch norm, max pool, bilinear upsampling, global
average pool), float32, on shapes from the vision models: pyrnn's cpp and numba backends against
PyTorch on NCHW and on channels_last tensors, 2 threads unless told. Each kernel call is timed alone: forward
(training forward, i.e. batch statistics / pooling indices, and the graph built for torch), eval
forward for batch norm, and backward (torch: ``autograd.grad`` on a kept graph, every gradient the
layer has). Every result is checked against torch first; then the medians (and the quartiles) over
alternating blocks of calls (the machine is shared: alternating keeps a busy minute from landing on
one side only). The CPU model and the thread count head the table; benchmarks/README.md has a run. Not a test:

    python benchmarks/cnn_kernels_vs_torch.py [--threads N] [--blocks N] [backend ...]
"""

import argparse

import numpy as np
import torch
import torch.nn.functional as F

import pyrnn
from pyrnn.backends import backend_module
from pyrnn.bench_cnn import cpu_description
from pyrnn.bench_stats import alternate

TORCH = ("torch NCHW", "torch channels_last")




def _torch_pair(x_nhwc):
    """(NCHW tensor, channels_last tensor) of one channels-last array, both requiring grad."""
    t = torch.tensor(x_nhwc).permute(0, 3, 1, 2).contiguous()
    return t.requires_grad_(True), t.detach().to(memory_format=torch.channels_last).requires_grad_(True)


def _nhwc(t):
    return t.detach().permute(0, 2, 3, 1).numpy()


def _torch_fns(fn, x, dy, params=()):
    """forward(x) and backward() callables of a torch function on the NCHW and the channels_last tensor."""
    out = {}
    for name, t in zip(TORCH, _torch_pair(x)):
        g = torch.tensor(dy).permute(0, 3, 1, 2).contiguous()
        if name == "torch channels_last":
            g = g.to(memory_format=torch.channels_last)
        y = fn(t)
        inputs = (t, *params)

        def forward(t=t):
            return fn(t)

        def backward(y=y, g=g, inputs=inputs):
            return torch.autograd.grad(y, inputs, g, retain_graph=True)

        out[name] = (forward, backward, y, g)
    return out


def batchnorm_cases(B, H, W, C, backends, rng):
    x = rng.standard_normal((B, H, W, C)).astype(np.float32) * 2 + 1
    dy = rng.standard_normal((B, H, W, C)).astype(np.float32)
    w, b = rng.uniform(0.5, 1.5, C).astype(np.float32), rng.standard_normal(C).astype(np.float32)
    x2, dy2 = x.reshape(-1, C), dy.reshape(-1, C)
    tw, tb = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
    train, infer, back = {}, {}, {}
    for be in backends:
        k = backend_module(be)
        y, saved = k.batchnorm_forward(x2, w, b, rm.copy(), rv.copy(), True, 0.1, 1e-5)
        ye, _ = k.batchnorm_forward(x2, w, b, rm.copy(), rv.copy(), False, 0.0, 1e-5)
        dw, db = np.zeros(C, np.float32), np.zeros(C, np.float32)
        dx = k.batchnorm_backward(saved, dy2, dw, db)
        train[be] = (lambda k=k: k.batchnorm_forward(x2, w, b, rm, rv, True, 0.1, 1e-5), y.reshape(x.shape))
        infer[be] = (lambda k=k: k.batchnorm_forward(x2, w, b, rm, rv, False, 0.0, 1e-5), ye.reshape(x.shape))
        back[be] = (lambda k=k, saved=saved, dw=dw, db=db: k.batchnorm_backward(saved, dy2, dw, db), dx.reshape(x.shape))
    trm, trv = torch.zeros(C), torch.ones(C)

    def bn(t):
        return F.batch_norm(t, trm, trv, tw, tb, True, 0.1, 1e-5)

    for name, (forward, backward, y, _) in _torch_fns(bn, x, dy, (tw, tb)).items():
        train[name] = (forward, _nhwc(y))
        back[name] = (backward, _nhwc(backward()[0]))
        with torch.no_grad():
            t = _torch_pair(x)[TORCH.index(name)].detach()
            infer[name] = (lambda t=t: F.batch_norm(t, torch.zeros(C), torch.ones(C), tw, tb, False, 0.0, 1e-5),
                           _nhwc(F.batch_norm(t, torch.zeros(C), torch.ones(C), tw, tb, False, 0.0, 1e-5)))
    tag = f"BN2d B={B} {H}x{W} {C}ch"
    return {f"{tag} fwd train": train, f"{tag} fwd eval": infer, f"{tag} bwd": back}


def pool_cases(tag, x, dy_shape, ours_fwd, ours_bwd, torch_fn, backends, rng, to_nhwc=_nhwc):
    dy = rng.standard_normal(dy_shape).astype(np.float32)
    fwd, bwd = {}, {}
    for be in backends:
        k = backend_module(be)
        y, saved = ours_fwd(k, x)
        fwd[be] = (lambda k=k: ours_fwd(k, x), y)
        bwd[be] = (lambda k=k, saved=saved: ours_bwd(k, saved, dy), ours_bwd(k, saved, dy))
    for name, (forward, backward, y, _) in _torch_fns(torch_fn, x, dy).items():
        fwd[name] = (forward, to_nhwc(y))
        bwd[name] = (backward, _nhwc(backward()[0]))
    return {f"{tag} fwd": fwd, f"{tag} bwd": bwd}


def all_cases(backends):
    rng = np.random.default_rng(0)
    cases = {}
    cases |= batchnorm_cases(32, 16, 16, 64, backends, rng)
    cases |= batchnorm_cases(64, 28, 28, 32, backends, rng)
    x = rng.standard_normal((64, 28, 28, 64)).astype(np.float32)
    cases |= pool_cases("MaxPool 2x2 B=64 28x28 64ch", x, (64, 14, 14, 64),
                        lambda k, x: k.pool2d_forward("max", x, (2, 2), (2, 2), (0, 0), (1, 1), False, True),
                        lambda k, s, dy: k.pool2d_backward(s, dy), lambda t: F.max_pool2d(t, 2), backends, rng)
    x = rng.standard_normal((8, 16, 16, 64)).astype(np.float32)
    cases |= pool_cases("Upsample bilinear x2 B=8 16x16 64ch", x, (8, 32, 32, 64),
                        lambda k, x: k.upsample2d_forward(x, (2, 2), "bilinear"),
                        lambda k, s, dy: k.upsample2d_backward(s, dy),
                        lambda t: F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False), backends, rng)
    x = rng.standard_normal((32, 8, 8, 256)).astype(np.float32)
    cases |= pool_cases("GlobalAvgPool B=32 8x8 256ch", x, (32, 1, 1, 256),
                        lambda k, x: k.pool2d_forward("avg", x, (8, 8), (8, 8), (0, 0), (1, 1), False, True),
                        lambda k, s, dy: k.pool2d_backward(s, dy), lambda t: F.adaptive_avg_pool2d(t, 1), backends, rng)
    return cases


def validate(name, impls):
    want = impls["torch NCHW"][1]
    for impl, (_, got) in impls.items():
        got = got[0] if isinstance(got, tuple) else got
        np.testing.assert_allclose(np.asarray(got).reshape(want.shape), want, rtol=1e-4, atol=1e-4,
                                   err_msg=f"{name}: {impl}")


def timed(fns, blocks):
    """{name: (median, 25th, 75th percentile)} in ms, over alternating blocks (pyrnn.bench_stats.alternate;
    its warm-up call compiles Numba)."""
    times = alternate(fns, blocks)
    return {name: tuple(1e3 * np.percentile(v, [50, 25, 75])) for name, v in times.items()}


def main(blocks=15, backends=("cpp", "numba"), threads=2):
    torch.set_num_threads(threads)
    pyrnn.set_num_threads(threads)
    backends = [b for b in backends if b in pyrnn.available_backends()]
    print(f"{cpu_description()}, {threads} thread(s), torch {torch.__version__}, float32; median ms [quartiles] over "
          f"{blocks} alternating blocks of ~50 ms")
    cases = all_cases(backends)
    impls = [*backends, *TORCH]
    print("| kernel | " + " | ".join(impls) + " | " + " | ".join(f"{b} / best torch" for b in backends) + " |")
    print("|---" * (1 + len(impls) + len(backends)) + "|")
    for name, fns in cases.items():
        validate(name, fns)
        med = timed({impl: fns[impl][0] for impl in impls}, blocks)
        best = min(med[t][0] for t in TORCH)
        cells = [f"{m:.3f} [{lo:.3f}-{hi:.3f}]" for m, lo, hi in (med[i] for i in impls)]
        ratios = [f"{med[b][0] / best:.2f}" for b in backends]
        print(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backends", nargs="*", default=["cpp", "numba"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--blocks", type=int, default=15)
    args = parser.parse_args()
    main(args.blocks, args.backends, args.threads)
