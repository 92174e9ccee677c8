"""Benchmarks of one recurrent layer against PyTorch, shared by ``python -m pyrnn bench``,
``benchmarks/write_results.py`` (which writes benchmarks/RESULTS.md) and the pytest-benchmark
suite in ``benchmarks/``.

Legend: T = time, B = batch, I = input, H = hidden, G = gates. A training step is forward +
backward of the layer (``dy`` given); inference is a forward under ``no_grad``. Every result
is checked against the NumPy reference before it is timed; times are medians of repeated
runs in one process, and every speed-up is a ratio of two medians from the same run.

FLOPs (GEMMs only, one layer, one direction): forward 2*T*B*G*H*(I + H); a training step
three times that (forward; dX and dW_ih; dh and dW_hh).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .backends.contract import GATES

#: (label, cell, T, B, I, H): the configurations of the performance issue
CONFIGS = [
    ("LSTM T=50 B=1 I=16 H=32", "lstm", 50, 1, 16, 32),
    ("LSTM T=50 B=32 I=32 H=64", "lstm", 50, 32, 32, 64),
    ("GRU T=50 B=32 I=32 H=64", "gru", 50, 32, 32, 64),
    ("RNN T=100 B=64 I=128 H=256", "rnn_tanh", 100, 64, 128, 256),
    ("GRU T=100 B=64 I=128 H=256", "gru", 100, 64, 128, 256),
    ("LSTM T=100 B=64 I=128 H=256", "lstm", 100, 64, 128, 256),
    ("LSTM T=100 B=64 I=512 H=512", "lstm", 100, 64, 512, 512),
]
QUICK = CONFIGS[:3]


@dataclass
class Case:
    label: str
    cell: str
    T: int
    B: int
    I: int
    H: int

    @property
    def gflop_forward(self):
        return 2 * self.T * self.B * GATES[self.cell] * self.H * (self.I + self.H) / 1e9


def make_layer(cell, I, H, seed=0):
    import pyrnn

    if cell.startswith("rnn_"):
        return pyrnn.RNN(I, H, seed=seed, nonlinearity=cell[4:])
    return {"lstm": pyrnn.LSTM, "gru": pyrnn.GRU}[cell](I, H, seed=seed)


def make_inputs(case, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((case.B, case.T, case.I)).astype(np.float32)
    dy = rng.standard_normal((case.B, case.T, case.H)).astype(np.float32)
    return x, dy


def pyrnn_step(layer, x, dy, backend, train):
    """One training step (returns y, dx) or one inference forward (returns y, None)."""
    import pyrnn

    with pyrnn.use_backend(backend):
        if not train:
            with pyrnn.no_grad():
                return layer.forward(x)[0], None
        layer.zero_grad()
        y, _ = layer.forward(x)
        dx, _ = layer.backward(dy)
        return y, dx


def torch_module(case, layer):
    import torch

    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(case.cell, torch.nn.RNN)
    kw = {} if case.cell in ("lstm", "gru") else {"nonlinearity": case.cell[4:]}
    mod = cls(case.I, case.H, batch_first=True, **kw)
    mod.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    return mod


def torch_step(mod, xt, dyt, train):
    import torch

    if not train:
        with torch.no_grad():
            return mod(xt)[0].numpy(), None
    x = xt.detach().requires_grad_(True)
    mod.zero_grad()
    y, _ = mod(x)
    y.backward(dyt)
    return y.detach().numpy(), x.grad.numpy()


def median_time(fn, min_rounds=5, min_seconds=0.3, max_rounds=200):
    """Median wall time of ``fn()`` over at least ``min_rounds`` runs and ``min_seconds``."""
    fn()  # warm-up: JIT compilation, caches, first-touch allocation
    times, start = [], time.perf_counter()
    while len(times) < max_rounds and (len(times) < min_rounds or time.perf_counter() - start < min_seconds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def step_functions(case, impls):
    """{impl: (train_fn, infer_fn)}, each validated against the NumPy reference first."""
    layer = make_layer(case.cell, case.I, case.H)
    x, dy = make_inputs(case)
    want = {train: pyrnn_step(layer, x, dy, "numpy", train) for train in (True, False)}
    out = {}
    for impl in impls:
        if impl == "torch":
            try:
                import torch
            except ImportError:
                continue
            mod = torch_module(case, layer)
            xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
            fns = {train: (lambda train=train: torch_step(mod, xt, dyt, train)) for train in (True, False)}
        else:
            fns = {train: (lambda train=train, impl=impl: pyrnn_step(layer, x, dy, impl, train)) for train in (True, False)}
        for train, fn in fns.items():
            for got, ref in zip(fn(), want[train]):
                if ref is not None:
                    np.testing.assert_allclose(got, ref, rtol=2e-4, atol=2e-4, err_msg=f"{case.label} {impl}")
        out[impl] = (fns[True], fns[False])
    return out


def run(quick=False, impls=None, min_seconds=0.3):
    """Rows of (label, mode, impl, median seconds, GFLOP/s), every config and implementation."""
    import pyrnn

    impls = impls or pyrnn.available_backends() + ["torch"]
    rows = []
    for label, cell, T, B, I, H in QUICK if quick else CONFIGS:
        case = Case(label, cell, T, B, I, H)
        for impl, (train_fn, infer_fn) in step_functions(case, impls).items():
            for mode, fn, gflop in (("train", train_fn, 3 * case.gflop_forward), ("infer", infer_fn, case.gflop_forward)):
                sec = median_time(fn, min_seconds=min_seconds)
                rows.append((label, mode, impl, sec, gflop / sec))
    return rows


def format_table(rows):
    """A Markdown table: one line per config and mode, each implementation's median (ms),
    GFLOP/s and the speed-up over PyTorch (PyTorch time / this time)."""
    impls = sorted({r[2] for r in rows}, key=lambda s: ("cpp", "numba", "numpy", "torch").index(s) if s in ("cpp", "numba", "numpy", "torch") else 9)
    head = "| config | mode | " + " | ".join(f"{i} ms (GFLOP/s)" for i in impls) + " | " + \
        " | ".join(f"{i} vs torch" for i in impls if i != "torch") + " |"
    lines = [head, "|" + "---|" * (2 + len(impls) + len([i for i in impls if i != "torch"]))]
    keyed = {(r[0], r[1], r[2]): r for r in rows}
    for label in dict.fromkeys(r[0] for r in rows):
        for mode in ("train", "infer"):
            cells = []
            for i in impls:
                r = keyed.get((label, mode, i))
                cells.append("-" if r is None else f"{r[3] * 1e3:.2f} ({r[4]:.1f})")
            t = keyed.get((label, mode, "torch"))
            ratios = []
            for i in impls:
                if i == "torch":
                    continue
                r = keyed.get((label, mode, i))
                ratios.append("-" if r is None or t is None else f"{t[3] / r[3]:.2f}x")
            lines.append(f"| {label} | {mode} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    return "\n".join(lines)
