"""bfloat16 mixed precision on the LSTM configs of issue 14: pyrnn's ``LSTM(dtype="bfloat16")`` against
pyrnn's own float32 LSTM and against PyTorch's ``torch.autocast("cpu", dtype=torch.bfloat16)`` (and
PyTorch's float32), inference (pyrnn under ``no_grad``, torch under ``no_grad``) and training (forward +
backward of sum(y), every parameter gradient). Every result is checked first: pyrnn bf16 against pyrnn
float32 and torch's autocast output against torch float32, within the bf16 error scale (a relative
Frobenius distance below 2**-5: ~8 roundings of 2**-8; a wrong kernel is off by O(1)). Then the medians over
alternating blocks of calls (pyrnn.bench_stats.alternate), the speed-ups per round with their min-max; the
CPU model, its bf16 flags and pyrnn's bf16 path head the table; benchmarks/README.md has a run. Not a test:

    python benchmarks/bf16_vs_torch.py [--threads N] [--blocks N] [--no-torch]
"""

import argparse
import contextlib

import numpy as np

import pyrnn
from pyrnn import _C
from pyrnn.bench_cnn import cpu_description
from pyrnn.bench_stats import Timing, alternate, load_average, paired_ratios

CONFIGS = [(50, 32, 32, 64), (100, 64, 128, 256), (100, 64, 512, 512)]  # T, B, I, H
CHECK = 2.0**-5


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


def pyrnn_fns(T, B, I, H, x):
    """{impl: (inference, training)} of pyrnn float32 and bfloat16, validated against each other."""
    layers = {"pyrnn f32": pyrnn.LSTM(I, H, seed=0), "pyrnn bf16": pyrnn.LSTM(I, H, seed=0, dtype="bfloat16")}
    out, ys = {}, {}
    for name, layer in layers.items():
        def infer(layer=layer):
            with pyrnn.no_grad():
                return layer.forward(x)[0]

        def train(layer=layer):
            y, _ = layer.forward(x)
            return layer.backward(np.ones_like(y))[0]

        layer.zero_grad()
        ys[name] = (infer(), train(), {k: v.copy() for k, v in layer.grads.items()})
        out[name] = (infer, train)
    (y32, dx32, g32), (y16, dx16, g16) = ys["pyrnn f32"], ys["pyrnn bf16"]
    checks = [("y", rel(y16, y32)), ("dx", rel(dx16, dx32))] + [(k, rel(g16[k], g32[k])) for k in g32]
    bad = [(k, r) for k, r in checks if not r < CHECK]
    if bad:
        raise SystemExit(f"pyrnn bf16 is not float32 within the bf16 scale on T={T} H={H}: {bad}")
    return out, max(r for _, r in checks)


def torch_fns(T, B, I, H, x, threads):
    """{impl: (inference, training)} of torch float32 and torch autocast bf16, validated against each other."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(I, H, batch_first=True)
    xt = torch.tensor(x)
    out, ys = {}, {}
    for name, ctx in (("torch f32", contextlib.nullcontext), ("torch bf16", lambda: torch.autocast("cpu", torch.bfloat16))):
        def infer(ctx=ctx):
            with torch.no_grad(), ctx():
                return lstm(xt)[0]

        def train(ctx=ctx):
            lstm.zero_grad()
            with ctx():
                y = lstm(xt)[0]
            y.float().sum().backward()
            return y

        ys[name] = infer().float().numpy()
        out[name] = (infer, train)
    r = rel(ys["torch bf16"], ys["torch f32"])
    if not r < CHECK:
        raise SystemExit(f"torch autocast is not float32 within the bf16 scale on T={T} H={H}: {r:.3g}")
    return out


HEADER = ("| config | mode | pyrnn f32 ms | pyrnn bf16 ms | bf16/f32 speed-up [min-max] | torch f32 ms | torch bf16 ms "
          "| pyrnn bf16 vs torch bf16 [min-max] |\n|---|---|---|---|---|---|---|---|")


def rows(threads, blocks=9, block_seconds=0.2, with_torch=True):
    """Yield the table's rows (Markdown), each config validated first, then timed in alternating blocks."""
    for T, B, I, H in CONFIGS:
        x = np.random.default_rng(0).standard_normal((B, T, I)).astype(np.float32)
        fns, dist = pyrnn_fns(T, B, I, H, x)
        if with_torch:
            fns.update(torch_fns(T, B, I, H, x, threads))
        for m, mode in enumerate(("inference", "training")):
            times = alternate({k: v[m] for k, v in fns.items()}, blocks=blocks, block_seconds=block_seconds)
            t = {k: Timing(f"T={T} H={H}", mode, k, v) for k, v in times.items()}
            sp = paired_ratios(t["pyrnn f32"], t["pyrnn bf16"])
            row = (f"| LSTM T={T} B={B} I={I} H={H} | {mode} | {t['pyrnn f32'].median * 1e3:.2f} | "
                   f"{t['pyrnn bf16'].median * 1e3:.2f} | {np.median(sp):.2f}x [{min(sp):.2f}-{max(sp):.2f}] |")
            if not with_torch:
                row += " - | - | - |"
            else:
                vt = paired_ratios(t["torch bf16"], t["pyrnn bf16"])
                row += (f" {t['torch f32'].median * 1e3:.2f} | {t['torch bf16'].median * 1e3:.2f} | "
                        f"{np.median(vt):.2f}x [{min(vt):.2f}-{max(vt):.2f}] |")
            yield row
        yield f"<!-- T={T} H={H}: pyrnn bf16 vs f32 relative distance (worst of y, dx, grads) {dist:.2e} -->"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--blocks", type=int, default=9)
    ap.add_argument("--block-seconds", type=float, default=0.2)
    ap.add_argument("--no-torch", action="store_true", help="pyrnn float32 against bf16 only")
    ap.add_argument("--bf16-path", choices=_C.supported_bf16_paths(), default=None,
                    help="the bf16 kernels to time (default: the fastest this CPU has), e.g. avx512_bf16 on an "
                         "AMX machine to compare it with amx")
    args = ap.parse_args()
    pyrnn.set_num_threads(args.threads)
    if args.bf16_path is not None:
        _C.set_bf16_path(args.bf16_path)
    print(f"CPU: {cpu_description()}; cpu_features {_C.cpu_features()}; pyrnn bf16 path: {_C.bf16_path()}; "
          f"isa {_C.isa()}; {args.threads} threads; load average before: {load_average()}")
    print(HEADER)
    for row in rows(args.threads, args.blocks, args.block_seconds, not args.no_torch):
        print(row, flush=True)
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
