"""Peak memory of one training step (forward + backward): of an LSTM layer, T=1000 B=32 I=32 H=128,
pyrnn (each backend) against PyTorch and against the lower bound: the activations any BPTT must
keep, T*B*6H floats (the four gates, c_t and h_t at every step); and of the U-Net of
``pyrnn.bench_cnn`` (B=8 1x64x64, widths 16-32-64), pyrnn's default backend against PyTorch on
both memory formats, beside the size of every tensor of its forward (each layer's output).

Each measurement runs in a fresh process and reports the growth of its peak resident set
(VmHWM of /proc/self/status) over the step (for the U-Net also over four steps: memory an allocator
keeps between steps, pyrnn's recycled arrays or PyTorch's, shows there), so allocators of every kind (NumPy, OpenBLAS,
PyTorch's) count. Not ru_maxrss: a child started by a process larger than itself inherits that
process's peak (Linux keeps it across fork and exec), which hid the step when this ran under
benchmarks/write_results.py.

    python benchmarks/memory.py            # both tables
"""

import subprocess
import sys

T, B, I, H = 1000, 32, 32, 128
BOUND = T * B * 6 * H * 4  # bytes: the float32 activations any BPTT keeps
TITLE = f"LSTM T={T} B={B} I={I} H={H}, one training step; lower bound T*B*6H*4 bytes = {BOUND / 1e6:.1f} MB"

CHILD = r"""
import sys
import numpy as np
def peak():  # bytes: this process's own peak resident set
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) * 1024
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
before = peak()
step()
print(peak() - before)
"""

# The U-Net step of pyrnn.bench_cnn: built and warmed up (one image) by bench_cnn.memory_step.
UNET_CHILD = r"""
import sys
def peak():  # bytes: this process's own peak resident set
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) * 1024
if sys.argv[1].startswith("torch"):
    import torch
    torch.set_num_threads(2)
from pyrnn import bench_cnn
step = bench_cnn.memory_step(sys.argv[1])
before = peak()
step()
first = peak() - before
for _ in range(3):  # the steady state: what an allocator keeps between steps counts from here
    step()
print(first, peak() - before)
"""


def peak_growth(impl, child=CHILD, args=(T, B, I, H)):
    """Bytes the peak RSS of a fresh process grows by over one training step on ``impl`` (the
    ``child`` script, given ``impl`` and ``args``); None when the child fails (e.g. torch not
    installed), its error on stderr."""
    r = subprocess.run([sys.executable, "-c", child, impl, *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"memory.py: {impl} failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}", file=sys.stderr)
        return None
    grown = [int(v) for v in r.stdout.split()]
    return grown[0] if len(grown) == 1 else grown


def table(impls=None):
    """A Markdown table of :func:`peak_growth` for each implementation (default: pyrnn's
    backends, then torch) and its ratio to :data:`BOUND`; failed ones are left out."""
    import pyrnn

    lines = ["| implementation | peak growth (MB) | x lower bound |", "|---|---|---|"]
    for impl in impls or pyrnn.available_backends() + ["torch"]:
        grown = peak_growth(impl)
        if grown is not None:
            lines.append(f"| {impl} | {grown / 1e6:.1f} | {grown / BOUND:.2f} |")
    return "\n".join(lines)


def unet_title():
    from pyrnn import bench_cnn

    mb = bench_cnn.forward_bytes(bench_cnn.UNET) / 1e6
    return (f"{bench_cnn.UNET.label}, one training step (forward, backward of dy, every parameter gradient); its forward's "
            f"tensors (the input and every layer's output, float32) take {mb:.1f} MB")


def unet_table(impls=None):
    """A Markdown table of the U-Net step's peak growth for pyrnn's default backend and PyTorch's two
    memory formats (default), its ratio to the smaller PyTorch one, and to the forward's tensors."""
    import pyrnn
    from pyrnn import bench_cnn

    impls = impls or [pyrnn.get_backend(), *bench_cnn.TORCH_LAYOUTS]
    grown = {impl: peak_growth(impl, UNET_CHILD, ()) for impl in impls}
    grown = {k: v for k, v in grown.items() if v is not None}
    theirs = [v for k, v in grown.items() if k in bench_cnn.TORCH_LAYOUTS]
    acts = bench_cnn.forward_bytes(bench_cnn.UNET)
    lines = ["| implementation | first step: peak growth (MB) | x forward tensors | x smaller torch "
             "| 4 steps: peak growth (MB) | x smaller torch |", "|---|---|---|---|---|---|"]
    for impl, (first, steady) in grown.items():
        ratios = [f"{v / min(t[i] for t in theirs):.2f}" if theirs else "-" for i, v in enumerate((first, steady))]
        lines.append(f"| {impl} | {first / 1e6:.1f} | {first / acts:.2f} | {ratios[0]} | {steady / 1e6:.1f} | {ratios[1]} |")
    return "\n".join(lines)


def main():
    print(TITLE)
    print(table())
    print()
    print(unet_title())
    print(unet_table())


if __name__ == "__main__":
    main()
