"""Peak memory of one training step (forward + backward) of an LSTM layer, T=1000 B=32 I=32 H=128,
pyrnn (each backend) against PyTorch and against the lower bound: the activations any BPTT must
keep, T*B*6H floats (the four gates, c_t and h_t at every step).

Each measurement runs in a fresh process and reports the growth of its peak resident set
(ru_maxrss) over the step, so allocators of every kind (NumPy, OpenBLAS, PyTorch's) count.

    python benchmarks/memory.py
"""

import subprocess
import sys

T, B, I, H = 1000, 32, 32, 128

CHILD = r"""
import resource, sys
import numpy as np
impl, T, B, I, H = sys.argv[1], *map(int, sys.argv[2:])
rng = np.random.default_rng(0)
x = rng.standard_normal((B, T, I)).astype(np.float32)
dy = rng.standard_normal((B, T, H)).astype(np.float32)
if impl == "torch":
    import torch
    mod = torch.nn.LSTM(I, H, batch_first=True)
    xt, dyt = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(dy)
    small = torch.nn.LSTM(I, H, batch_first=True)
    small(xt[:, :2])[0].sum().backward()          # load the kernels first, not during the measurement
    def step():
        y, _ = mod(xt)
        y.backward(dyt)
else:
    import pyrnn
    pyrnn.set_backend(impl)
    layer = pyrnn.LSTM(I, H, seed=0)
    layer.forward(x[:, :2]); layer.backward(dy[:, :2])   # JIT and first-call work outside the measurement
    def step():
        layer.forward(x)
        layer.backward(dy)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
step()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024)
"""


def peak_growth(impl):
    r = subprocess.run([sys.executable, "-c", CHILD, impl, str(T), str(B), str(I), str(H)], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return int(r.stdout.strip())


def main():
    import pyrnn

    bound = T * B * 6 * H * 4
    print(f"LSTM T={T} B={B} I={I} H={H}, one training step; lower bound T*B*6H*4 bytes = {bound / 1e6:.1f} MB")
    print("| implementation | peak growth (MB) | x lower bound |\n|---|---|---|")
    for impl in pyrnn.available_backends() + ["torch"]:
        grown = peak_growth(impl)
        if grown is not None:
            print(f"| {impl} | {grown / 1e6:.1f} | {grown / bound:.2f} |")


if __name__ == "__main__":
    main()
