"""Conv2D B=64 28x28 32->64 3x3 padding 1, float32, 2 threads: a pyrnn backend (cpp by default)
against PyTorch on NCHW and on channels_last tensors, inference and one training step (forward,
backward, weight gradients), each the median over alternating blocks of ~50 ms (pyrnn.bench_stats.alternate; the machine is
shared: alternating keeps a busy minute from landing on one side only). Checks the output against
torch once first. Not a test:

    python benchmarks/conv2d_vs_torch.py [cpp|numba|numpy] [blocks]
"""

import statistics
import sys

import numpy as np
import torch

import pyrnn
from pyrnn.bench_stats import alternate
from pyrnn.layers import Conv2D

B, H, W, C, O = 64, 28, 28, 32, 64


def main(backend="cpp", blocks=15):
    torch.set_num_threads(2)
    pyrnn.set_num_threads(2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, H, W, C)).astype(np.float32)
    dy = rng.standard_normal((B, H, W, O)).astype(np.float32)
    layer = Conv2D(C, O, 3, padding=1, seed=0)
    nchw = torch.nn.Conv2d(C, O, 3, padding=1)
    nchw.load_state_dict({k: torch.tensor(v) for k, v in layer.state_dict().items()})
    nhwc = torch.nn.Conv2d(C, O, 3, padding=1).to(memory_format=torch.channels_last)
    nhwc.load_state_dict(nchw.state_dict())
    tx = torch.tensor(x).permute(0, 3, 1, 2).contiguous()
    tdy = torch.tensor(dy).permute(0, 3, 1, 2).contiguous()
    tx_cl, tdy_cl = tx.to(memory_format=torch.channels_last), tdy.to(memory_format=torch.channels_last)

    def ours_infer():
        with pyrnn.no_grad(), pyrnn.use_backend(backend):
            return layer.forward(x)

    def ours_train():
        with pyrnn.use_backend(backend):
            layer.zero_grad()
            layer.forward(x)
            return layer.backward(dy)

    def torch_infer(mod, t):
        def run():
            with torch.no_grad():
                return mod(t)
        return run

    def torch_train(mod, t, g):
        t = t.clone().requires_grad_(True)

        def run():
            mod.zero_grad()
            t.grad = None
            mod(t).backward(g)
            return t.grad
        return run

    want = torch_infer(nchw, tx)().permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(ours_infer(), want, rtol=1e-4, atol=1e-4)
    cases = {
        "inference": {"pyrnn": ours_infer, "torch NCHW": torch_infer(nchw, tx), "torch channels_last": torch_infer(nhwc, tx_cl)},
        "training step": {"pyrnn": ours_train, "torch NCHW": torch_train(nchw, tx, tdy),
                          "torch channels_last": torch_train(nhwc, tx_cl, tdy_cl)},
    }
    for kind, fns in cases.items():
        times = alternate(fns, blocks)  # seconds per call, one per block
        med = {name: 1e3 * statistics.median(v) for name, v in times.items()}
        print(f"{kind}: " + ", ".join(f"{name} {m:.2f} ms" for name, m in med.items()))
        print(f"  pyrnn {backend} / torch NCHW = {med['pyrnn'] / med['torch NCHW']:.2f}, "
              f"pyrnn {backend} / torch channels_last = {med['pyrnn'] / med['torch channels_last']:.2f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "cpp", int(sys.argv[2]) if len(sys.argv) > 2 else 15)
